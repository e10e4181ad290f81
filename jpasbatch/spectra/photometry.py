"""Synthetic photometry of :class:`Spectrum` objects into one Arrow table."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from jpasbatch.core.errors import InputError
from jpasbatch.physics.photometry import SyntheticPhotometry
from jpasbatch.spectra.batch import Reject, read_files
from jpasbatch.spectra.io.options import ReadOptions
from jpasbatch.spectra.spectrum import Spectrum

#: Identity columns of a photometry table, before the band columns.
IDENTITY = (
    pa.field("ID", pa.string()),
    pa.field("SOURCE", pa.string()),
    pa.field("SPECNAME", pa.string()),
    pa.field("RA", pa.float64()),
    pa.field("DEC", pa.float64()),
    pa.field("Z_SPEC", pa.float64()),
    pa.field("CLASS_SPEC", pa.string()),
    pa.field("WAVE_MIN", pa.float64()),
    pa.field("WAVE_MAX", pa.float64()),
)


def photometry_files(
    paths: Iterable[str | os.PathLike[str]],
    photometry: SyntheticPhotometry | None = None,
    options: ReadOptions | None = None,
    **kwargs,
) -> tuple[pa.Table, list[Reject]]:
    """:func:`photometry_table` of the spectra of many files, and the rejected ones.

    A file that fails to read, or a spectrum with a broken calibration, is one
    :class:`~jpasbatch.spectra.batch.Reject`; the others are measured. Keyword
    arguments go to :func:`photometry_table`.
    """
    rejects: list[Reject] = []

    def spectra() -> Iterator[Spectrum]:
        for item in read_files(paths, options):
            if isinstance(item, Reject):
                rejects.append(item)
            else:
                yield item

    return photometry_table(spectra(), photometry, **kwargs), rejects


def photometry_table(
    spectra: Iterable[Spectrum],
    photometry: SyntheticPhotometry | None = None,
    *,
    redshift: float | None = None,
    max_masked: float = 0.1,
    batch_size: int = 4096,
) -> pa.Table:
    """One row per spectrum: ``ID``, ``FLUX_<BAND>``, ``MAG_<BAND>``, ``COVERED_<BAND>``.

    Parameters
    ----------
    spectra
        Spectra in any order; consecutive spectra on the same grid are computed
        as one batch.
    photometry
        The bands (default: the 60 J-PAS bands).
    redshift
        If given, the spectra are rest-frame templates observed at this redshift.
    max_masked
        Masked pixels are bridged by linear interpolation from their good
        neighbours; a band whose response weight falls more than this fraction on
        masked pixels is reported as not covered (NaN).
    batch_size
        Spectra per batch.

    Returns
    -------
    pyarrow.Table
        The identity columns (``ID``; ``SOURCE``, the file; ``SPECNAME``, its
        name; ``RA``, ``DEC``, ``Z_SPEC``, ``CLASS_SPEC`` where the file says
        them, else NaN / empty; ``WAVE_MIN``, ``WAVE_MAX``: the range of its
        usable pixels), then per band the flux in erg s-1 cm-2 A-1
        (negative where the spectrum is, as noise makes it), the AB magnitude
        (NaN where the flux is not positive) and the coverage flag.
    """
    sp = SyntheticPhotometry() if photometry is None else photometry
    parts = [
        _batch_columns(sp, batch, redshift, max_masked) for batch in _batches(spectra, batch_size)
    ]
    if not parts:
        return _empty_table(sp.bands)
    columns = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return pa.table(columns)


def _batches(spectra: Iterable[Spectrum], size: int) -> Iterator[list[Spectrum]]:
    """Runs of consecutive spectra sharing one wavelength grid, at most ``size`` long."""
    batch: list[Spectrum] = []
    for spec in spectra:
        if batch and (len(batch) == size or not _same_grid(batch[0].wavelength, spec.wavelength)):
            yield batch
            batch = []
        batch.append(spec)
    if batch:
        yield batch


def _same_grid(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(a, b)


def _batch_columns(
    sp: SyntheticPhotometry, batch: list[Spectrum], redshift: float | None, max_masked: float
) -> dict[str, np.ndarray]:
    x = np.asarray(batch[0].wavelength, dtype=float)
    flux = np.empty((len(batch), x.size))
    bad = np.zeros((len(batch), x.size), dtype=bool)
    for i, spec in enumerate(batch):
        good = spec.good
        bad[i] = ~good
        flux[i] = _bridge(x, np.asarray(spec.flux, dtype=float), good)
    # bad pixels (masked, ivar = 0, non-finite) were bridged, so the kernel sees finite flux
    res = sp(x, flux, z=redshift)
    covered = res.covered.copy()
    if bad.any():
        weight = np.abs(sp.matrix(x, 0.0 if redshift is None else redshift)[0])
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = (bad @ weight) / weight.sum(axis=0)
        covered &= ~(frac > max_masked)
    cols: dict[str, np.ndarray] = _identity(batch)
    for j, band in enumerate(sp.bands):
        cols[f"FLUX_{band}"] = np.where(covered[:, j], res.flux[:, j], np.nan)
        cols[f"MAG_{band}"] = np.where(covered[:, j], res.mag[:, j], np.nan)
        cols[f"COVERED_{band}"] = covered[:, j]
    return cols


def _identity(batch: list[Spectrum]) -> dict[str, np.ndarray]:
    def meta(key: str, default):
        return [s.meta.get(key, default) for s in batch]

    sources = [str(s.meta.get("source", "")) for s in batch]
    ranges = np.array([_good_range(s) for s in batch], dtype=float).reshape(-1, 2)
    return {
        "ID": np.array([s.id for s in batch], dtype=object),
        "SOURCE": np.array(sources, dtype=object),
        "SPECNAME": np.array([Path(s).name for s in sources], dtype=object),
        "RA": np.array(meta("RA", np.nan), dtype=float),
        "DEC": np.array(meta("DEC", np.nan), dtype=float),
        "Z_SPEC": np.array(meta("Z", np.nan), dtype=float),
        "CLASS_SPEC": np.array([str(c).strip().upper() for c in meta("CLASS", "")], dtype=object),
        "WAVE_MIN": ranges[:, 0],
        "WAVE_MAX": ranges[:, 1],
    }


def _good_range(spectrum: Spectrum) -> tuple[float, float]:
    wave = spectrum.wavelength[spectrum.good]
    return (float(wave[0]), float(wave[-1])) if wave.size else (np.nan, np.nan)


def _bridge(x: np.ndarray, flux: np.ndarray, good: np.ndarray) -> np.ndarray:
    """Replace bad pixels by linear interpolation between good ones."""
    if good.all():
        return flux
    if not good.any():
        return np.zeros_like(flux)
    return np.interp(x, x[good], flux[good])


def _empty_table(bands: list[str]) -> pa.Table:
    fields = list(IDENTITY)
    for band in bands:
        fields += [
            pa.field(f"FLUX_{band}", pa.float64()),
            pa.field(f"MAG_{band}", pa.float64()),
            pa.field(f"COVERED_{band}", pa.bool_()),
        ]
    return pa.schema(fields).empty_table()


def add_depth_noise(table: pa.Table, bands: list[str], seed: int) -> pa.Table:
    """Observe synthetic photometry like survey objects, at the spectra's own magnitudes.

    Each row is given the depths of a randomly chosen miniJPAS pointing and the
    depth noise model (background plus shot noise); ``FLUX_<BAND>`` becomes the
    measured flux, ``FLUX_RELERR_<BAND>`` is added, ``MAG_<BAND>`` is recomputed.
    """
    from jpasbatch.catalog.schemas import BANDS
    from jpasbatch.physics.noise import observe, pivot_wavelengths
    from jpasbatch.physics.photometry import flux_to_ab
    from jpasbatch.sim.survey import reference_tiles

    unknown = [b for b in bands if b not in BANDS]
    if unknown:
        raise InputError(f"no survey depths for band(s) {unknown}: depth noise is for J-PAS bands")
    cols = [BANDS.index(b) for b in bands]
    rng = np.random.default_rng(seed)
    depths = np.stack([t.depth for t in reference_tiles()])[:, cols]
    depth = depths[rng.integers(0, len(depths), table.num_rows)]
    true = np.column_stack([table[f"FLUX_{b}"].to_numpy(zero_copy_only=False) for b in bands])
    flux, relerr, _ = observe(true, depth, rng, pivot=pivot_wavelengths()[cols])
    mag = flux_to_ab(flux, pivot_wavelengths()[cols])
    for j, band in enumerate(bands):
        table = table.set_column(
            table.schema.get_field_index(f"FLUX_{band}"), f"FLUX_{band}", pa.array(flux[:, j])
        )
        table = table.set_column(
            table.schema.get_field_index(f"MAG_{band}"), f"MAG_{band}", pa.array(mag[:, j])
        )
        table = table.append_column(f"FLUX_RELERR_{band}", pa.array(relerr[:, j]))
    return table
