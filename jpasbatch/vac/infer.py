"""Partitioned inference into a value-added catalogue, on Dask.

One Dask task per input partition (a HEALPix pixel of an ingested catalogue,
or a group of row groups of a plain Parquet file) reads it, runs the models
(loaded once per worker process), and writes, in this order and each
atomically: the partition's dense arrays (Zarr), its rejects, and its VAC rows
(Parquet). The Parquet file is the partition's completion mark, so

* a task that dies half-way (a lost worker) is simply run again by Dask and
  overwrites its own leftovers;
* ``resume=True`` skips the partitions whose VAC file exists, after checking
  they were made by the same code, models and parameters.

At the end, rows in = VAC rows + rejected rows is checked from the files on
disk, and the folder is finished as a HATS catalogue (when the input was one,
with its margin cache in ``margin/``: :mod:`jpasbatch.catalog.margin`) with
``provenance.json`` and ``vac_summary.json`` beside it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, model_validator

from jpasbatch.catalog.margin import write_margin
from jpasbatch.catalog.schemas import REJECTS
from jpasbatch.core import atomic
from jpasbatch.core.errors import JpasBatchError, RowConservationError
from jpasbatch.core.provenance import file_sha256, provenance
from jpasbatch.distribute.dask import dask_client, gather, tune_allocator, worker_threads
from jpasbatch.vac import arrays as zarr_arrays
from jpasbatch.vac import baseline
from jpasbatch.vac.kernel import process_partition
from jpasbatch.vac.models import load_models, model_checksum
from jpasbatch.vac.sources import (
    Partition,
    check_columns,
    is_hats,
    partitions,
    read_partition,
)

SUMMARY = "vac_summary.json"
PROVENANCE = "provenance.json"
STARTED = "started.json"
#: Beside a classifier: its real-sky figures against the template fit's.
REAL_SKY = "real_sky.json"


class InferOptions(BaseModel):
    """How the VAC's columns are computed: what ``jpasbatch infer`` and a job's ``infer``
    section share (see :class:`InferSpec` for each field)."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(65536, ge=1)
    rows_per_partition: int = Field(200_000, ge=1)
    dtype: Literal["float32", "bfloat16"] = "float32"
    templates: Literal["full", "coarse", "none"] = "full"
    class_source: Literal["auto", "classifier", "template", "combined"] = "auto"
    z_source: Literal["auto", "template", "foundation", "none"] = "auto"


class InferSpec(InferOptions):
    """A VAC production run.

    Attributes
    ----------
    catalogue
        Ingested HATS catalogue, Parquet file or folder, or a ``jpasbatch
        photometry`` output.
    model
        The classifier: a ``jpasbatch train`` run folder, ``model.json`` or
        ``forest.json``; None for a VAC of the template fit alone.
    foundation
        Optional foundation model (photo-z, physical parameters, embeddings).
    out
        The VAC folder.
    resume
        Continue an interrupted run in ``out`` (finished partitions are kept).
    batch_size
        Rows per forward pass of the classifier (the foundation model uses its
        own, :func:`~jpasbatch.foundation.predict.default_batch_size`).
    rows_per_partition
        Plain Parquet inputs: rows per task (HATS inputs keep their pixels).
    device, dtype
        Where the networks run and in which precision (``bfloat16``: faster on
        GPUs and AMX CPUs, probabilities agree to ~1e-2).
    gpus
        Start a dask-cuda ``LocalCUDACluster`` on this many GPUs (needs the
        ``gpu`` extra); implies ``device = cuda``.
    workers, dask_address
        Local Dask workers (default: one per core, at most 8), or a running scheduler.
    templates
        The template fit (``CLASS_TEMPLATE``, ``Z_TEMPLATE``, p(z); see
        :mod:`jpasbatch.vac.baseline`): ``full`` grids, ``coarse`` (quick looks
        and tests) or ``none``.
    class_source
        Where ``CLASS`` comes from: ``classifier``, ``template``, or ``combined``
        (the classifier's probabilities as a prior on the template fit's). ``auto``:
        the best of them by macro F1 on real objects as recorded in the
        classifier's ``real_sky.json`` (``jpasbatch real-check --record``); the
        template fit when there is no such record.
    z_source
        Where ``Z_PHOT`` comes from: ``template`` (``Z_TEMPLATE``) or ``foundation``
        (the foundation model's, always also in ``Z_PHOT_OJALA``). ``auto``: the
        foundation model's when its ``real_sky.json`` records a larger mean of the
        QSO and galaxy fractions with |dz|/(1+z) < 0.15 on real objects than the
        template fit's; the template fit's otherwise (no record, no foundation model).
        ``none``: no ``Z_PHOT``.
    keep_columns
        Input columns copied into the VAC (None: ``ID``, ``SOURCE_ID``,
        ``SPECNAME``, ``SOURCE``, ``RA``, ``DEC`` where present; see
        :func:`jpasbatch.vac.kernel.process_partition`).
    """

    catalogue: Path
    model: Path | None = None
    foundation: Path | None = None
    out: Path = Path("vac")
    resume: bool = False
    device: Literal["cpu", "cuda"] = "cpu"
    gpus: int = Field(0, ge=0)
    workers: int | None = Field(None, ge=1)
    dask_address: str | None = None
    keep_columns: list[str] | None = None

    @model_validator(mode="after")
    def _something_to_run(self) -> InferSpec:
        if self.model is None and self.templates == "none":
            raise ValueError("no model and no template fit: give --model or keep the templates")
        if self.class_source == "classifier" and self.model is None:
            raise ValueError("class_source 'classifier' needs a model")
        if self.class_source == "template" and self.templates == "none":
            raise ValueError("class_source 'template' needs the template fit")
        if self.class_source == "combined" and (self.model is None or self.templates == "none"):
            raise ValueError("class_source 'combined' needs a model and the template fit")
        if self.z_source == "foundation" and self.foundation is None:
            raise ValueError("z_source 'foundation' needs a foundation model")
        if self.z_source == "template" and self.templates == "none":
            raise ValueError("z_source 'template' needs the template fit")
        return self


