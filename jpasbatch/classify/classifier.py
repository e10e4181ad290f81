"""A trained classifier as a file: the committee, its feature scaling and temperature.

``model.safetensors`` holds the committee's weights and ``model.json`` its card
(architecture, feature scaling, temperature, prior, training metadata; see
:mod:`jpasbatch.core.modelio`): no pickle, so a model file from anywhere is safe to
load, and a model trained under Ray on a cluster loads on a laptop or a GPU
machine without Ray.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import numpy as np
import torch

from jpasbatch.classify.calibrate import apply_prior, apply_temperature
from jpasbatch.classify.features import FeatureScaler
from jpasbatch.classify.model import CommitteeMLP, committee_probabilities
from jpasbatch.core import modelio

#: The model card's ``kind`` (it tells a classifier from other models named ``model``).
KIND = "jpasbatch.classify.Classifier"
_CARD_KEYS = ("hparams", "scaler", "temperature", "prior", "meta")


class Classifier:
    """Committee + feature scaler + temperature, ready to classify fluxes.

    Parameters
    ----------
    model
        The trained committee.
    scaler
        The features it was trained on.
    temperature
        Calibration temperature (1: uncalibrated).
    prior
        pi_natural / pi_training per class (see :mod:`jpasbatch.classify.calibrate`);
        None: probabilities under the training priors.
    meta
        Anything worth keeping with the model (training spec, metrics).
    """

    def __init__(
        self,
        model: CommitteeMLP,
        scaler: FeatureScaler,
        temperature: float = 1.0,
        meta: dict | None = None,
        prior: list[float] | None = None,
    ):
        self.model = model.eval()
        self.scaler = scaler
        self.temperature = temperature
        self.meta = meta or {}
        self.prior = prior

    def save(self, path: str | Path) -> Path:
        """Write ``NAME.safetensors`` + its card ``NAME.json``; returns the card's path."""
        card = {
            "kind": KIND,
            "hparams": self.model.hparams,
            "scaler": self.scaler.to_dict(),
            "temperature": self.temperature,
            "prior": self.prior,
            "meta": self.meta,
        }
        return modelio.save_model(path, self.model.state_dict(), card)

    @classmethod
    def load(cls, path: str | Path) -> Classifier:
        """A classifier from its card, weights or name
        (:func:`~jpasbatch.core.modelio.model_paths`)."""
        tensors, card = modelio.load_model(path, _CARD_KEYS, kind=KIND)
        model = CommitteeMLP(**card["hparams"])
        model.load_state_dict(tensors)
        scaler = FeatureScaler.from_dict(card["scaler"])
        return cls(model, scaler, card["temperature"], card["meta"], card["prior"])

    def select_members(self, members: list[int]) -> Classifier:
        """A classifier made of some members only (e.g. ``[0]``: a single network)."""
        hp = self.model.hparams | {"members": len(members)}
        model = CommitteeMLP(**hp)
        state = {k: v[members].clone() for k, v in self.model.state_dict().items()}
        model.load_state_dict(state)
        return Classifier(model, self.scaler, self.temperature, dict(self.meta), self.prior)

    @property
    def checksum(self) -> str:
        """SHA-256 of the weights, for provenance."""
        h = hashlib.sha256()
        for k, v in sorted(self.model.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().numpy().tobytes())
        return h.hexdigest()

    def member_probabilities(
        self,
        flux: np.ndarray,
        *,
        batch_size: int = 4096,
        device: str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities of every member (K, N, 4) and the mask of classifiable rows."""
        x, ok = self.scaler.transform(flux)
        return self._run(x, batch_size, device, dtype, members=True), ok

    def predict_proba(
        self,
        flux: np.ndarray,
        *,
        batch_size: int = 4096,
        device: str = "cpu",
        dtype: torch.dtype = torch.float32,
        calibrated: bool = True,
        natural: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Committee probabilities (N, 4) and the mask of classifiable rows.

        Probabilities are prior-corrected to the natural class abundances of the
        validation data (``natural``; otherwise they are under the training
        set's class weights), then (``calibrated``) temperature-scaled.
        Rows without a positive rSDSS flux (``ok`` False) get NaN. ``dtype``
        ``torch.bfloat16`` runs the matmuls in bf16 (fast on AMX CPUs and GPUs);
        probabilities are returned in float64 either way.
        """
        x, ok = self.scaler.transform(flux)
        p = self._run(x, batch_size, device, dtype, members=False)
        return self._finish(p, ok, calibrated, natural), ok

    def predict_with_members(
        self,
        flux: np.ndarray,
        *,
        batch_size: int = 4096,
        device: str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`predict_proba` (natural, calibrated) and :meth:`member_probabilities` in one pass.

        Returns the committee probabilities (N, 4), the members' (K, N, 4) and the
        mask of classifiable rows.
        """
        x, ok = self.scaler.transform(flux)
        members = self._run(x, batch_size, device, dtype, members=True)
        median = committee_probabilities(torch.from_numpy(members)).numpy()
        return self._finish(median, ok, True, True), members, ok

    def _finish(self, p: np.ndarray, ok: np.ndarray, calibrated: bool, natural: bool):
        if natural:
            p = apply_prior(p, self.prior)
        if calibrated and self.temperature != 1.0:
            p = apply_temperature(p, self.temperature)
        p[~ok] = np.nan
        return p

    @torch.no_grad()
    def _run(self, x, batch_size, device, dtype, members: bool) -> np.ndarray:
        model = self.model
        if dtype != torch.float32 or device != "cpu":
            # a copy: casting in place to bf16 and back would lose the fp32 weights
            model = copy.deepcopy(model).to(device=device, dtype=dtype).eval()
        out = []
        for s in range(0, len(x), batch_size):
            xb = torch.from_numpy(x[s : s + batch_size]).to(device=device, dtype=dtype)
            p = torch.softmax(model(xb).float(), dim=-1)
            out.append((p if members else committee_probabilities(p)).cpu())
        dim = 1 if members else 0
        if not out:
            shape = (self.model.members, 0, 4) if members else (0, 4)
            return np.zeros(shape)
        return torch.cat(out, dim=dim).double().numpy()
