"""Ingest survey catalogues into a HATS catalogue plus a rejects table.

Two stages, both resumable:

1. **validate**: each input file is streamed in chunks; every chunk is checked
   and cut, its kept rows and its rejects (with reasons) are written as Parquet
   files, atomically, and a marker records the chunk as done. Memory stays at a
   few chunks whatever the catalogue size. Duplicate ids are then found with one
   global sort of the kept ids (the first occurrence is kept).
2. **partition**: on the Dask cluster, the kept rows are mapped onto HEALPix
   pixels and the HATS catalogue is written with at most
   ``max_rows_per_partition`` rows per pixel. The default ``"direct"``
   partitioner (:mod:`jpasbatch.catalog.partition`) reads the kept chunks once,
   since validation wrote each sorted by ``_healpix_29``; ``"hats-import"`` runs
   hats-import's map / split / reduce pipeline on them. Both write the same
   pixels, rows and values (hats' pixel choice, sort order and file options).

The output folder is the HATS catalogue itself (``lsdb.open_catalog(DIR)``), with
its margin cache in ``margin/`` (:mod:`jpasbatch.catalog.margin`: open it with
``margin_cache=DIR / "margin"`` for cross-matches complete at pixel edges),
``rejects/`` (one row per removed input row, schema ``REJECTS``) and
``ingest_summary.json`` beside the HATS files. Rows in = rows kept + rows
rejected is checked from the files written, on every run.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from jpasbatch.catalog.cuts import REASONS, QualityCuts, reject_reasons
from jpasbatch.catalog.margin import MARGIN_ARCSEC, write_margin
from jpasbatch.catalog.partition import ZSTD_LEVEL, sort_by_spatial_index, write_kept
from jpasbatch.catalog.readers import ColumnMap, count_rows, iter_chunks
from jpasbatch.catalog.schemas import HEALPIX_COLUMN, OBSERVED, REJECTS, with_astropy_units
from jpasbatch.core import atomic
from jpasbatch.core.errors import JpasBatchError, RowConservationError
from jpasbatch.core.progress import disable as progress_disable
from jpasbatch.core.progress import on_terminal
from jpasbatch.core.provenance import file_sha256, provenance
from jpasbatch.distribute.dask import dask_client

WORK = "_ingest_work"
#: Input row of each kept row, carried in the intermediate files only.
_ROW = "_SOURCE_ROW"
SUMMARY = "ingest_summary.json"
#: Partitioners: :mod:`jpasbatch.catalog.partition`, or hats-import's pipeline.
PARTITIONERS = ("direct", "hats-import")


@dataclass
class IngestSummary:
    """What an ingest did; written as ``ingest_summary.json``."""

    rows_in: int
    rows_kept: int
    rows_rejected: int
    rejected_by_reason: dict[str, int]
    partitions: int
    chunks_resumed: int
    seconds: dict[str, float]
    catalog: str
    rejects: str
    provenance: dict = field(default_factory=dict)
    margin: str = ""

    def to_text(self) -> str:
        """The summary as a person reads it."""
        lines = [
            f"rows in:       {self.rows_in:,}",
            f"rows kept:     {self.rows_kept:,}",
            f"rows rejected: {self.rows_rejected:,}",
        ]
        lines += [f"  {k:<15}{v:,}" for k, v in sorted(self.rejected_by_reason.items())]
        lines += [
            f"partitions:    {self.partitions}",
            f"chunks resumed from an earlier run: {self.chunks_resumed}",
            f"catalogue:     {self.catalog}",
            f"rejects:       {self.rejects}",
        ]
        return "\n".join(lines)


def ingest(
    inputs: list[str | Path],
    out: str | Path,
    *,
    columns: ColumnMap | None = None,
    cuts: QualityCuts | None = None,
    max_rows_per_partition: int = 1_000_000,
    chunk_rows: int = 200_000,
    highest_order: int = 10,
    margin_arcsec: float = MARGIN_ARCSEC,
    resume: bool = False,
    client=None,
    dask_address: str | None = None,
    n_workers: int | None = None,
    progress: bool = True,
    partitioner: str = "direct",
) -> IngestSummary:
    """Validate, cut and HEALPix-partition survey catalogues.

    Parameters
    ----------
    inputs
        Catalogue files (FITS, CSV, Parquet; CEFCA archive layout or ``columns``).
    out
        Output folder: becomes the HATS catalogue.
    columns
        Where each quantity is in the input files.
    cuts
        Quality cuts (default: FLAGS == 0, MASK_FLAGS == 0, >= 50 bands).
    max_rows_per_partition
        HATS pixel threshold.
    chunk_rows
        Rows per validation chunk (bounds memory).
    highest_order
        Deepest HEALPix order a partition may have.
    margin_arcsec
        Width of the margin cache (``out/margin``): LSDB cross-matches up to this
        radius are complete at partition edges.
    resume
        Continue an interrupted ingest in ``out``: finished chunks and finished
        hats-import stages are not redone. Without it, ``out`` is replaced.
    client, dask_address, n_workers
        The Dask cluster for partitioning: a client, a scheduler address, or else
        a local cluster of ``n_workers`` (started only once validation is done).
    progress
        Show progress bars.
    partitioner
        ``"direct"`` (one read of the kept rows; see
        :mod:`jpasbatch.catalog.partition`) or ``"hats-import"`` (its map / split /
        reduce pipeline). Same catalogue either way.

    Returns
    -------
    IngestSummary
    """
    out = Path(out)
    columns = columns or ColumnMap()
    cuts = cuts or QualityCuts()
    inputs = [Path(p) for p in inputs]
    if partitioner not in PARTITIONERS:
        raise JpasBatchError(f"unknown partitioner {partitioner!r}; one of {PARTITIONERS}")
    if resume and (out / SUMMARY).exists():
        return IngestSummary(**json.loads((out / SUMMARY).read_text()))
    existed = out.exists()
    if not resume and existed:
        # replace only what an ingest wrote: never delete a folder we did not make
        ours = any((out / n).exists() for n in (SUMMARY, WORK, "hats.properties", "rejects"))
        if any(out.iterdir()) and not ours:
            raise JpasBatchError(f"{out} exists and is not an ingest output; choose another --out")
        shutil.rmtree(out)
    try:
        prov, rows_in, resumed, t0 = _validate(
            inputs, out, columns, cuts, chunk_rows, highest_order, max_rows_per_partition, progress
        )
    except (JpasBatchError, OSError):
        # bad input stops a fresh run before its first partition: leave nothing behind
        # (an interrupted run keeps its finished chunks for --resume)
        if not resume:
            atomic.remove_created(out, existed)
        raise
    work = out / WORK
    t1 = time.perf_counter()
    kept_files = sorted(
        p for p in (work / "kept").glob("*.parquet") if pq.read_metadata(p).num_rows
    )
    if not kept_files:
        raise JpasBatchError(f"no row of {rows_in} passed the cuts; see {out / 'rejects'}")
    with dask_client(client, address=dask_address, n_workers=n_workers) as c:
        _partition(
            kept_files, out, max_rows_per_partition, highest_order, prov, c, progress, partitioner
        )
        t2 = time.perf_counter()
        margin = write_margin(out, c, arcsec=margin_arcsec, progress=progress)
    seconds = {"validate": t1 - t0, "partition": t2 - t1, "margin": time.perf_counter() - t2}
    summary = _summarise(out, rows_in, resumed, seconds, prov)
    summary.margin = str(margin)
    shutil.rmtree(work)
    (out / SUMMARY).write_text(json.dumps(asdict(summary), indent=1))
    return summary


def _validate(
    inputs: list[Path],
    out: Path,
    columns: ColumnMap,
    cuts: QualityCuts,
    chunk_rows: int,
    highest_order: int,
    max_rows_per_partition: int,
    progress: bool,
) -> tuple[dict, int, int, float]:
    """Stage 1 in ``out``: returns the provenance, rows in, chunks resumed, start time."""
    work = out / WORK
    for sub in ("kept", "done"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    (out / "rejects").mkdir(parents=True, exist_ok=True)
    prov = provenance(
        inputs={str(p): file_sha256(p) for p in inputs},
        parameters={
            "columns": asdict(columns),
            "cuts": cuts.model_dump(),
            "max_rows_per_partition": max_rows_per_partition,
            "chunk_rows": chunk_rows,
            "highest_order": highest_order,
        },
    )
    t0 = time.perf_counter()
    rows_in, resumed = _validate_chunks(inputs, out, columns, cuts, chunk_rows, progress)
    _reject_duplicates(out)
    return prov, rows_in, resumed, t0


# --------------------------------------------------------------------------- stage 1
def _validate_chunks(
    inputs: list[Path],
    out: Path,
    columns: ColumnMap,
    cuts: QualityCuts,
    chunk_rows: int,
    progress: bool,
) -> tuple[int, int]:
    """Cut every chunk of every input; returns the input rows and the chunks resumed."""
    work = out / WORK
    total = sum(count_rows(p, columns) for p in inputs)
    with tqdm(total=total, desc="validate", unit="row", disable=progress_disable(progress),
              unit_scale=True) as bar:  # fmt: skip
        # closed on an error too, so that the error line starts a line of its own
        rows_in = resumed = 0
        for i, path in enumerate(inputs):
            for j, chunk in enumerate(iter_chunks(path, columns, chunk_rows)):
                start, table = chunk.start, chunk.table
                key = f"f{i:04d}-c{j:06d}"
                marker = work / "done" / f"{key}.json"
                rows_in += table.num_rows
                bar.update(table.num_rows)
                if marker.exists():  # finished in an earlier run
                    resumed += 1
                    continue
                reason = reject_reasons(table, cuts)
                unreadable = chunk.bad_column != ""  # before any cut: its values are unknown
                reason[unreadable] = "BAD_VALUE"
                detail = np.array([REASONS.get(r, "") for r in reason], dtype=object)
                detail[unreadable] = chunk.bad_detail[unreadable]
                keep = reason == ""
                ids = pa.array(table.column("OBJECT_ID").to_numpy(), mask=~chunk.id_known)
                rows = start + np.arange(table.num_rows)
                # the input row travels with each kept row until partitioning, so a
                # later duplicate can still be reported with its place in the input
                kept = table.filter(pa.array(keep)).append_column(_ROW, pa.array(rows[keep]))
                # sorted by pixel now, so that partitioning reads each pixel's rows as
                # one slice of this file (no split pass over the data)
                kept = sort_by_spatial_index(kept, "ALPHA_J2000", "DELTA_J2000")
                write_kept(kept, work / "kept" / f"{key}.parquet")
                atomic.write_parquet(
                    _rejects_table(
                        path, rows[~keep], ids.filter(pa.array(~keep)), reason[~keep], detail[~keep]
                    ),
                    out / "rejects" / f"{key}.parquet",
                )
                marker.write_text(json.dumps({"rows": table.num_rows, "source": str(path)}))
    return rows_in, resumed


def _rejects_table(
    path: Path,
    rows: np.ndarray,
    ids: pa.Array,
    reasons: np.ndarray,
    details: np.ndarray | None = None,
) -> pa.Table:
    """Rejected rows in the REJECTS schema; ``details`` default to the reasons' texts."""
    if details is None:
        details = [REASONS[r] for r in reasons]
    return pa.table(
        {
            "SOURCE_FILE": pa.array([str(path)] * len(rows), pa.string()),
            "SOURCE_ROW": pa.array(rows, pa.int64()),
            "OBJECT_ID": ids.cast(pa.int64()),
            "REASON": pa.array(list(reasons), pa.string()),
            "DETAIL": pa.array(list(details), pa.string()),
        },
        schema=REJECTS,
    )