def infer(spec: InferSpec, *, client=None, progress: bool = True) -> dict:
    """Produce the VAC of ``spec``; returns its summary (also ``out/vac_summary.json``)."""
    out = spec.out
    if spec.gpus:
        spec = spec.model_copy(update={"device": "cuda"})
    # everything that can be checked without the cluster is, before OUT is touched
    parts = partitions(spec.catalogue, spec.rows_per_partition)
    for path in dict.fromkeys(p.path for p in parts):
        check_columns(pq.read_schema(path), path)
    spec = spec.model_copy(update={"class_source": class_source(spec), "z_source": z_source(spec)})
    _check_models(spec)
    checksums = {}
    if spec.model is not None:
        checksums["classifier"] = model_checksum(_model_file(spec.model))
    if spec.foundation is not None:
        checksums["foundation"] = model_checksum(spec.foundation)
    run = _run_record(spec, checksums)
    existed = out.exists()
    _prepare_out(out, spec.resume)
    try:
        return _produce(spec, parts, run, checksums, client, progress)
    except Exception:
        if not spec.resume:
            _remove_unfinished(out, existed)
        raise


def _produce(
    spec: InferSpec, parts: list[Partition], run: dict, checksums: dict, client, progress: bool
) -> dict:
    """The run proper, once the inputs are checked and ``spec.out`` is prepared."""
    out, run_id = spec.out, run["id"]
    _check_same_input(out, spec)
    (out / "dataset").mkdir(parents=True, exist_ok=True)
    (out / "rejects").mkdir(exist_ok=True)
    done = [p for p in parts if (out / "dataset" / f"{p.key}.parquet").exists()]
    for p in done:
        _check_same_run(out / "dataset" / f"{p.key}.parquet", run_id)
    attrs = {"provenance_id": run_id}
    if spec.templates != "none":
        # the p(z) grid: PZ_TEMPLATE rows are qp.interp yvals on these xvals
        attrs[zarr_arrays.PZ_GRID] = baseline.grids(spec.templates == "coarse").z["QSO"].tolist()
    zarr_arrays.init_store(out, attrs)
    todo = [p for p in parts if p not in done]
    t0 = time.perf_counter()
    results = _run_tasks(todo, spec, run_id, client, progress)
    seconds = time.perf_counter() - t0
    _remove_leftovers(out)
    counts = _conserved(out, parts)
    inputs = _input_checksums(out, parts, results)
    record = provenance(inputs=inputs, parameters=json.loads(spec.model_dump_json()))
    record |= {
        "id": run_id,
        "models": checksums,
        "run": run,
        "class_source": spec.class_source,
        "z_phot_source": spec.z_source,
    }
    if is_hats(spec.catalogue):
        record["catalogue_provenance"] = _hats_provenance(spec.catalogue)
    (out / PROVENANCE).write_text(json.dumps(record, indent=1))
    _finish_catalogue(out, spec, parts, counts["rows_vac"], record)
    margin = None
    if is_hats(spec.catalogue):
        # LSDB cross-matches with the VAC are complete at pixel edges only with it
        with _cluster(spec, client) as c:
            margin = str(write_margin(out, c, progress=progress))
    summary = {
        **counts,
        "partitions": len(parts),
        "partitions_resumed": len(done),
        "seconds": seconds,
        "rows_per_s": sum(r["rows_in"] for r in results) / seconds if seconds else None,
        "vac": str(out),
        "arrays": str(out / zarr_arrays.STORE),
        "rejects": str(out / "rejects"),
        "margin": margin,
        "provenance_id": run_id,
    }
    (out / SUMMARY).write_text(json.dumps(summary, indent=1))
    return summary


