"""The models a VAC is made with, loaded once per process, and their output columns.

A :class:`ModelSet` holds the star / galaxy / QSO classifier (ANN committee
``model.pt`` or random forest ``forest.joblib``) and, optionally, the
foundation model (photo-z, physical parameters, embeddings). Dask workers
call :func:`load_models` for every partition; the cache makes that a load per
worker process, not per partition.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from jpasbatch.catalog.cuts import photometry_arrays
from jpasbatch.catalog.schemas import CLASSES
from jpasbatch.classify.classifier import Classifier
from jpasbatch.classify.evaluate import load_model
from jpasbatch.classify.metrics import entropy
from jpasbatch.provenance import file_sha256


@dataclass
class ModelSet:
    """The loaded models and what identifies them.

    Attributes
    ----------
    classifier
        A :class:`~jpasbatch.classify.classifier.Classifier` or forest.
    foundation
        A :class:`~jpasbatch.foundation.predict.FoundationPredictor`, or None.
    device, dtype
        Where and in which precision the networks run.
    """

    classifier: object
    foundation: object | None = None
    device: str = "cpu"
    dtype: str = "float32"

    def predict(self, table: pa.Table, batch_size: int = 65536) -> tuple[dict, dict]:
        """Per-row VAC columns and dense arrays of the rows of ``table``.

        Every row of ``table`` must have a positive rSDSS flux (the kernel
        rejects the others first).
        """
        flux, _ = photometry_arrays(table)
        flux = flux.astype(np.float64)
        columns: dict[str, np.ndarray] = {}
        arrays: dict[str, np.ndarray] = {}
        dtype = torch.bfloat16 if self.dtype == "bfloat16" else torch.float32
        if isinstance(self.classifier, Classifier):
            run = {"batch_size": batch_size, "device": self.device, "dtype": dtype}
            p, members, _ = self.classifier.predict_with_members(flux, **run)
            arrays["P_MEMBERS"] = np.moveaxis(members, 0, 1).astype(np.float32)  # (N, K, 4)
        else:
            p, _ = self.classifier.predict_proba(flux)
        columns |= {f"P_{c}": p[:, k].astype(np.float32) for k, c in enumerate(CLASSES)}
        columns["CLASS"] = np.asarray(CLASSES, dtype=object)[p.argmax(axis=1)]
        columns["ENTROPY"] = entropy(p).astype(np.float32)
        if self.foundation is not None:
            # the foundation model keeps its own batch size: a classifier batch of 65536
            # objects x ~70 tokens x 1024 activations would need ~18 GB
            cols, arr = self.foundation.predict(table, dtype=self.dtype, device=self.device)
            for name, values in cols.items():
                # the classifier owns P_<CLASS>; the foundation model's go beside them
                columns[f"{name}_OJALA" if name.startswith("P_") else name] = values
            arrays |= arr
        return columns, arrays

    @property
    def r_range(self) -> tuple[float, float] | None:
        """The classifier's training range in rSDSS (its feature scaler's), if known."""
        scaler = getattr(self.classifier, "scaler", None)
        return None if scaler is None else (scaler.r_min, scaler.r_max)


_CACHE: dict[tuple, ModelSet] = {}


def load_models(
    classifier: str | Path,
    foundation: str | Path | None = None,
    *,
    device: str = "cpu",
    dtype: str = "float32",
) -> ModelSet:
    """The :class:`ModelSet` of these files, loaded at most once per process.

    Keyed by path and modification time, so a retrained model is picked up.
    """
    paths = [Path(classifier)] + ([Path(foundation)] if foundation else [])
    key = (*[(str(p.resolve()), p.stat().st_mtime_ns) for p in paths], device, dtype)
    if key not in _CACHE:
        fm = None
        if foundation is not None:
            from jpasbatch.foundation.predict import FoundationPredictor

            fm = FoundationPredictor.load(foundation)
        clf = load_model(classifier)
        _CACHE.clear()  # one model set per worker: a new job's models replace the last
        _CACHE[key] = ModelSet(clf, fm, device, dtype)
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
