"""The models a VAC is made with, loaded once per process, and their output columns.

A :class:`ModelSet` holds the star / galaxy / QSO classifier (ANN committee
``model.json`` or random forest ``forest.json``), optionally the foundation
model (photo-z, physical parameters, embeddings), and the template fit
(:mod:`jpasbatch.vac.baseline`, on by default). Dask workers
call :func:`load_models` for every partition; the cache makes that a load per
worker process, not per partition.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import torch

from jpasbatch.catalog.cuts import has_reference, photometry_arrays
from jpasbatch.catalog.schemas import CLASSES
from jpasbatch.classify.classifier import Classifier
from jpasbatch.classify.load import load_model
from jpasbatch.core.metrics import entropy
from jpasbatch.core.provenance import file_sha256
from jpasbatch.vac import baseline

#: Where ``CLASS`` comes from: the classifier, the template fit, or the classifier
#: as a prior on the template fit (:func:`jpasbatch.vac.baseline.combined_class`).
ClassSource = Literal["classifier", "template", "combined"]
ZSource = Literal["template", "foundation", "none"]
_CLASS_COLUMN = {
    "classifier": "CLASS_ANN",
    "template": "CLASS_TEMPLATE",
    "combined": "CLASS_COMBINED",
}


#: Most rows per template-fit batch, whatever the classifier's ``batch_size`` (65,536 on
#: a CPU, 262,144 in jobs/full_survey.yaml): the fit's chi2, p(z) and temporaries on
#: both redshift grids take ~50 kB a row, and batches of 65,536 took the workers of the
#: 10 M rehearsal to 7.7-9.0 GB. At 4,096 the temporaries stay under the workers' mmap
#: threshold (64 MB), so glibc reuses them instead of page-faulting them in anew: on the
#: rehearsal's largest partition (194,106 rows, one process) 0.42 ms of CPU a row and
#: 2.8 GB, against 0.52 ms and 3.3 GB at 16,384 (docs/rehearsal/vac_cpu.py).
TEMPLATE_BATCH = 4_096


@dataclass
class ModelSet:
    """The loaded models and what identifies them.

    Attributes
    ----------
    classifier
        A :class:`~jpasbatch.classify.classifier.Classifier` or forest, or None.
    foundation
        A :class:`~jpasbatch.foundation.predict.FoundationPredictor`, or None.
    device, dtype
        Where and in which precision the networks run.
    templates
        Run the template fit: ``"full"`` grids, ``"coarse"`` (tests), or None.
    class_source
        Which of the classifier and the template fit gives ``CLASS``.
    z_source
        Which of the template fit and the foundation model gives ``Z_PHOT``.
    """

    classifier: object | None
    foundation: object | None = None
    device: str = "cpu"
    dtype: str = "float32"
    templates: Literal["full", "coarse"] | None = "full"
    class_source: ClassSource = "template"
    z_source: ZSource = "template"

    def predict(self, table: pa.Table, batch_size: int = 65536) -> tuple[dict, dict]:
        """Per-row VAC columns and dense arrays of the rows of ``table``.

        The classifier sees the rows with a positive rSDSS flux (its reference
        band); the others get empty classifier columns (NaN, ``""``). The classifier
        and the template fit take ``batch_size`` rows at a time, so memory follows
        the batch, not the partition (the foundation model keeps its own batch).
        """
        flux, relerr = photometry_arrays(table)
        flux = flux.astype(np.float64)
        columns: dict[str, np.ndarray] = {}
        arrays: dict[str, np.ndarray] = {}
        dtype = torch.bfloat16 if self.dtype == "bfloat16" else torch.float32
        ref = has_reference(flux)
        p = np.full((len(flux), len(CLASSES)), np.nan)
        if isinstance(self.classifier, Classifier):
            run = {"batch_size": batch_size, "device": self.device, "dtype": dtype}
            p[ref], members, _ = self.classifier.predict_with_members(flux[ref], **run)
            full = np.full((len(flux), members.shape[0], members.shape[2]), np.nan, np.float32)
            full[ref] = np.moveaxis(members, 0, 1)
            arrays["P_MEMBERS"] = full  # (N, K, 4)
        elif self.classifier is not None:
            p[ref], _ = self.classifier.predict_proba(flux[ref])
        if self.classifier is not None:
            columns |= {f"P_{c}": p[:, k].astype(np.float32) for k, c in enumerate(CLASSES)}
            columns["CLASS_ANN"] = np.full(len(flux), "", dtype=object)
            columns["CLASS_ANN"][ref] = np.asarray(CLASSES, dtype=object)[p[ref].argmax(axis=1)]
            columns["ENTROPY"] = np.full(len(flux), np.nan, np.float32)
            columns["ENTROPY"][ref] = entropy(p[ref])
        if self.templates is not None:
            # Galactic extinction where the catalogue gives it (an EBV column)
            ebv = (
                table["EBV"].to_numpy(zero_copy_only=False) if "EBV" in table.column_names else None
            )
            # in batches of rows (see TEMPLATE_BATCH): a whole HATS partition of 770,000
            # rows took a worker to 12 GB (the 10 M rehearsal, docs/rehearsal/report.md)
            fits = [
                baseline.template_fit(flux[rows], relerr[rows], self.templates == "coarse",
                                      None if ebv is None else ebv[rows])
                for rows in _batches(len(flux), min(batch_size, TEMPLATE_BATCH))
            ]  # fmt: skip
            cols = {k: np.concatenate([c[k] for c, _ in fits]) for k in fits[0][0]}
            arr = {k: np.concatenate([a[k] for _, a in fits]) for k in fits[0][1]}
            columns |= cols
            arrays |= arr
            if self.z_source == "template":  # provenance.json z_phot_source says which
                columns["Z_PHOT"] = cols["Z_TEMPLATE"]
                columns["Z_PHOT_ERR"] = cols["Z_TEMPLATE_ERR"]
        if self.class_source == "combined":
            pt = np.column_stack([columns[f"P_TEMPLATE_{c}"] for c in CLASSES])
            columns["CLASS_COMBINED"] = baseline.combined_class(p, pt)
        columns["CLASS"] = columns[_CLASS_COLUMN[self.class_source]]
        if self.foundation is not None:
            # the foundation model keeps its own batch size: a classifier batch of 65536
            # objects x ~70 tokens x 1024 activations would need ~18 GB
            cols, arr = self.foundation.predict(table, dtype=self.dtype, device=self.device)
            for name, values in cols.items():
                # the classifier owns P_<CLASS>, Z_PHOT is the chosen source's: the
                # foundation model's go beside them
                own = name.startswith(("P_", "Z_PHOT"))
                columns[f"{name}_OJALA" if own else name] = values
            if self.z_source == "foundation":
                columns["Z_PHOT"] = cols["Z_PHOT"]
                columns["Z_PHOT_ERR"] = cols["Z_PHOT_ERR"]
            arrays |= arr
        return columns, arrays

    @property
    def r_range(self) -> tuple[float, float] | None:
        """The classifier's training range in rSDSS (its feature scaler's), if known."""
        scaler = getattr(self.classifier, "scaler", None)
        return None if scaler is None else (scaler.r_min, scaler.r_max)


def _batches(n: int, size: int) -> list[slice]:
    """Consecutive row slices of at most ``size`` covering ``n`` rows (one, empty, if none)."""
    return [slice(start, min(start + size, n)) for start in range(0, max(n, 1), size)]


_CACHE: dict[tuple, ModelSet] = {}


def load_models(
    classifier: str | Path | None,
    foundation: str | Path | None = None,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    templates: Literal["full", "coarse"] | None = "full",
    class_source: ClassSource = "template",
    z_source: ZSource = "template",
) -> ModelSet:
    """The :class:`ModelSet` of these files, loaded at most once per process.

    Keyed by path and modification time, so a retrained model is picked up.
    """
    paths = [Path(p) for p in (classifier, foundation) if p is not None]
    key = (
        *[(str(p.resolve()), p.stat().st_mtime_ns) for p in paths],
        classifier is None,
        device,
        dtype,
        templates,
        class_source,
        z_source,
    )
    if key not in _CACHE:
        fm = None
        if foundation is not None:
            from jpasbatch.foundation.predict import FoundationPredictor

            fm = FoundationPredictor.load(foundation)
        clf = None if classifier is None else load_model(classifier)
        _CACHE.clear()  # one model set per worker: a new job's models replace the last
        _CACHE[key] = ModelSet(clf, fm, device, dtype, templates, class_source, z_source)
    return _CACHE[key]


def model_checksum(path: str | Path) -> str:
    """SHA-256 of a model file, or of the sorted files of a model folder."""
    path = Path(path)
    if path.is_file():
        return file_sha256(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f.relative_to(path).as_posix().encode())
        h.update(file_sha256(f).encode())
    return h.hexdigest()
