"""Losses: heteroscedastic Gaussian NLL and weighted-MMD domain adaptation (OJALA Eqs. 2, 9-12).

* :func:`gaussian_nll`: ``0.5 [(y - mu)^2 / s^2 + log s^2]`` with the total
  variance ``s^2 = sigma_pred^2 + sigma_obs^2``; for the redshift the residual
  is divided by ``1 + z`` (and sigma is that of ``dz / (1 + z)``).
* :func:`weighted_mmd2`: the squared MMD between the source embeddings (equal
  weights) and the target embeddings with weights ``w`` (summing to 1), RBF
  kernel with the median-heuristic bandwidth of the pooled batch, as the three
  separated sums of Eq. 11.
* :class:`Reweighter`: the small MLP ``psi`` whose softmax (temperature tau)
  gives the target weights (Eq. 9).
* :func:`domain_adaptation_loss`: Eq. 12, ``lambda_MMD (MMD^2 + lambda_ent
  R_entropy + lambda_ess R_ESS)``, with ``R_entropy = 1 - H(w) / log N`` (0 for
  uniform weights) and ``R_ESS = max(0, threshold - ESS / N)`` (active only
  below ``threshold`` = 70% of the batch).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def gaussian_nll(
    y: torch.Tensor,
    mu: torch.Tensor,
    sigma_pred: torch.Tensor,
    sigma_obs: torch.Tensor | float = 0.0,
    *,
    redshift: bool = False,
) -> torch.Tensor:
    """Elementwise heteroscedastic NLL (no constant term).

    With ``redshift``, ``y`` and ``mu`` are redshifts and the residual is
    ``(y - mu) / (1 + y)``; the sigmas are then those of that ratio.
    """
    r = (y - mu) / (1 + y) if redshift else y - mu
    var = sigma_pred**2 + torch.as_tensor(sigma_obs, dtype=mu.dtype, device=mu.device) ** 2
    return 0.5 * (r**2 / var + torch.log(var))


def median_bandwidth(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Median pairwise distance of the pooled set (off-diagonal pairs), detached."""
    z = torch.cat([x, y]).detach()
    d = torch.cdist(z, z)
    n = len(z)
    off = d[~torch.eye(n, dtype=torch.bool, device=z.device)]
    return torch.quantile(off, 0.5).clamp(min=1e-6)  # the mean of the two middle values


def weighted_mmd2(
    hs: torch.Tensor, ht: torch.Tensor, w: torch.Tensor, sigma: torch.Tensor | None = None
) -> torch.Tensor:
    """Squared weighted MMD between ``hs`` (N_S, d) and ``ht`` (N_T, d) weighted by ``w``.

    ``w`` (N_T,) sums to 1; the source weights are ``1 / N_S``. ``sigma``
    defaults to :func:`median_bandwidth`.
    """
    sigma = median_bandwidth(hs, ht) if sigma is None else sigma

    def k(a, b):
        return torch.exp(-(torch.cdist(a, b) ** 2) / (2 * sigma**2))

    ns = len(hs)
    k_ss = k(hs, hs).sum() / ns**2
    k_tt = w @ k(ht, ht) @ w
    k_st = (k(hs, ht) @ w).sum() * 2 / ns
    return k_ss + k_tt - k_st


class Reweighter(nn.Module):
    """``psi``: embedding -> score; ``weights`` = softmax(score / tau) over the target batch."""

    def __init__(self, d: int = 128, hidden: int = 64, tau: float = 1.0) -> None:
        super().__init__()
        self.tau = tau
        self.net = nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(h).squeeze(-1) / self.tau, dim=0)


def effective_sample_size(w: torch.Tensor) -> torch.Tensor:
    """Kish's ESS ``(sum w)^2 / sum w^2``."""
    return w.sum() ** 2 / (w**2).sum()


def domain_adaptation_loss(
    hs: torch.Tensor,
    ht: torch.Tensor,
    w: torch.Tensor,
    *,
    lambda_mmd: float = 0.2,
    lambda_ent: float = 0.1,
    lambda_ess: float = 0.05,
    ess_threshold: float = 0.7,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Eq. 12 and its parts (``mmd2``, ``entropy_reg``, ``ess_frac``, ``ess_reg``)."""
    n = len(w)
    mmd2 = weighted_mmd2(hs, ht, w)
    entropy = -(w * torch.log(w.clamp(min=1e-30))).sum()
    r_ent = 1 - entropy / math.log(n)
    ess_frac = effective_sample_size(w) / n
    r_ess = torch.relu(ess_threshold - ess_frac)
    loss = lambda_mmd * (mmd2 + lambda_ent * r_ent + lambda_ess * r_ess)
    parts = {
        "mmd2": float(mmd2.detach()),
        "entropy_reg": float(r_ent.detach()),
        "ess_frac": float(ess_frac.detach()),
        "ess_reg": float(r_ess.detach()),
    }
    return loss, parts
