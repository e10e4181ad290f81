"""Fine-tuning: a small head on frozen embeddings for a label the model never saw (OJALA 4.6).

OJALA predicts black-hole masses, absent from its pre-training, with a head on
the frozen encoder embeddings. :class:`EmbeddingHead` is that head: an MLP from
the ``EMBEDDING`` (N, d) to a mean and a sigma, trained with the
heteroscedastic Gaussian NLL (:func:`jpasbatch.foundation.losses.gaussian_nll`)
and early-stopped on a validation part. The encoder is not touched, so the
same embeddings in the VAC serve any number of such heads.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from jpasbatch.foundation.losses import gaussian_nll


class EmbeddingHead(nn.Module):
    """MLP ``d -> hidden -> hidden -> (mean, sigma)`` on standardised embeddings."""

    def __init__(self, d: int = 128, hidden: int = 64, dropout: float = 0.1) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(d, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Linear(hidden, 2),
        )
        self.register_buffer("x_loc", torch.zeros(d))
        self.register_buffer("x_scale", torch.ones(d))
        self.register_buffer("y_loc", torch.zeros(()))
        self.register_buffer("y_scale", torch.ones(()))

    def forward(self, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net((emb - self.x_loc) / self.x_scale)
        mu = out[..., 0] * self.y_scale + self.y_loc
        return mu, (F.softplus(out[..., 1]) + 1e-3) * self.y_scale

    def predict(self, emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and sigma of the label for embeddings ``(N, d)``."""
        self.eval()
        with torch.no_grad():
            mu, sigma = self(torch.as_tensor(emb, dtype=torch.float32))
        return mu.numpy(), sigma.numpy()


def finetune_head(
    emb: np.ndarray,
    y: np.ndarray,
    *,
    val_fraction: float = 0.2,
    hidden: int = 64,
    epochs: int = 300,
    lr: float = 3e-3,
    batch_size: int = 256,
    patience: int = 30,
    seed: int = 0,
) -> EmbeddingHead:
    """Train an :class:`EmbeddingHead` on embeddings ``emb`` (N, d) and labels ``y`` (N,).

    Rows with non-finite values are dropped; ``val_fraction`` of the rest
    early-stops the training (best validation NLL kept).
    """
    ok = np.isfinite(emb).all(1) & np.isfinite(y)
    x, t = emb[ok].astype(np.float32), y[ok].astype(np.float32)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(t))
    n_val = max(1, int(val_fraction * len(t)))
    val, tr = order[:n_val], order[n_val:]
    torch.manual_seed(seed)
    head = EmbeddingHead(x.shape[1], hidden)
    head.x_loc.copy_(torch.from_numpy(x[tr].mean(0)))
    head.x_scale.copy_(torch.from_numpy(x[tr].std(0) + 1e-6))
    head.y_loc.fill_(float(np.median(t[tr])))
    head.y_scale.fill_(float(t[tr].std() + 1e-6))
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(t)
    best, best_state, bad = np.inf, None, 0
    for _ in range(epochs):
        head.train()
        perm = rng.permutation(tr)
        for s in range(0, len(perm), batch_size):
            idx = torch.from_numpy(perm[s : s + batch_size])
            mu, sigma = head(xt[idx])
            loss = gaussian_nll(yt[idx] / head.y_scale, mu / head.y_scale, sigma / head.y_scale)
            opt.zero_grad()
            loss.mean().backward()
            opt.step()
        head.eval()
        with torch.no_grad():
            mu, sigma = head(xt[val])
            v = float(gaussian_nll(yt[val], mu, sigma).mean())
        if v < best:
            best, bad = v, 0
            best_state = {k: p.clone() for k, p in head.state_dict().items()}
        else:
            bad += 1
            if bad >= patience:
                break
    head.load_state_dict(best_state)
    return head.eval()
