"""Many spectra files in, spectra or rejects out: one bad file never costs the others.

Every command that reads many files (``photometry``, ``spectra``,
``spectra-prepare``) goes through :func:`read_files`: a file that fails to
read becomes one :class:`Reject` (file, HDU/column, pixel, reason) and the
loop goes on; a spectrum that reads but whose calibration is clearly broken
(:func:`calibration_problem`) becomes one too. So every spectrum ends up in
exactly one output row or one rejects row.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa

from jpasbatch.core.errors import InputError
from jpasbatch.spectra.io import ReadOptions, read_spectra
from jpasbatch.spectra.spectrum import Spectrum

#: A spectrum whose median per-pixel S/N is below this is not a noisy object
#: but a broken calibration or sky subtraction (noise alone gives a median near 0).
BROKEN_MEDIAN_SNR = -1.0

#: Schema of the rejects of file-reading commands.
REJECTS_SCHEMA = pa.schema(
    [
        pa.field("SOURCE", pa.string()),
        pa.field("ID", pa.string()),
        pa.field("COLUMN", pa.string()),
        pa.field("PIXEL", pa.int64()),
        pa.field("REASON", pa.string()),
    ]
)


@dataclass(frozen=True)
class Reject:
    """One file (``ID`` empty) or one spectrum that was not used, and why."""

    source: str
    id: str
    column: str | None
    pixel: int | None
    reason: str

    def message(self) -> str:
        """One line naming the file, spectrum, column and pixel."""
        where = [f"file {self.source}"]
        if self.id:
            where.append(f"spectrum {self.id}")
        if self.column:
            where.append(f"column {self.column!r}")
        if self.pixel is not None:
            where.append(f"row {self.pixel}")
        return f"{', '.join(where)}: {self.reason}"


def calibration_problem(spectrum: Spectrum) -> str | None:
    """Why a spectrum cannot be a real object's flux, or None.

    Negative pixels are noise; what is refused is a spectrum that is negative
    over most of its range (its median per-pixel S/N below
    :data:`BROKEN_MEDIAN_SNR`, or, without errors, a negative median flux), or
    one without a single usable pixel.
    """
    good = spectrum.good
    if not good.any():
        return "no usable pixel (all masked, ivar = 0 or not finite)"
    flux = np.asarray(spectrum.flux, dtype=float)[good]
    if spectrum.ivar is not None:
        median = float(np.median(flux * np.sqrt(np.asarray(spectrum.ivar, dtype=float)[good])))
        if median < BROKEN_MEDIAN_SNR:
            return (
                f"flux calibration or sky subtraction broken: the median pixel is "
                f"{-median:.1f} sigma below zero"
            )
    elif np.median(flux) < 0:
        return "flux calibration broken: the median flux is negative (and the file has no errors)"
    return None


def read_files(
    paths: Iterable[str | os.PathLike[str]], options: ReadOptions | None = None
) -> Iterator[Spectrum | Reject]:
    """Yield every spectrum of ``paths`` in order, or a :class:`Reject` in its place."""
    for path in paths:
        try:
            spectra = read_spectra(path, options)
        except InputError as exc:
            yield Reject(str(path), "", exc.column, exc.row, exc.message)
            continue
        for spectrum in spectra:
            problem = calibration_problem(spectrum)
            if problem is None:
                yield spectrum
            else:
                yield Reject(str(path), spectrum.id, "flux", None, problem)


def rejects_table(rejects: list[Reject]) -> pa.Table:
    """The rejects as a table (:data:`REJECTS_SCHEMA`)."""
    rows = [asdict(r) for r in rejects]
    return pa.table(
        {f.name: [row[f.name.lower()] for row in rows] for f in REJECTS_SCHEMA},
        schema=REJECTS_SCHEMA,
    )
