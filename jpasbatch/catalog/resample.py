"""A survey-sized catalogue from an emulated field: resampled rows with known defects.

For full-survey rehearsals (10 million rows and more, one machine): the survey
emulator (:mod:`jpasbatch.sim`) is far too slow to make that many objects, so its
output for a small field is the **pool**, and every output row is a copy of a pool
row that passed the default cuts, with

- a **new position**, uniform on the sphere inside ``footprint``;
- **fresh noise**: ``flux + k * sigma * N(0, 1)`` with the row's own error
  ``sigma = FLUX_RELERR * |FLUX|``, reported as ``sigma * sqrt(1 + k^2)`` (the
  copy's actual scatter about the true flux), so no two copies are equal;
- a **new id**: ``TILE_ID = first_tile + file``, ``NUMBER`` 1, 2, ... in its file;
- and, for a ``bad_fraction`` of the rows, **one defect** of each kind the cuts
  know, in equal shares (see :data:`DEFECTS`): the ingest's rejects by reason are
  then known exactly, and are written to the summary.

Files are written in the CEFCA archive layout (arrays of 60 fluxes and relative
errors), cycling through ``formats`` (Parquet, FITS), one task per file on Dask,
each seeded by ``(seed, file)``: the output is the same whatever the workers.
``BAD_VALUE`` (an unreadable cell) needs a text format and ``NOT_POINTLIKE`` a
``CLASS_STAR`` cut, so neither is made.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from jpasbatch.catalog.cuts import QualityCuts, reject_reasons
from jpasbatch.catalog.readers import MAX_NUMBER, read_catalogue, write_archive_like
from jpasbatch.catalog.schemas import BANDS, OBSERVED, flux_column, relerr_column
from jpasbatch.core import atomic
from jpasbatch.core.errors import JpasBatchError

#: Defects made, each the only one of its row, so that the cuts give it as the reason.
DEFECTS = (
    "BAD_COORD",
    "BAD_FLUX",
    "NEGATIVE_ERROR",
    "FLAGS",
    "MASK_FLAGS",
    "FEW_BANDS",
    "DUPLICATE_ID",
)
SUMMARY = "resample_summary.json"
_FORMATS = {"parquet": ".parquet", "fits": ".fits"}


@dataclass
class ResampleSummary:
    """What :func:`resample_catalogue` wrote; also ``out/resample_summary.json``."""

    rows: int
    files: list[str]
    expected_rejects: dict[str, int]
    pool_rows: int
    seed: int
    footprint: list[float]
    noise_scale: float
    parameters: dict = field(default_factory=dict)


@dataclass
class Pool:
    """The clean pool rows as arrays: fluxes, errors, CLASS_STAR."""

    flux: np.ndarray  # (N, 60) float32
    sigma: np.ndarray  # (N, 60) float32, absolute errors
    class_star: np.ndarray  # (N,) float32

    @classmethod
    def from_table(cls, table: pa.Table) -> Pool:
        """The rows of an OBSERVED table that pass the default cuts."""
        table = table.filter(pa.array(reject_reasons(table, QualityCuts()) == ""))
        if table.num_rows == 0:
            raise JpasBatchError("no row of the pool passes the default cuts")
        flux = np.column_stack([table[flux_column(b)].to_numpy(False) for b in BANDS])
        relerr = np.column_stack([table[relerr_column(b)].to_numpy(False) for b in BANDS])
        cs = table["CLASS_STAR"].fill_null(np.nan).to_numpy(False).astype(np.float32)
        return cls(flux.astype(np.float32), (relerr * np.abs(flux)).astype(np.float32), cs)


def resample_catalogue(
    pool: list[str | Path] | pa.Table,
    out: str | Path,
    n_rows: int,
    *,
    rows_per_file: int = 500_000,
    formats: tuple[str, ...] = ("parquet", "fits"),
    footprint: tuple[float, float, float, float] = (120.0, 240.0, 0.0, 60.0),
    bad_fraction: float = 0.03,
    noise_scale: float = 0.5,
    seed: int = 0,
    first_tile: int = 100_000,
    client=None,
    n_workers: int | None = None,
    progress: bool = True,
) -> ResampleSummary:
    """Write ``n_rows`` archive-layout rows resampled from ``pool`` into ``out``.

    Parameters
    ----------
    pool
        Catalogue files (any layout :func:`~jpasbatch.catalog.readers.read_catalogue`
        reads, e.g. ``jpasbatch simulate``'s ``catalogue/*.parquet``) or an OBSERVED
        table. Only rows passing the default cuts are drawn.
    out
        Output folder: ``part-<file>.parquet`` / ``.fits`` and the summary.
    n_rows
        Rows in all.
    rows_per_file
        Rows per file (below 1,000,000: ``NUMBER`` is six digits).
    formats
        File formats, cycled over the files: ``"parquet"``, ``"fits"``.
    footprint
        ``(ra_min, ra_max, dec_min, dec_max)`` in degrees.
    bad_fraction
        Fraction of rows given one defect (of :data:`DEFECTS`, in equal shares).
    noise_scale
        ``k``: the fresh noise in units of each value's error (the reported error
        grows by ``sqrt(1 + k^2)``).
    seed
        Seed; file ``i`` draws from ``(seed, i)``.
    first_tile
        ``TILE_ID`` of the first file.
    client, n_workers
        Dask client, or else a local cluster of ``n_workers``: one task per file.
    progress
        Show a progress bar.

    Returns
    -------
    ResampleSummary
    """
    from jpasbatch.distribute.dask import map_tasks

    if not 0 < rows_per_file < MAX_NUMBER:
        raise JpasBatchError(f"rows_per_file must be below {MAX_NUMBER:,}, got {rows_per_file}")
    if unknown := set(formats) - set(_FORMATS):
        raise JpasBatchError(f"unknown formats {sorted(unknown)}; use {sorted(_FORMATS)}")
    if not 0 <= bad_fraction < 1:
        raise JpasBatchError(f"bad_fraction must be in [0, 1), got {bad_fraction}")
    if isinstance(pool, pa.Table):
        table = pool
    else:
        table = pa.concat_tables([read_catalogue(p) for p in pool])
    clean = Pool.from_table(table)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = [rows_per_file] * (n_rows // rows_per_file)
    if n_rows % rows_per_file:
        sizes.append(n_rows % rows_per_file)
    params = {
        "footprint": footprint,
        "bad_fraction": bad_fraction,
        "noise_scale": noise_scale,
        "seed": seed,
        "first_tile": first_tile,
    }
    calls = [(out, i, rows, formats[i % len(formats)], params) for i, rows in enumerate(sizes)]
    done = map_tasks(write_file, calls, what="resample", progress=progress, shared=[clean],
                     client=client, n_workers=n_workers)  # fmt: skip
    expected = {k: sum(d[1][k] for d in done) for k in DEFECTS}
    summary = ResampleSummary(
        rows=n_rows,
        files=[d[0] for d in done],
        expected_rejects=expected,
        pool_rows=len(clean.flux),
        seed=seed,
        footprint=list(footprint),
        noise_scale=noise_scale,
        parameters={"rows_per_file": rows_per_file, "formats": list(formats), **params},
    )
    atomic.write_json(out / SUMMARY, asdict(summary))
    return summary


def write_file(
    pool: Pool, out: Path, index: int, rows: int, fmt: str, params: dict
) -> tuple[str, dict[str, int]]:
    """Make and write file ``index``; returns its path and its defects by kind."""
    path = Path(out) / f"part-{index:05d}{_FORMATS[fmt]}"
    table, defects = resampled_table(pool, index, rows, **params)
    with atomic.replacing(path) as tmp:
        write_archive_like(tmp, table, layout="array", fmt=fmt)
    return str(path), defects


def resampled_table(
    pool: Pool,
    index: int,
    rows: int,
    *,
    footprint: tuple[float, float, float, float],
    bad_fraction: float,
    noise_scale: float,
    seed: int,
    first_tile: int,
) -> tuple[pa.Table, dict[str, int]]:
    """The OBSERVED table of file ``index`` and its defects by kind (see the module)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    pick = rng.integers(0, len(pool.flux), rows)
    flux0, sigma = pool.flux[pick], pool.sigma[pick]
    flux = flux0 + noise_scale * sigma * rng.standard_normal(flux0.shape, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        relerr = (np.sqrt(1 + noise_scale**2) * sigma / np.abs(flux)).astype(np.float32)
    ra0, ra1, dec0, dec1 = footprint
    ra = rng.uniform(ra0, ra1, rows)
    dec = np.degrees(np.arcsin(rng.uniform(*np.sin(np.radians([dec0, dec1])), rows)))
    number = np.arange(1, rows + 1, dtype=np.int32)
    flags, mask_flags = np.zeros(rows, np.int32), np.zeros(rows, np.int32)

    # defects: disjoint rows, one kind each; a repeated id copies an earlier clean row's
    n_bad = round(bad_fraction * rows) // len(DEFECTS) * len(DEFECTS)
    bad = rng.choice(np.arange(1, rows), size=min(n_bad, rows - 1), replace=False)
    kinds = dict(zip(DEFECTS, np.array_split(bad, len(DEFECTS)), strict=True))
    band = rng.integers(0, len(BANDS), rows)
    dec[kinds["BAD_COORD"]] = np.nan
    flux[kinds["BAD_FLUX"], band[kinds["BAD_FLUX"]]] = np.inf
    relerr[kinds["NEGATIVE_ERROR"], band[kinds["NEGATIVE_ERROR"]]] = -0.1
    flags[kinds["FLAGS"]] = 2
    mask_flags[kinds["MASK_FLAGS"]] = 1
    flux[np.ix_(kinds["FEW_BANDS"], np.arange(len(BANDS) - 49))] = np.nan  # 49 bands left
    clean = np.ones(rows, bool)
    clean[bad] = False
    clean_rows = np.flatnonzero(clean)
    for row in kinds["DUPLICATE_ID"]:
        earlier = clean_rows[: np.searchsorted(clean_rows, row)]
        number[row] = number[earlier[rng.integers(0, len(earlier))]]  # row 0 is always clean
    tile = first_tile + index
    columns = {
        "OBJECT_ID": tile * MAX_NUMBER + number.astype(np.int64),
        "TILE_ID": np.full(rows, tile, np.int32),
        "NUMBER": number,
        "ALPHA_J2000": ra,
        "DELTA_J2000": dec,
        "FLAGS": flags,
        "MASK_FLAGS": mask_flags,
        "CLASS_STAR": pool.class_star[pick],
    }
    columns |= {flux_column(b): flux[:, k] for k, b in enumerate(BANDS)}
    columns |= {relerr_column(b): relerr[:, k] for k, b in enumerate(BANDS)}
    return pa.table(columns, schema=OBSERVED), {k: len(v) for k, v in kinds.items()}
