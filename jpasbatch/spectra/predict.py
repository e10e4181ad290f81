"""Classes and redshifts of spectra from a trained model folder.

One row per spectrum:

``ID``, ``SOURCE``
    From the file (or the prepared index).
``P_STAR``, ``P_GALAXY``, ``P_QSO``, ``CLASS``
    The classifier's probabilities and its most probable class.
``Z``, ``Z_ERR``, ``ROBUST``
    GaSNet-II's redshift for the predicted class: the mean of its regressors
    and their standard deviation (Eq. 8); 0 for stars. ``ROBUST`` is
    ``Z_ERR <= `` that regressor's validation MAE (the paper's Sec. 4.2.3).
    With refinement (the default of :func:`predict_files`), ``Z`` and ``Z_ERR``
    are the template fit's and the network's move to ``Z_NET``, ``Z_NET_ERR``;
    ``SPECTYPE``, ``DELTACHI2``, ``ZWARN``, ``CHI2``, ``NPIXELS`` and each fitted
    class's ``CHI2_<CLASS>`` are added
    (:mod:`jpasbatch.spectra.refine_stage`).
``Z_<CLASS>``, ``Z_<CLASS>_ERR``
    Every regressor ensemble's answer, whatever the predicted class (to use
    when the class is known from elsewhere).
``Z_FNET``
    FNet's redshift (meaningful for QSOs).
``Z_REF``, ``CLASS_REF``, ``DV_KMS``, ``DV_FNET_KMS``, ``SNR``, ``N_GOOD``
    The file's own redshift and class when it has them (SDSS ``SPECOBJ``),
    and the velocity differences c (z - z_ref) / (1 + z_ref), ready for |dv|
    statistics; median S/N per pixel and usable pixels on the grid.

An ensemble runs as one grouped-convolution pass per batch on a GPU and one
member at a time on a CPU, whichever is faster there
(:attr:`SpectraModel.member_loop`); both give the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from jpasbatch.core import atomic
from jpasbatch.core.errors import InputError
from jpasbatch.spectra.gasnet import Z_RANGE, ensemble_statistics
from jpasbatch.spectra.grid import LogGrid, network_input
from jpasbatch.spectra.instrument import C_KMS
from jpasbatch.spectra.io.options import ReadOptions
from jpasbatch.spectra.loop import build_model
from jpasbatch.spectra.train import MODEL_FILE, load_model


class SpectraModel:
    """A trained GaSNet-II system (+ FNet) ready for inference.

    Parameters
    ----------
    saved
        The dict :func:`jpasbatch.spectra.train.train` saves (see
        :func:`~jpasbatch.spectra.train.load_model`).
    """

    def __init__(self, saved: dict, device: str = "cpu") -> None:
        self.saved = saved
        self.classes: list[str] = list(saved["classes"])
        self.grid = LogGrid(**saved["grid"])
        self.device = torch.device(device)
        self.nets: dict[str, torch.nn.Module] = {}
        self.targets: dict[str, str] = {}
        self._members: dict[str, list] = {}
        for part, p in saved["parts"].items():
            net = build_model(p["task"], p["hparams"], self.grid.n)
            net.load_state_dict(p["state_dict"])
            self.nets[part] = net.to(self.device).eval()
            if p["task"] == "regressor":
                self.targets[part] = p["target_class"]
        #: validation MAE of each regressor ensemble (the robust threshold)
        self.val_mae = {
            self.targets[k]: saved["val"][k]["best"] for k in self.targets if k in saved["val"]
        }

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> SpectraModel:
        """Load a model folder (or its ``model.json`` / ``model.safetensors``)."""
        path = Path(path)
        file = path / MODEL_FILE if path.is_dir() else path
        if not file.exists():
            raise InputError(f"no trained spectral model here ({MODEL_FILE} missing)", path=path)
        return cls(load_model(file), device)

    # ------------------------------------------------------------------ kernels
    @property
    def member_loop(self) -> bool:
        """Whether ensembles run one member at a time (CPU) or as one grouped pass (GPU).

        On CPUs oneDNN's grouped convolutions with a few channels per group run ~3x
        slower than the K plain convolutions they replace (the ``spectral`` stage
        of ``jpasbatch bench`` measures both); on GPUs one pass wins.
        """
        return self.device.type == "cpu"

    @torch.no_grad()
    def _outputs(self, flux: np.ndarray, good: np.ndarray, member_loop: bool) -> dict:
        out = {}
        x_rms = torch.from_numpy(network_input(flux, good, "rms")).to(self.device)
        for part, net in self.nets.items():
            task = self.saved["parts"][part]["task"]
            if task == "fnet":
                x = torch.from_numpy(network_input(flux, good, "zero_mean")).to(self.device)
                out[part] = net(x).float().cpu().numpy()
            elif member_loop and net.members > 1:
                if part not in self._members:  # built once per model
                    self._members[part] = [
                        net.member(m).to(self.device).eval() for m in range(net.members)
                    ]
                members = self._members[part]
                out[part] = torch.cat([mm(x_rms) for mm in members], 1).float().cpu().numpy()
            else:
                out[part] = net(x_rms).float().cpu().numpy()
        return out

    def predict_arrays(
        self, flux: np.ndarray, good: np.ndarray, member_loop: bool | None = None
    ) -> pd.DataFrame:
        """Predictions for resampled ``(n, L)`` spectra on the model's grid.

        ``member_loop``: how to run the ensembles (default :attr:`member_loop`,
        the faster way on this device; both give the same numbers).
        """
        loop = self.member_loop if member_loop is None else member_loop
        out = self._outputs(flux, good, loop)
        if "classifier" not in out:
            raise InputError("this model has no classifier (trained with 'only')")
        probs = torch.softmax(torch.from_numpy(out["classifier"][:, 0]), -1).numpy()
        cols: dict = {f"P_{c}": probs[:, j] for j, c in enumerate(self.classes)}
        pred = probs.argmax(1)
        cols["CLASS"] = np.array(self.classes)[pred]
        z = np.zeros(len(flux))
        z_err = np.zeros(len(flux))
        robust = np.ones(len(flux), bool)
        for part, target in self.targets.items():
            zm = np.clip(out[part][:, :, 0], *Z_RANGE)
            mean, std = (t.numpy() for t in ensemble_statistics(torch.from_numpy(zm)))
            cols[f"Z_{target}"], cols[f"Z_{target}_ERR"] = mean, std
            is_cls = cols["CLASS"] == target
            z[is_cls], z_err[is_cls] = mean[is_cls], std[is_cls]
            robust[is_cls] = std[is_cls] <= self.val_mae.get(target, np.inf)
        cols["Z"], cols["Z_ERR"], cols["ROBUST"] = z, z_err, robust
        if "fnet" in out:
            cols["Z_FNET"] = np.clip(out["fnet"], *Z_RANGE)
        return pd.DataFrame(cols)


# --------------------------------------------------------------------------- files


def add_reference_columns(table: pd.DataFrame) -> pd.DataFrame:
    """``DV_KMS`` (and ``DV_FNET_KMS``): c (z - Z_REF) / (1 + Z_REF), NaN without a reference."""
    zr = table["Z_REF"].to_numpy(float)
    table["DV_KMS"] = C_KMS * (table["Z"].to_numpy(float) - zr) / (1 + zr)
    if "Z_FNET" in table:
        table["DV_FNET_KMS"] = C_KMS * (table["Z_FNET"].to_numpy(float) - zr) / (1 + zr)
    return table


def predict_spectra(
    model: SpectraModel,
    paths: Sequence[str | Path],
    batch_size: int = 256,
    progress: bool = True,
    options: ReadOptions | None = None,
    refine: bool = False,
    client=None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read, resample and predict the spectra of ``paths``; returns (table, rejects).

    Files are read one at a time (:func:`~jpasbatch.spectra.prepare.prepare_files`,
    the same reading and rejects as ``jpasbatch spectra-prepare``) and predicted in
    batches of at least ``batch_size`` spectra. ``refine``: refine each batch's
    redshifts by the template fit, as Dask tasks on ``client`` if one is given
    (:func:`jpasbatch.spectra.refine_stage.refine_batches`).
    """
    from tqdm import tqdm

    from jpasbatch.core.progress import disable as progress_disable
    from jpasbatch.spectra.prepare import prepare_files

    parts, rejects, pending, arrays = [], [], [], []

    def flush() -> None:
        index = pd.concat([p[0] for p in pending], ignore_index=True)
        flux, ivar, good = (np.concatenate([p[k] for p in pending]) for k in (1, 2, 3))
        pred = model.predict_arrays(flux, good)
        parts.append(pd.concat([index, pred], axis=1))
        if refine:
            arrays.append((flux, np.where(good, ivar, 0.0).astype(np.float32), pred))
        pending.clear()

    for path in tqdm(paths, desc="spectra", unit="file", disable=progress_disable(progress)):
        index, flux, ivar, good, rej = prepare_files([path], model.grid, 1, options)
        rejects.append(rej)
        if len(index):
            pending.append((index, flux, ivar, good))
        if sum(len(p[0]) for p in pending) >= batch_size:
            flush()
    if pending:
        flush()
    if not parts:
        raise InputError("no spectrum could be read from the inputs")
    if refine:
        parts = _refined(model, parts, arrays, client, progress)
    table = add_reference_columns(pd.concat(parts, ignore_index=True))
    return table, pd.concat(rejects, ignore_index=True)