def _reject_duplicates(out: Path) -> None:
    """Move every repeat of an OBJECT_ID (after its first occurrence) to the rejects.

    Idempotent, so an interrupted run can simply redo it: a chunk's duplicates
    are written to their own rejects file before the kept file loses them.
    """
    work = out / WORK
    if (work / "dedup.done").exists():
        return
    files = sorted((work / "kept").glob("*.parquet"))  # in input order (f<file>-c<chunk>)
    tables = [pq.read_table(p, columns=["OBJECT_ID", _ROW]) for p in files]
    ids = [t.column(0).to_numpy() for t in tables]
    all_ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    # input order among equal ids (files in input order, rows by their input row:
    # a kept file is sorted by pixel), so that the first occurrence stays
    rows = np.concatenate([t.column(1).to_numpy() for t in tables] or [np.zeros(0, np.int64)])
    file_no = np.repeat(np.arange(len(files)), [a.size for a in ids])
    order = np.lexsort((rows, file_no, all_ids))
    repeat = np.zeros(all_ids.size, bool)
    repeat[order[1:]] = all_ids[order[1:]] == all_ids[order[:-1]]
    bounds = np.cumsum([0] + [a.size for a in ids])
    for k, path in enumerate(files):
        rep = repeat[bounds[k] : bounds[k + 1]]
        if not rep.any():
            continue
        table = pq.read_table(path)
        source = json.loads((work / "done" / f"{path.stem}.json").read_text())["source"]
        dup = table.filter(pa.array(rep))
        atomic.write_parquet(
            _rejects_table(
                Path(source),
                dup.column(_ROW).to_numpy(),
                dup.column("OBJECT_ID"),
                np.full(dup.num_rows, "DUPLICATE_ID", dtype=object),
            ),
            out / "rejects" / f"{path.stem}-dup.parquet",
        )
        write_kept(table.filter(pa.array(~rep)), path)  # still sorted by pixel
    (work / "dedup.done").write_text("")


