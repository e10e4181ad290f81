"""The ANN committee as one vectorised PyTorch module.

Eight members of an 8 x 200 ReLU network (He init, dropout 0.15, max-norm 2)
are stored as stacked weights (K, in, out) and run with batched matmuls: one
kernel call per layer for the whole committee, instead of K small ones. On 2
CPU cores that is several times faster than a loop over members (see
``benchmarks``), and it keeps the members independent: each has its own
initialisation, dropout masks and (in training) its own shuffle of the data.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn


class CommitteeMLP(nn.Module):
    """K independent multilayer perceptrons evaluated together.

    Parameters
    ----------
    n_in, n_out
        Inputs and classes.
    members
        Committee size K.
    hidden, layers
        Units per hidden layer and number of hidden layers.
    dropout
        Dropout rate after every hidden layer.
    max_norm
        Bound on the L2 norm of each unit's incoming weights (see :meth:`apply_max_norm`).
    seed
        Seed of the He initialisation.
    """

    def __init__(
        self,
        n_in: int,
        n_out: int = 4,
        members: int = 8,
        hidden: int = 200,
        layers: int = 8,
        dropout: float = 0.15,
        max_norm: float = 2.0,
        seed: int = 0,
    ):
        super().__init__()
        self.hparams = {
            "n_in": n_in,
            "n_out": n_out,
            "members": members,
            "hidden": hidden,
            "layers": layers,
            "dropout": dropout,
            "max_norm": max_norm,
        }
        sizes = [n_in, *[hidden] * layers, n_out]
        gen = torch.Generator().manual_seed(seed)
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in itertools.pairwise(sizes):
            # He (Kaiming) normal init for ReLU: std = sqrt(2 / fan_in)
            w = torch.randn(members, a, b, generator=gen) * math.sqrt(2.0 / a)
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(torch.zeros(members, 1, b)))
        self.dropout = nn.Dropout(dropout)
        self.max_norm = max_norm

    @property
    def members(self) -> int:
        return self.hparams["members"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (K, B, n_out) from inputs (B, n_in), or (K, B, n_in): one batch per member."""
        h = x.expand(self.members, *x.shape) if x.dim() == 2 else x
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(b.to(h.dtype), h, w.to(h.dtype))
            if i < last:
                h = self.dropout(torch.relu(h))
        return h

    @torch.no_grad()
    def apply_max_norm(self) -> None:
        """Rescale every hidden unit's incoming weight vector to norm <= ``max_norm``.

        The Keras ``max_norm`` constraint the paper uses, applied after each
        optimiser step; the output layer is left free as in Keras' usual setup.
        """
        for w in list(self.weights)[:-1]:
            norms = w.norm(dim=1, keepdim=True)  # (K, 1, out): over each unit's inputs
            w.mul_(torch.clamp(self.max_norm / (norms + 1e-7), max=1.0))


def committee_probabilities(member_probs: torch.Tensor) -> torch.Tensor:
    """Median over members (dim 0) of class probabilities, renormalised to sum 1.

    For an even committee the median is the mean of the two middle values (as
    numpy's); ``torch.median`` would return the lower one.
    """
    k = member_probs.shape[0]
    s = member_probs.sort(dim=0).values
    p = 0.5 * (s[(k - 1) // 2] + s[k // 2])
    return p / p.sum(dim=1, keepdim=True)