def _refined(model: SpectraModel, parts: list, arrays: list, client, progress: bool) -> list:
    """Each part with the template-fit refinement of its batch merged in."""
    from jpasbatch.spectra.refine_stage import merge, refine_batches

    refined = refine_batches(model.grid.wavelength, arrays, client, progress)
    return [merge(p, r) for p, r in zip(parts, refined, strict=True)]


def predict_files(
    paths: Sequence[str | Path],
    model_dir: str | Path | None,
    out: str | Path,
    batch_size: int = 256,
    progress: bool = True,
    options: ReadOptions | None = None,
    refine: bool = True,
    client=None,
) -> tuple[Path, int, int]:
    """Predict the spectra in ``paths`` and write ``out`` (Parquet, CSV or FITS by suffix).

    ``model_dir`` None: the shipped default (:data:`jpasbatch.core.defaults.SPECTRA`).
    ``refine``: template-fit refinement of the redshifts (on ``client``'s Dask
    cluster when given). Returns the path and the numbers of spectra written and
    rejected (files and spectra that could not be used, written to
    ``<out stem>_rejects.parquet``).
    """
    if model_dir is None:
        from jpasbatch.core.defaults import SPECTRA, default_model

        model_dir = default_model(SPECTRA)
    model = SpectraModel.load(model_dir)
    table, rejects = predict_spectra(
        model, paths, batch_size, progress, options, refine=refine, client=client
    )
    from jpasbatch.core.provenance import provenance

    meta = provenance(parameters={"model": str(Path(model_dir).resolve()), "refine": refine})
    path = write_table(table, out, meta)
    if len(rejects):
        write_table(rejects, rejects_path(out), meta)
    return path, len(table), len(rejects)


def rejects_path(out: str | Path) -> Path:
    """Where ``jpasbatch spectra`` writes the rejects of ``out``."""
    return Path(out).with_name(Path(out).stem + "_rejects.parquet")


def write_table(table: pd.DataFrame, out: str | Path, provenance: dict | None = None) -> Path:
    """Write ``table`` atomically as Parquet (default), CSV or FITS, by the file suffix."""
    import json

    out = Path(out)
    suffix = out.suffix.lower()
    with atomic.replacing(out) as tmp:
        if suffix == ".csv":
            table.to_csv(tmp, index=False)
        elif suffix in (".fits", ".fit"):
            from astropy.table import Table

            t = Table.from_pandas(table)
            t.meta["PROVJSON"] = json.dumps(provenance or {})[:60000]
            t.write(tmp, format="fits")
        else:
            arrow = pa.Table.from_pandas(table, preserve_index=False)
            meta = {b"jpasbatch.provenance": json.dumps(provenance or {}, default=str).encode()}
            pq.write_table(
                arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), **meta}), tmp
            )
    return out
