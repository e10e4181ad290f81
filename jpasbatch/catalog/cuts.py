"""Row validation and quality cuts: every removed row gets a reason code.

Pure numpy / pyarrow. A row is checked in the order of :data:`REASONS` and
takes the first reason that applies, so each rejected row has exactly one.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from jpasbatch.catalog.schemas import BANDS, flux_column, relerr_column

#: Reason codes, in the order they are tested. BAD_VALUE is assigned by the reader
#: (:func:`jpasbatch.catalog.readers.iter_chunks`) before the cuts, DUPLICATE_ID
#: after all chunks are read (the first occurrence of an id is kept).
REASONS: dict[str, str] = {
    "BAD_VALUE": "a value that cannot be read as a number (column in DETAIL)",
    "BAD_COORD": "coordinates missing, not finite or out of range",
    "BAD_FLUX": "an infinite flux or relative error",
    "NEGATIVE_ERROR": "a negative relative flux error",
    "FLAGS": "FLAGS != 0",
    "MASK_FLAGS": "MASK_FLAGS != 0",
    "FEW_BANDS": "fewer observed bands than required",
    "NOT_POINTLIKE": "CLASS_STAR below the point-like threshold",
    "DUPLICATE_ID": "OBJECT_ID seen earlier in the input",
}


class QualityCuts(BaseModel):
    """Quality cuts as in the papers (configurable).

    Attributes
    ----------
    flags
        Require ``FLAGS == 0``.
    mask_flags
        Require ``MASK_FLAGS == 0``.
    min_bands
        Minimum number of observed bands (finite flux and finite relative error
        > 0). OJALA uses 50 of the 60.
    min_class_star
        If set, keep only point-like objects with ``CLASS_STAR >= min_class_star``.
    """

    model_config = ConfigDict(extra="forbid")

    flags: bool = True
    mask_flags: bool = True
    min_bands: int = Field(50, ge=0, le=len(BANDS))
    min_class_star: float | None = Field(None, ge=0.0, le=1.0)


def photometry_arrays(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Flux and relative error as (N, 60) float32 arrays in band order."""
    flux = np.column_stack(
        [table.column(flux_column(b)).to_numpy(zero_copy_only=False) for b in BANDS]
    )
    relerr = np.column_stack(
        [table.column(relerr_column(b)).to_numpy(zero_copy_only=False) for b in BANDS]
    )
    return flux, relerr


def has_reference(flux: np.ndarray) -> np.ndarray:
    """Rows of ``(N, 60)`` fluxes with a finite, positive rSDSS flux (the classifier's
    reference band)."""
    r = flux[:, BANDS.index("rSDSS")]
    with np.errstate(invalid="ignore"):
        return np.isfinite(r) & (r > 0)


def n_observed_bands(flux: np.ndarray, relerr: np.ndarray) -> np.ndarray:
    """Bands per row with a finite flux and a finite, positive relative error."""
    return (np.isfinite(flux) & np.isfinite(relerr) & (relerr > 0)).sum(axis=1)


def reject_reasons(table: pa.Table, cuts: QualityCuts) -> np.ndarray:
    """The reason code of each row, or ``""`` for rows that pass.

    Parameters
    ----------
    table
        Rows conforming to :data:`jpasbatch.catalog.schemas.OBSERVED`.
    cuts
        The quality cuts.

    Returns
    -------
    numpy.ndarray
        Object array of reason codes (keys of :data:`REASONS`), ``""`` if kept.
    """
    n = table.num_rows
    reason = np.full(n, "", dtype=object)

    def mark(condition: np.ndarray, code: str) -> None:
        reason[(reason == "") & condition] = code

    def col(name: str, fill: float) -> np.ndarray:
        return table.column(name).fill_null(fill).to_numpy(zero_copy_only=False)

    ra, dec = col("ALPHA_J2000", np.nan), col("DELTA_J2000", np.nan)
    with np.errstate(invalid="ignore"):
        mark(~(np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90)), "BAD_COORD")
        # band by band: stacking the 120 columns into matrices cost more than the cuts
        infinite, negative, observed = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, int)
        for band in BANDS:
            flux = col(flux_column(band), np.nan)
            relerr = col(relerr_column(band), np.nan)
            infinite |= np.isinf(flux) | np.isinf(relerr)
            negative |= relerr < 0
            observed += np.isfinite(flux) & np.isfinite(relerr) & (relerr > 0)
        mark(infinite, "BAD_FLUX")
        mark(negative, "NEGATIVE_ERROR")
        if cuts.flags:
            mark(col("FLAGS", 0) != 0, "FLAGS")
        if cuts.mask_flags:
            mark(col("MASK_FLAGS", 0) != 0, "MASK_FLAGS")
        mark(observed < cuts.min_bands, "FEW_BANDS")  # as n_observed_bands counts them
        if cuts.min_class_star is not None:
            mark(~(col("CLASS_STAR", np.nan) >= cuts.min_class_star), "NOT_POINTLIKE")
    return reason