# --------------------------------------------------------------------------- the task
def run_partition(part: Partition, spec: dict, run_id: str) -> dict:
    """The Dask task: one partition in, its arrays, rejects and VAC rows written."""
    spec_ = InferSpec(**spec)
    _limit_threads()
    tune_allocator()
    t0 = time.perf_counter()
    # Bad input and bad model files fail the same way on every try: they come back
    # as a result (not an exception Dask would retry) and stop the run once.
    result, error = None, ""
    try:
        models = load_models(
            spec_.model,
            spec_.foundation,
            device=spec_.device,
            dtype=spec_.dtype,
            templates=None if spec_.templates == "none" else spec_.templates,
            class_source=spec_.class_source,
            z_source=spec_.z_source,
        )
        table = read_partition(part)
        result = process_partition(
            table,
            models,
            source=part.path,
            first_row=_first_row(part),
            provenance_id=run_id,
            batch_size=spec_.batch_size,
            keep_columns=spec_.keep_columns,
        )
    except JpasBatchError as exc:
        error = str(exc)
    out = spec_.out
    if result is None:
        return {"key": part.key, "error": error}
    zarr_arrays.write_partition_arrays(
        out, part.key, result.vac["OBJECT_ID"].to_numpy(), result.arrays
    )
    name = zarr_arrays.group_name(part.key)
    atomic.write_parquet(result.rejects, out / "rejects" / f"{name}.parquet")
    meta = {"provenance_id": run_id, "source": part.path, "source_rows": str(table.num_rows)}
    atomic.write_parquet(_with_metadata(result.vac, meta), out / "dataset" / f"{part.key}.parquet")
    return {
        "key": part.key,
        "rows_in": table.num_rows,
        "rows_vac": result.vac.num_rows,
        "rows_rejected": result.rejects.num_rows,
        "source_sha256": file_sha256(part.path) if part.row_groups is None else None,
        "seconds": time.perf_counter() - t0,
    }


def _limit_threads() -> None:
    """As many torch threads as the Dask worker has, not as the machine has cores.

    Two single-threaded workers on two cores each running torch with two threads
    would fight for the cores (and make the numbers depend on the scheduling).
    """
    import torch

    n = worker_threads()
    if n is not None and torch.get_num_threads() != n:
        torch.set_num_threads(n)


def _run_tasks(todo, spec: InferSpec, run_id: str, client, progress: bool) -> list[dict]:
    if not todo:
        return []
    payload = json.loads(spec.model_dump_json())
    with _cluster(spec, client) as c:
        # keys unique per output and input: two runs of the same models on one
        # scheduler must never be taken for the same task
        where = hashlib.sha256(str(spec.out.resolve()).encode()).hexdigest()[:8]
        futures = [
            c.submit(
                run_partition, p, payload, run_id, key=f"vac-{run_id}-{where}-{p.key}", retries=2
            )
            for p in todo
        ]
        return gather(futures, progress, "infer", unit="row", total=sum(p.rows for p in todo),
                      size=lambda res: res["rows_in"], check=_task_error)  # fmt: skip


def _cluster(spec: InferSpec, client):
    """The given client, the scheduler at ``dask_address``, or a cluster of the run's own
    (dask-cuda's on ``spec.gpus`` GPUs)."""
    return dask_client(client, address=spec.dask_address, n_workers=spec.workers, gpus=spec.gpus)


def _task_error(result: dict) -> None:
    """A partition's task reports bad input as a result (a retry would not help)."""
    if "error" in result:
        raise JpasBatchError(result["error"])