# --------------------------------------------------------------------------- stage 2
def _partition(
    kept_files: list[Path],
    out: Path,
    max_rows: int,
    highest_order: int,
    prov: dict,
    client,
    progress: bool,
    partitioner: str,
) -> None:
    """Stage 2: the HATS catalogue in ``out`` from the kept files."""
    from hats_import.pipeline import pipeline_with_client

    from jpasbatch.catalog.partition import partition

    args = _import_arguments(kept_files, out, max_rows, highest_order, prov, progress)
    if partitioner == "hats-import":
        pipeline_with_client(args, client)
        return
    schema = pq.read_schema(args.use_schema_file)
    # the column hats-import's reduce adds first, as it adds it
    schema = schema.insert(0, pa.field(HEALPIX_COLUMN, pa.int64()))
    partition(kept_files, args, schema, client, progress=progress)


def _import_arguments(
    kept_files: list[Path], out: Path, max_rows: int, highest_order: int, prov: dict, progress: bool
):
    """hats-import's arguments for the catalogue: both partitioners take theirs from them."""
    from hats_import.catalog.arguments import ImportArguments
    from hats_import.catalog.file_readers.parquet import ParquetPyarrowReader

    work = out / WORK
    schema_file = work / "schema.parquet"
    # hats-import writes every pixel with this schema's metadata: the astropy
    # header makes the units readable by Table.read; it lists the _healpix_29
    # column hats-import appends, which astropy's reader needs
    pq.write_table(
        OBSERVED.empty_table().cast(with_astropy_units(OBSERVED, (HEALPIX_COLUMN,))), schema_file
    )
    return ImportArguments(
        output_path=str(out.parent),
        output_artifact_name=out.name,
        input_file_list=[str(p) for p in kept_files],
        file_reader=ParquetPyarrowReader(column_names=OBSERVED.names),
        ra_column="ALPHA_J2000",
        dec_column="DELTA_J2000",
        sort_columns="OBJECT_ID",
        pixel_threshold=max_rows,
        highest_healpix_order=highest_order,
        use_schema_file=str(schema_file),
        # hats' default zstd level 15 made the final write most of the ingest time
        write_table_kwargs={"compression_level": ZSTD_LEVEL},
        # we decide fresh-vs-resume ourselves (hats-import would wipe `out`)
        resume=True,
        tmp_dir=str(work / "hats"),
        progress_bar=on_terminal(progress),  # no \r redraws in log files
        simple_progress_bar=True,
        addl_hats_properties={"jpasbatch_provenance": json.dumps(prov, separators=(",", ":"))},
    )


# --------------------------------------------------------------------------- summary
def _summarise(out: Path, rows_in: int, resumed: int, seconds: dict, prov: dict) -> IngestSummary:
    import hats

    catalog = hats.read_hats(out)
    rows_kept = int(catalog.catalog_info.total_rows)
    reasons = Counter()
    for path in (out / "rejects").glob("*.parquet"):
        reasons.update(pq.read_table(path, columns=["REASON"]).column(0).to_pylist())
    rows_rejected = sum(reasons.values())
    if rows_in != rows_kept + rows_rejected:
        raise RowConservationError(
            f"rows in ({rows_in}) != rows kept ({rows_kept}) + rows rejected ({rows_rejected})"
        )
    return IngestSummary(
        rows_in=rows_in,
        rows_kept=rows_kept,
        rows_rejected=rows_rejected,
        rejected_by_reason=dict(reasons),
        partitions=len(catalog.get_healpix_pixels()),
        chunks_resumed=resumed,
        seconds=seconds,
        catalog=str(out),
        rejects=str(out / "rejects"),
        provenance=prov,
    )
