"""Inference from any subset of tokens: classes, photo-z, physical parameters, embeddings.

:class:`FoundationPredictor` wraps a trained model with its token
normalisation. ``predict`` takes a table in the ``OBSERVED`` schema (extra
columns such as the external bands and ``MORPH_TYPE`` are used when present;
``MOCK_EXT`` tables work too, their labels are never given to the model) and a
context (``"all"``, groups such as ``"T1+T2+broad+morph"`` or a list of token
names, see :func:`jpasbatch.foundation.tokens.resolve_context`), and returns

* per-row columns: ``P_STAR``, ``P_GALAXY``, ``P_QSO_LOW``, ``P_QSO_HIGH``,
  ``Z_PHOT``, ``Z_PHOT_ERR``, and ``<PARAM>`` / ``<PARAM>_ERR`` for ``TEFF`` (K)
  and the equivalent widths ``EW_<LINE>`` (Angstrom), plus ``N_CONTEXT`` (tokens
  the object had in the context);
* dense arrays: ``EMBEDDING`` (N, 128) float32.

Only the context tokens any row of a batch has are sent through the encoder
(absent ones are masked out of attention, so this changes nothing but the
cost). Rows with no context token get NaN everywhere.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from jpasbatch.catalog.schemas import CLASSES, PHYSICAL_LABELS
from jpasbatch.core import modelio
from jpasbatch.core.errors import InputError
from jpasbatch.foundation.masking import label_mask
from jpasbatch.foundation.model import FoundationModel, split_outputs
from jpasbatch.foundation.tokens import (
    TokenArrays,
    TokenNorm,
    encode_table,
    names,
    resolve_context,
    token_index,
)

#: The model card's ``kind``.
KIND = "jpasbatch.foundation.FoundationPredictor"
#: The label tokens queried at inference, in output order.
QUERY_TOKENS = ("CLASS", "Z", *PHYSICAL_LABELS)
_LN10 = np.log(10.0)


def default_batch_size(device: str | torch.device) -> int:
    """Objects per forward pass when none is asked for.

    Small on CPUs: a batch's feed-forward activations (objects x tokens x 1024
    floats) then stay in cache; in float32 on 2 cores 64 objects per pass ran
    1.4x faster than 1024. Large on GPUs, which need the parallelism.
    """
    return 64 if torch.device(device).type == "cpu" else 4096


def run_model(
    model: FoundationModel,
    tokens: TokenArrays,
    context: np.ndarray,
    query: tuple[str, ...] = QUERY_TOKENS,
    *,
    batch_size: int | None = None,
    dtype: torch.dtype | None = None,
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Raw outputs ``(N, Q, 4)`` of the ``query`` tokens and embeddings ``(N, d)``.

    ``tokens`` are standardised; ``context`` ``(N, V)`` says which tokens each
    object gives the encoder. ``dtype`` (e.g. ``torch.bfloat16``) runs the model
    in that precision; outputs are float32. ``batch_size``: objects per forward
    pass (default :func:`default_batch_size`).
    """
    device = torch.device(device)
    batch_size = batch_size or default_batch_size(device)
    qids = torch.tensor([token_index(q) for q in query], device=device)
    n = len(tokens)
    out = np.full((n, len(query), 4), np.nan, np.float32)
    emb = np.full((n, model.hparams["d_model"]), np.nan, np.float32)
    was_training = model.training
    model.eval()
    dt = dtype or torch.float32
    with torch.inference_mode():
        for s in range(0, n, batch_size):
            ctx = context[s : s + batch_size]
            used = np.flatnonzero(ctx.any(axis=0))
            if used.size == 0:
                continue
            ids = torch.from_numpy(used).to(device)
            v = torch.from_numpy(tokens.values[s : s + batch_size][:, used]).to(device, dt)
            e = torch.from_numpy(tokens.errors[s : s + batch_size][:, used]).to(device, dt)
            p = torch.from_numpy(ctx[:, used]).to(device)
            o, h = model(ids, v, e, p, qids)
            ok = ctx.any(axis=1)
            out[s : s + len(ctx)][ok] = o.float().cpu().numpy()[ok]
            emb[s : s + len(ctx)][ok] = h.float().cpu().numpy()[ok]
    model.train(was_training)
    return out, emb


