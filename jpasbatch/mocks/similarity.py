"""Similarity-search error assignment for mocks (OJALA, Sect. 2.3).

An embedding model is trained on the *observed* catalogue's fluxes alone
(:class:`FluxEmbedder`, a small autoencoder). Each mock then takes the errors and
missing-band pattern of its nearest observed neighbour in embedding space, searched
among observed objects in the same 0.1-mag iSDSS bin, so the mocks inherit the
survey's S/N-magnitude relation and its correlated, shape-dependent error
patterns (:func:`assign_errors`).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from numpy.typing import ArrayLike
from scipy.spatial import cKDTree
from torch import nn

from jpasbatch.catalog.schemas import BANDS
from jpasbatch.core import modelio
from jpasbatch.physics.filters import jpas
from jpasbatch.physics.photometry import flux_to_ab

#: The model card's ``kind``.
_KIND = "jpasbatch.mocks.FluxEmbedder"


def _mlp(widths: list[int]) -> nn.Sequential:
    """Linear layers of the given widths with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for w_in, w_out in itertools.pairwise(widths):
        layers += [nn.Linear(w_in, w_out), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def _masked_mse(recon: torch.Tensor, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return ((recon - x) ** 2 * valid).sum() / valid.sum().clamp(min=1.0)


class FluxEmbedder(nn.Module):
    """Autoencoder of J-spectra shapes: ``2B -> 64 -> 32 -> d -> 32 -> 64 -> B``.

    Inputs are the band fluxes divided by the iSDSS flux (shape only: magnitude is
    handled by the bins of :func:`assign_errors`), ``asinh``-scaled (log-like but
    finite for the negative fluxes of faint bands) and standardised per band;
    missing bands (NaN, or all bands if ``f_i <= 0``) are set to 0 and flagged in
    a ``B``-bit mask appended to the input. The loss is the MSE over observed
    bands only, so the model never learns to reproduce the fill value.

    Parameters
    ----------
    n_bands
        Number of bands ``B``.
    i_index
        Column of the normalising band (default iSDSS in :data:`BANDS` order).
    embed_dim
        Embedding dimension ``d``.
    hidden
        Widths of the two hidden layers.
    """

    def __init__(
        self,
        n_bands: int = len(BANDS),
        i_index: int = BANDS.index("iSDSS"),
        embed_dim: int = 8,
        hidden: tuple[int, int] = (64, 32),
    ) -> None:
        super().__init__()
        self.config = dict(n_bands=n_bands, i_index=i_index, embed_dim=embed_dim, hidden=[*hidden])
        self.encoder = _mlp([2 * n_bands, *hidden, embed_dim])
        self.decoder = _mlp([embed_dim, *hidden[::-1], n_bands])
        # standardisation, fitted on the training catalogue; buffers travel in state_dict
        self.register_buffer("center", torch.zeros(n_bands))
        self.register_buffer("scale", torch.ones(n_bands))
        self.history_: list[float] = []

    def _scaled(self, flux: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """asinh(f / f_i) and the validity mask, both ``(N, B)``."""
        f = np.asarray(flux, dtype=float)
        if f.ndim != 2 or f.shape[1] != self.config["n_bands"]:
            raise ValueError(f"flux must be (N, {self.config['n_bands']}), got {f.shape}")
        f_i = f[:, self.config["i_index"], None]
        ok_i = np.isfinite(f_i) & (f_i > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            x = np.arcsinh(f / np.where(ok_i, f_i, 1.0))
        valid = np.isfinite(x) & ok_i
        return np.where(valid, x, 0.0), valid

    def _inputs(self, flux: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
        x, valid = self._scaled(flux)
        x = (torch.as_tensor(x, dtype=torch.float32) - self.center) / self.scale
        v = torch.as_tensor(valid, dtype=torch.float32)
        return x * v, v

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embedding and reconstruction of standardised inputs."""
        z = self.encoder(torch.cat([x, 1.0 - valid], dim=1))
        return z, self.decoder(z)

    def fit(
        self,
        flux: ArrayLike,
        epochs: int = 10,
        batch_size: int = 512,
        seed: int = 0,
        lr: float = 2e-3,
    ) -> FluxEmbedder:
        """Train on observed fluxes ``(N, B)``; per-epoch mean loss in ``history_``.

        Weights are re-initialised from ``seed`` (inside a forked torch RNG, so
        the global torch state is untouched), and batches are shuffled by a
        generator seeded with it: the result is deterministic for a seed.
        """
        x_np, valid_np = self._scaled(flux)
        n_valid = np.maximum(valid_np.sum(axis=0), 1)
        center = (x_np * valid_np).sum(0) / n_valid
        var = ((x_np - center) ** 2 * valid_np).sum(0) / n_valid
        self.center.copy_(torch.as_tensor(center))
        self.scale.copy_(torch.as_tensor(np.where(var > 1e-12, np.sqrt(var), 1.0)))
        x, valid = self._inputs(flux)

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    m.reset_parameters()
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(self.parameters(), lr=lr)
        self.train()
        self.history_ = []
        for _ in range(epochs):
            total, count = 0.0, 0
            for idx in torch.randperm(len(x), generator=gen).split(batch_size):
                xb, vb = x[idx], valid[idx]
                loss = _masked_mse(self(xb, vb)[1], xb, vb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
                count += len(idx)
            self.history_.append(total / max(count, 1))
        self.eval()
        return self

    def loss(self, flux: ArrayLike) -> float:
        """Masked reconstruction MSE of ``flux`` (standardised units)."""
        x, valid = self._inputs(flux)
        with torch.no_grad():
            return float(_masked_mse(self(x, valid)[1], x, valid))

    def embed(self, flux: ArrayLike, batch_size: int = 65_536) -> np.ndarray:
        """Embeddings ``(N, d)`` (float32) of fluxes ``(N, B)``."""
        x, valid = self._inputs(flux)
        self.eval()
        parts = zip(x.split(batch_size), valid.split(batch_size), strict=True)
        with torch.no_grad():
            z = [self(xb, vb)[0] for xb, vb in parts]
        return torch.cat(z).numpy() if z else np.empty((0, self.config["embed_dim"]), np.float32)

    def save(self, path: str | Path) -> Path:
        """Write ``NAME.safetensors`` + the card ``NAME.json`` (:mod:`jpasbatch.core.modelio`)."""
        card = {"kind": _KIND, "config": self.config}
        return modelio.save_model(path, self.state_dict(), card)

    @classmethod
    def load(cls, path: str | Path) -> FluxEmbedder:
        """Read a model written by :meth:`save` (no pickle: safetensors and JSON)."""
        tensors, card = modelio.load_model(path, ("config",), kind=_KIND)
        cfg = dict(card["config"])
        model = cls(**{**cfg, "hidden": tuple(cfg["hidden"])})
        model.load_state_dict(tensors)
        return model.eval()


def i_magnitude_bins(
    flux: ArrayLike, i_band: str, bin_width: float, bands: Sequence[str] = BANDS
) -> np.ndarray:
    """``floor(m_i / bin_width)`` from the AB magnitude of the ``i_band`` flux; -1 if none.

    Bins are on a fixed magnitude grid (not data-dependent), so mocks and
    observed objects share the same edges.
    """
    col = list(bands).index(i_band)
    m = flux_to_ab(np.asarray(flux, dtype=float)[:, col], jpas()[i_band].pivot_wavelength)
    out = np.full(m.shape, -1, dtype=np.int64)
    ok = np.isfinite(m)
    out[ok] = np.floor(m[ok] / bin_width).astype(np.int64)
    return out


def assign_errors(
    mock_flux: ArrayLike,
    obs_flux: ArrayLike,
    obs_relerr: ArrayLike,
    embedder: FluxEmbedder,
    rng: np.random.Generator | int,
    *,
    bin_width: float = 0.1,
    i_band: str = "iSDSS",
    neighbours: int = 1,
    bands: Sequence[str] = BANDS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Give mocks the errors of their most similar observed objects and perturb them.

    For each mock, the candidates are the observed objects in the same
    ``bin_width``-mag bin of the ``i_band`` AB magnitude (observed objects with no
    positive ``i_band`` flux are never candidates). A mock whose bin holds no
    observed object uses the nearest non-empty bin (ties: the brighter one) --
    mocks brighter or fainter than the whole catalogue take its brightest or
    faintest bin; a warning gives their number. Among the candidates, the match
    is the nearest in embedding space (one ``cKDTree`` per bin), or one of the
    ``neighbours`` nearest drawn uniformly.

    The match's **absolute** error ``sigma_j = relerr_j |f_obs,j|`` is copied
    (OJALA: "assigning the corresponding J-PAS errors"; the aperture noise is set
    by the images, and copying relative errors would make a band's error scale
    with the mock's own flux there, wrong where it is background-dominated), and
    the mock is perturbed with it: ``f_j = f_mock,j + sigma_j N(0, 1)``. The
    reported relative error is ``sigma_j / |f_j|`` (archive convention: error over
    measured flux), so ``relerr * |flux|`` of a mock equals that of its match. Bands missing for the
    match (flux or relerr not finite) or NaN in the mock are NaN in both outputs.

    Parameters
    ----------
    mock_flux
        Noise-free mock fluxes ``(M, B)``; each needs a positive ``i_band`` flux.
    obs_flux, obs_relerr
        Observed catalogue ``(N, B)``, archive conventions.
    embedder
        A :class:`FluxEmbedder` fitted on observed fluxes.
    rng
        Generator or seed.
    bin_width, i_band
        Magnitude bin width and the band defining the bins.
    neighbours
        Pick the match at random among this many nearest neighbours (1: nearest).
    bands
        Band names of the columns.

    Returns
    -------
    mock_obs_flux : numpy.ndarray
        ``(M, B)`` perturbed fluxes.
    mock_relerr : numpy.ndarray
        ``(M, B)`` relative errors.
    match_index : numpy.ndarray
        ``(M,)`` row of the matched observed object.
    """
    rng = np.random.default_rng(rng)
    mock = np.asarray(mock_flux, dtype=float)
    obs = np.asarray(obs_flux, dtype=float)
    relerr = np.asarray(obs_relerr, dtype=float)
    if obs.shape != relerr.shape or mock.ndim != 2 or mock.shape[1] != obs.shape[1]:
        raise ValueError("mock_flux (M, B), obs_flux and obs_relerr (N, B) must share B")
    mock_bin = i_magnitude_bins(mock, i_band, bin_width, bands)
    if np.any(mock_bin < 0):
        raise ValueError(f"{np.sum(mock_bin < 0)} mocks have no positive {i_band} flux")
    obs_bin = i_magnitude_bins(obs, i_band, bin_width, bands)
    pool = np.flatnonzero(obs_bin >= 0)
    if len(pool) == 0:
        raise ValueError(f"no observed object has a positive {i_band} flux")
    filled = np.unique(obs_bin[pool])

    # nearest non-empty bin for every mock (itself when non-empty)
    pos = np.searchsorted(filled, mock_bin)
    left = filled[np.clip(pos - 1, 0, len(filled) - 1)]
    right = filled[np.clip(pos, 0, len(filled) - 1)]
    use_bin = np.where(np.abs(right - mock_bin) < np.abs(mock_bin - left), right, left)
    n_moved = int(np.sum(use_bin != mock_bin))
    if n_moved:
        warnings.warn(
            f"{n_moved} of {len(mock)} mocks fall in {i_band} bins with no observed object; "
            "they take errors from the nearest non-empty bin",
            stacklevel=2,
        )

    z = rng.standard_normal(mock.shape)
    emb_obs = embedder.embed(obs[pool])
    emb_mock = embedder.embed(mock)
    match = np.empty(len(mock), dtype=np.int64)
    for b in np.unique(use_bin):
        cand = np.flatnonzero(obs_bin[pool] == b)
        todo = np.flatnonzero(use_bin == b)
        k = min(neighbours, len(cand))
        _, nn_idx = cKDTree(emb_obs[cand]).query(emb_mock[todo], k=k)
        if k > 1:
            nn_idx = nn_idx[np.arange(len(todo)), rng.integers(0, k, len(todo))]
        match[todo] = pool[cand[nn_idx]]

    with np.errstate(invalid="ignore", divide="ignore"):
        sigma = relerr[match] * np.abs(obs[match])
        out = mock + sigma * z
        missing = ~np.isfinite(sigma) | ~np.isfinite(out)
        out[missing] = np.nan
        out_relerr = np.where(missing, np.nan, sigma / np.abs(out))
    return out, out_relerr, match