# --------------------------------------------------------------------------- bookkeeping
def _prepare_out(out: Path, resume: bool) -> None:
    if out.exists() and not resume:
        # replace only what an inference wrote: never delete a folder we did not make
        ours = any((out / f).exists() for f in (SUMMARY, STARTED, zarr_arrays.STORE))
        if any(out.iterdir()) and not ours:
            raise JpasBatchError(f"{out} exists and is not a VAC; choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / SUMMARY).unlink(missing_ok=True)  # a resumed run is unfinished until the end


def _check_models(spec: InferSpec) -> None:
    """Load the models once here (on the CPU): a damaged or refused model file is one
    clear error before any cluster starts or anything is written."""
    if spec.model is not None:
        from jpasbatch.classify.load import load_model

        load_model(spec.model)
    if spec.foundation is not None:
        from jpasbatch.foundation.predict import FoundationPredictor

        FoundationPredictor.load(spec.foundation)


def _remove_unfinished(out: Path, existed: bool) -> None:
    """After a failed fresh run: remove what it made, unless a partition was finished.

    A finished partition is kept for ``--resume``; a run that failed before its
    first one (bad model, bad input) leaves nothing behind: ``out`` itself goes
    if the run created it, else only its contents (the old run's, already replaced).
    """
    if out.is_dir() and any((out / "dataset").rglob("*.parquet")):
        return
    atomic.remove_created(out, existed)


def class_source(spec: InferSpec) -> Literal["classifier", "template", "combined"]:
    """Resolve ``spec.class_source`` (see :class:`InferSpec`)."""
    if spec.class_source != "auto":
        return spec.class_source
    if spec.model is None:
        return "template"
    if spec.templates == "none":
        return "classifier"
    record = _model_file(spec.model).parent / REAL_SKY
    if not record.exists():
        # no evidence that the learned model transfers to real objects: the physics baseline
        return "template"
    figures = json.loads(record.read_text())
    scored = {m: f["macro_f1"] for m, f in figures.items() if f.get("macro_f1") is not None}
    return max(("template", "classifier", "combined"), key=lambda m: scored.get(m, -1.0))


def z_source(spec: InferSpec) -> Literal["template", "foundation", "none"]:
    """Resolve ``spec.z_source`` (see :class:`InferSpec`); ``none``: no photo-z at all."""
    if spec.z_source != "auto":
        return spec.z_source
    if spec.foundation is None:
        return "none" if spec.templates == "none" else "template"
    if spec.templates == "none":
        return "foundation"
    from jpasbatch.core.modelio import model_paths

    record = model_paths(spec.foundation)[1].parent / REAL_SKY
    if not record.exists():
        # no evidence that the learned photo-z transfers to real objects: the physics baseline
        return "template"
    figures = json.loads(record.read_text())

    def score(method: str) -> float:
        f = figures.get(method, {})
        hits = [f.get(k) for k in ("qso_dz015", "galaxy_dz015")]
        return float(np.mean(hits)) if all(h is not None for h in hits) else -1.0

    return "foundation" if score("foundation") > score("template") else "template"


def _model_file(path: Path) -> Path:
    from jpasbatch.classify.load import model_file

    return model_file(path)


def _run_record(spec: InferSpec, checksums: dict) -> dict:
    """What makes a VAC row what it is; its hash is the run's ``PROVENANCE_ID``.

    Paths and engine settings are left out: the same models on the same input
    give the same rows wherever they run.
    """
    from jpasbatch.core.version import __version__

    keys = ("batch_size", "device", "dtype", "keep_columns", "templates", "class_source")
    params = spec.model_dump(include={*keys, "z_source"})
    record = {"code_version": __version__, "models": checksums, "parameters": params}
    blob = json.dumps(record, sort_keys=True).encode()
    return record | {"id": hashlib.sha256(blob).hexdigest()[:16]}


def _check_same_input(out: Path, spec: InferSpec) -> None:
    """Record what a resume must match (``out/started.json``); refuse a resume that differs.

    The partitions' keys and row numbers depend on the input and on
    ``rows_per_partition``, so finished partitions of another input must not be kept.
    """
    started = {
        "catalogue": str(spec.catalogue.resolve()),
        "rows_per_partition": spec.rows_per_partition,
    }
    path = out / STARTED
    if path.exists():
        before = json.loads(path.read_text())
        changed = sorted(k for k in started if before.get(k) != started[k])
        if changed:
            raise JpasBatchError(
                f"{out} was started with another {', '.join(changed)} "
                f"({', '.join(str(before.get(k)) for k in changed)}): rerun without --resume"
            )
    path.write_text(json.dumps(started, indent=1))


def _check_same_run(path: Path, run_id: str) -> None:
    meta = pq.read_schema(path).metadata or {}
    found = meta.get(b"provenance_id", b"").decode()
    if found != run_id:
        raise JpasBatchError(
            f"{path} was made by another run ({found or 'unknown'}; this one is {run_id}): "
            "the models, code or parameters changed. Rerun without --resume."
        )


def _remove_leftovers(out: Path) -> None:
    """Temporary files of task attempts that died mid-write (their retries finished)."""
    atomic.remove_leftovers(out / "dataset", recursive=True)
    atomic.remove_leftovers(out / "rejects")
    atomic.remove_leftovers(out / zarr_arrays.STORE)


def _first_row(part: Partition) -> int:
    if not part.row_groups:
        return 0
    meta = pq.read_metadata(part.path)
    return sum(meta.row_group(g).num_rows for g in range(part.row_groups[0]))


def _with_metadata(table: pa.Table, meta: dict[str, str]) -> pa.Table:
    old = table.schema.metadata or {}
    return table.replace_schema_metadata(
        {**old, **{k.encode(): v.encode() for k, v in meta.items()}}
    )


def _conserved(out: Path, parts: list[Partition]) -> dict:
    """Rows in, VAC rows and rejects, from the files on disk; they must add up."""
    rows_in = sum(p.rows for p in parts)
    rows_vac = sum(pq.read_metadata(out / "dataset" / f"{p.key}.parquet").num_rows for p in parts)
    reasons: dict[str, int] = {}
    for p in parts:
        path = out / "rejects" / f"{zarr_arrays.group_name(p.key)}.parquet"
        for r in pq.read_table(path, columns=["REASON"], schema=REJECTS).column(0).to_pylist():
            reasons[r] = reasons.get(r, 0) + 1
    rows_rejected = sum(reasons.values())
    if rows_in != rows_vac + rows_rejected:
        raise RowConservationError(
            f"rows in ({rows_in}) != VAC rows ({rows_vac}) + rows rejected ({rows_rejected})"
        )
    return {
        "rows_in": rows_in,
        "rows_vac": rows_vac,
        "rows_rejected": rows_rejected,
        "rejected_by_reason": reasons,
    }


def _input_checksums(out: Path, parts: list[Partition], results: list[dict]) -> dict[str, str]:
    """SHA-256 of every input file (partition files hashed by their tasks, while read)."""
    sums = {r["key"]: r["source_sha256"] for r in results}
    files = {}
    for p in parts:
        if p.path not in files:
            files[p.path] = sums.get(p.key) or file_sha256(p.path)
    return files


def _hats_provenance(catalogue: Path) -> dict | None:
    from hats.catalog.dataset.table_properties import TableProperties

    props = TableProperties.read_from_dir(catalogue)
    raw = (props.__pydantic_extra__ or {}).get("jpasbatch_provenance")
    return json.loads(raw) if raw else None


def _finish_catalogue(out: Path, spec: InferSpec, parts, total: int, record: dict) -> None:
    """HATS metadata (HEALPix inputs) or ``_properties.json`` (row partitions)."""
    if not is_hats(spec.catalogue):
        from jpasbatch.catalog.rowpart import PROPERTIES

        props = {"total_rows": total, "partitions": [f"dataset/{p.key}.parquet" for p in parts]}
        (out / PROPERTIES).write_text(json.dumps(props | {"provenance": record}, indent=1))
        return
    from hats.catalog import PartitionInfo
    from hats.catalog.dataset.table_properties import TableProperties
    from hats.io.parquet_metadata import write_parquet_metadata
    from hats.pixel_math import HealpixPixel

    source = TableProperties.read_from_dir(spec.catalogue)
    pixels = [HealpixPixel(*p.pixel) for p in parts]
    PartitionInfo.from_healpix(pixels).write_to_file(partition_info_file=out / "partition_info.csv")
    props = TableProperties(
        catalog_name=out.name,
        catalog_type="object",
        total_rows=total,
        ra_column="ALPHA_J2000",
        dec_column="DELTA_J2000",
        healpix_column=source.healpix_column,
        healpix_order=source.healpix_order,
        jpasbatch_provenance=json.dumps(record, separators=(",", ":")),
    )
    props.to_properties_file(out)
    write_parquet_metadata(out)