def decode_outputs(
    raw: np.ndarray, norm: TokenNorm, query: tuple[str, ...] = QUERY_TOKENS
) -> dict[str, np.ndarray]:
    """VAC columns from raw outputs ``(N, Q, 4)`` (see the module docstring)."""
    cols: dict[str, np.ndarray] = {}
    t = torch.from_numpy(raw)
    for j, name in enumerate(query):
        if name == "CLASS":
            p = torch.softmax(t[:, j, : len(CLASSES)], dim=-1).numpy()
            cols |= {f"P_{c}": p[:, k].astype(np.float32) for k, c in enumerate(CLASSES)}
            continue
        mu, sigma = (x.numpy().astype(np.float64) for x in split_outputs(t[:, j]))
        k = token_index(name)
        if name == "Z":
            z = np.clip(mu, 0.0, None)
            cols["Z_PHOT"] = z.astype(np.float32)
            cols["Z_PHOT_ERR"] = (sigma * (1 + z)).astype(np.float32)  # sigma of dz/(1+z)
            continue
        log_value = norm.loc[k] + norm.scale[k] * mu
        log_sigma = norm.scale[k] * sigma
        value = 10**log_value
        cols[name] = value.astype(np.float32)
        cols[f"{name}_ERR"] = (_LN10 * value * log_sigma).astype(np.float32)
    return cols


class FoundationPredictor:
    """A trained foundation model ready for inference.

    Parameters
    ----------
    model
        The network.
    norm
        Its token standardisation.
    meta
        Training metadata (spec, epochs, validation scores...).
    """

    def __init__(self, model: FoundationModel, norm: TokenNorm, meta: dict | None = None) -> None:
        self.model = model.eval()
        self.norm = norm
        self.meta = meta or {}
        self._checksum: str | None = None
        self._cast: dict = {}  # (dtype, device) -> a converted copy of the model

    # -------------------------------------------------------------- persistence
    def _tensors(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu() for k, v in self.model.state_dict().items()}

    def save(self, path: str | Path) -> Path:
        """Write ``NAME.safetensors`` + its card ``NAME.json``; returns the card's path."""
        card = {
            "kind": KIND,
            "hparams": self.model.hparams,
            "norm": self.norm.to_dict(),
            "vocabulary": list(names()),
            "meta": self.meta,
        }
        path = modelio.save_model(path, self._tensors(), card)
        self._checksum = modelio.read_card(path)["weights"]["sha256"]
        return path

    @classmethod
    def load(cls, path: str | Path) -> FoundationPredictor:
        """A predictor from a saved model's card, weights or name (no Ray needed)."""
        tensors, card = modelio.load_model(path, ("hparams", "norm", "vocabulary", "meta"), KIND)
        if tuple(card["vocabulary"]) != names():
            raise InputError("saved with another token vocabulary", path=path)
        model = FoundationModel(**card["hparams"])
        model.load_state_dict(tensors)
        pred = cls(model, TokenNorm.from_dict(card["norm"]), card["meta"])
        pred._checksum = card["weights"]["sha256"]
        return pred

    @property
    def checksum(self) -> str:
        """SHA-256 of the saved weights file (of their serialisation if never saved)."""
        if self._checksum is None:
            self._checksum = modelio.sha256(modelio.weights_bytes(self._tensors()))
        return self._checksum

    # ---------------------------------------------------------------- inference
    def context_mask(self, tokens: TokenArrays, context: str | list[str]) -> np.ndarray:
        """``(N, V)`` context of each row: its present tokens among ``context``, never labels."""
        allowed = np.zeros(len(names()), bool)
        allowed[[token_index(t) for t in resolve_context(context)]] = True
        return tokens.present & allowed[None, :] & ~label_mask()[None, :]

    def predict(
        self,
        table: pa.Table,
        context: str | list[str] = "all",
        batch_size: int | None = None,
        *,
        dtype: torch.dtype | str | None = None,
        device: str | torch.device | None = None,
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(columns, arrays) for every row of ``table`` (see the module docstring).

        Parameters
        ----------
        table
            ``OBSERVED``-schema rows (plus any external columns).
        context
            Tokens to condition on.
        batch_size
            Objects per forward pass (default: 64 on CPUs, 4096 on GPUs).
        dtype
            ``None`` / ``"float32"``, or ``"bfloat16"`` (faster on CPUs with bf16
            instructions and on GPUs; agrees with float32 to ~1e-2 in the raw
            outputs; the ``transformer`` stage of ``jpasbatch bench`` checks it).
        device
            ``"cpu"`` (default), ``"cuda"``...; the model is moved there.
        """
        if isinstance(dtype, str):
            dtype = {"float32": None, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}[dtype]
        dev = torch.device(device or "cpu")
        model = self.model.to(dev)
        if dtype is not None:
            key = (dtype, str(dev))
            if key not in self._cast:
                self._cast[key] = copy.deepcopy(model).to(dtype)
            model = self._cast[key]
        raw_tokens = encode_table(table)
        tokens = self.norm.apply(raw_tokens)
        ctx = self.context_mask(tokens, context)
        raw, emb = run_model(model, tokens, ctx, batch_size=batch_size, dtype=dtype, device=dev)
        cols = decode_outputs(raw, self.norm)
        cols["N_CONTEXT"] = ctx.sum(axis=1).astype(np.int32)
        return cols, {"EMBEDDING": emb}
