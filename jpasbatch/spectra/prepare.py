"""Spectra at scale: many survey files -> masked, resampled arrays + an index table.

Files are split into groups (one Dask task each); every task reads its files
with :func:`jpasbatch.spectra.io.read_spectra` (SDSS ``spec`` /
``spec-lite``, DESI coadds, plain tables), takes the readers' bad-pixel mask
(SDSS ``and_mask != 0`` or ``ivar == 0``, DESI ``MASK`` / ``ivar == 0``),
resamples flux and inverse variance onto the common log-wavelength grid
conserving flux (:func:`jpasbatch.spectra.grid.resample`), and writes one
partition of the :mod:`jpasbatch.spectra.store` layout. Normalisation for the
networks happens when they read the arrays (:func:`~jpasbatch.spectra.grid.network_input`),
so the stored flux keeps its physical units (erg s-1 cm-2 A-1).

Every spectrum ends up in exactly one index row or one rejects row: a file
that fails to read is one reject (its error message says why), a spectrum
with fewer than ``min_good`` usable grid pixels is one reject. Finished
partitions are skipped on a rerun.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from jpasbatch.core.errors import InputError
from jpasbatch.spectra import store
from jpasbatch.spectra.batch import Reject, read_files
from jpasbatch.spectra.grid import COMMON_GRID, LogGrid, median_snr, resample
from jpasbatch.spectra.io.options import ReadOptions

#: Usable grid pixels below which a spectrum is rejected.
MIN_GOOD = 500


def prepare_files(
    paths: Sequence[str | Path],
    grid: LogGrid = COMMON_GRID,
    min_good: int = MIN_GOOD,
    options: ReadOptions | None = None,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray, pd.DataFrame]:
    """Read and resample the spectra of ``paths`` (no Dask: the per-partition kernel).

    Files and spectra that cannot be used become rejects rows
    (:func:`jpasbatch.spectra.batch.read_files`); ``options`` are the readers'.

    Returns
    -------
    index, flux, ivar, good, rejects
        One index row per kept spectrum (``ID``, ``SOURCE``, ``SPEC``: position
        in its file, ``Z_REF`` and ``CLASS_REF`` when the file carries them,
        ``SNR``, ``N_GOOD``), the ``(n, grid.n)`` arrays, and the rejects
        (``SOURCE``, ``ID``, ``REASON``).
    """
    rows, fluxes, ivars, goods, rejects = [], [], [], [], []
    position: dict[str, int] = {}  # of each spectrum in its file, rejected ones counted
    for sp in read_files(paths, options):
        if isinstance(sp, Reject):
            if sp.id:
                position[sp.source] = position.get(sp.source, -1) + 1
            rejects.append({"SOURCE": sp.source, "ID": sp.id, "REASON": sp.message()})
            continue
        path = sp.meta["source"]
        position[path] = position.get(path, -1) + 1
        f, iv, ok = resample(sp.wavelength, sp.flux, sp.ivar, sp.good, grid)
        n_good = int(ok.sum())
        if n_good < min_good:
            reason = f"only {n_good} usable pixels on the grid (< {min_good})"
            rejects.append({"SOURCE": path, "ID": sp.id, "REASON": reason})
            continue
        z = sp.meta.get("Z")
        cls = sp.meta.get("CLASS")
        rows.append(
            {
                "ID": sp.id,
                "SOURCE": path,
                "SPEC": position[path],
                "Z_REF": float(z) if z is not None else np.nan,
                "CLASS_REF": str(cls).strip().upper() if cls is not None else "",
                "SNR": float(median_snr(f, iv, ok)[0]),
                "N_GOOD": n_good,
            }
        )
        fluxes.append(f)
        ivars.append(iv)
        goods.append(ok)
    cols = ["ID", "SOURCE", "SPEC", "Z_REF", "CLASS_REF", "SNR", "N_GOOD"]
    index = pd.DataFrame(rows, columns=cols)
    shape = (len(rows), grid.n)
    stack = lambda a, dt: np.stack(a).astype(dt) if a else np.zeros(shape, dt)  # noqa: E731
    rej = pd.DataFrame(rejects, columns=["SOURCE", "ID", "REASON"])
    return index, stack(fluxes, np.float32), stack(ivars, np.float32), stack(goods, bool), rej


def _prepare_partition(
    out: str, name: str, paths: list[str], min_good: int, options: ReadOptions | None
) -> tuple[int, int]:
    if store.is_done(out, name):
        index = pd.read_parquet(Path(out) / store.INDEX / f"{name}.parquet", columns=["ID"])
        rej = Path(out) / store.REJECTS / f"{name}.parquet"
        return len(index), len(pd.read_parquet(rej)) if rej.exists() else 0
    index, flux, ivar, good, rejects = prepare_files(paths, COMMON_GRID, min_good, options)
    store.write_partition(out, name, index, flux, ivar, good, rejects)
    return len(index), len(rejects)


def prepare(
    paths: Sequence[str | Path],
    out: str | Path,
    *,
    files_per_partition: int = 200,
    min_good: int = MIN_GOOD,
    options: ReadOptions | None = None,
    client=None,
    progress: bool = True,
) -> dict:
    """Prepare many spectra files on Dask; returns (and writes) the summary.

    Parameters
    ----------
    paths
        Spectra files (any format :func:`~jpasbatch.spectra.io.read_spectra` reads).
    out
        Output folder (the :mod:`jpasbatch.spectra.store` layout); a rerun resumes.
    files_per_partition
        Files per Dask task and output partition.
    min_good
        Spectra with fewer usable grid pixels are rejected.
    options
        How the files are read (masks, default flux unit; :class:`ReadOptions`).
    client
        A Dask client (default: a local cluster).
    progress
        Show a progress bar.
    """
    from jpasbatch.core.provenance import provenance
    from jpasbatch.distribute.dask import map_tasks

    paths = [str(p) for p in paths]
    if not paths:
        raise InputError("no spectra files given")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    options = options or ReadOptions()
    params = {
        "files_per_partition": files_per_partition,
        "min_good": min_good,
        # as JSON has it (tuples are lists), so that a resume compares equal
        "read_options": json.loads(json.dumps(dataclasses.asdict(options))),
    }
    store.check_resume(out, params | {"files": file_list_digest(paths)})
    t0 = time.perf_counter()
    groups = [paths[s : s + files_per_partition] for s in range(0, len(paths), files_per_partition)]
    calls = [
        (str(out), store.partition_name(k), g, min_good, options) for k, g in enumerate(groups)
    ]
    counts = map_tasks(_prepare_partition, calls, what="prepare", progress=progress, client=client)
    kept, rejected = sum(k for k, _ in counts), sum(r for _, r in counts)
    summary = {
        "kind": "prepared",
        "files": len(paths),
        "rows": kept,
        "rejected": rejected,
        "partitions": len(groups),
        "grid": COMMON_GRID.to_dict(),
        "seconds": time.perf_counter() - t0,
        "provenance": provenance(parameters=params),
    }
    store.write_summary(out, summary)
    return summary


def file_list_digest(paths: Sequence[str]) -> str:
    """SHA-256 of the ordered file list (what the partitions are made of)."""
    import hashlib

    return hashlib.sha256("\n".join(paths).encode()).hexdigest()[:16]
