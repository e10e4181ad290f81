"""GaSNet-II: small 1D ResNets for spectral classes and per-class redshift ensembles.

Zhong et al. (GaSNet-II, MNRAS) build every sub-network from the same small
ResNet: strided 1D convolution blocks with a convolutional shortcut, then a
dense block with dropout 0.5. One copy classifies (softmax over the classes);
for every extragalactic class, ten copies trained from different random
initialisations regress the redshift (Huber loss, delta 0.1, z in [0, 5]); the
mean of the ten is the redshift and their standard deviation (Eq. 8, over 10,
not 9) its error, and an estimate is "robust" when that error is at most the
regressor's validation MAE.

Here the K members of an ensemble are one module: every convolution is a
grouped convolution with one group per member, every batch-norm channel
belongs to one member, and the dense layers are batched matrix products. The
members share no parameter, so training them together is training them
independently (Adam is per parameter), and inference on a GPU is one pass
instead of K. :meth:`GaSNetEnsemble.member` extracts one member as a stand-alone
network: on CPUs a loop over members is faster than the grouped pass
(:attr:`jpasbatch.spectra.predict.SpectraModel.member_loop`).

Input: ``(B, 2, L)`` -- the normalised flux and the good-pixel indicator (see
:func:`jpasbatch.spectra.grid.network_input`) -- the same for all members, as
in the paper (same data, different initial weights). Output: ``(B, K, n_out)``.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

#: Redshift range of the regressors (GaSNet-II Sec. 3.2).
Z_RANGE = (0.0, 5.0)
#: Huber loss delta of the regressors.
HUBER_DELTA = 0.1


def conv_out(length: int, kernel: int, stride: int, pad: int) -> int:
    """Output length of a 1D convolution."""
    return (length + 2 * pad - kernel) // stride + 1


def _conv(c_in: int, c_out: int, kernel: int, stride: int, groups: int) -> nn.Conv2d:
    """A 1D convolution written as a (1, kernel) 2D one.

    On CPUs PyTorch's channels-last 2D convolutions (oneDNN) run grouped
    convolutions, forward and backward, ~2x faster than ``Conv1d``.
    """
    return nn.Conv2d(
        c_in, c_out, (1, kernel), (1, stride), (0, kernel // 2), groups=groups, bias=False
    )


class _GroupedBlock(nn.Module):
    """Residual block: conv(k, stride s) - BN - ReLU - conv(k) - BN, plus a 1x1 strided shortcut."""

    def __init__(self, k: int, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.conv1 = _conv(k * c_in, k * c_out, kernel, stride, k)
        self.bn1 = nn.BatchNorm2d(k * c_out)
        self.conv2 = _conv(k * c_out, k * c_out, kernel, 1, k)
        self.bn2 = nn.BatchNorm2d(k * c_out)
        self.short = _conv(k * c_in, k * c_out, 1, stride, k)
        self.bn_short = nn.BatchNorm2d(k * c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return torch.relu(h + self.bn_short(self.short(x)))


class GaSNetEnsemble(nn.Module):
    """K independent GaSNet-II ResNets evaluated as one module.

    Parameters
    ----------
    n_pixels
        Input length L (the common grid, 4618 pixels by default).
    n_out
        Outputs per member: the number of classes (classifier) or 1 (redshift).
    members
        K, the ensemble size (1 for the classifier, 10 for the regressors).
    channels
        Channels of the stem and of each residual block; every block divides
        the length by ``stride``.
    kernel, stride
        Convolution kernel and stride of the blocks (the paper's 5 and 3).
    hidden
        Units of the dense block (dropout ``dropout`` after its ReLU).
    in_channels
        Input channels (2: flux and good-pixel mask).
    seed
        Member k is initialised from ``seed * 1000 + k``, so any member can be
        rebuilt alone and ensembles of different sizes share their first members.
    """

    def __init__(
        self,
        n_pixels: int,
        n_out: int,
        members: int = 1,
        channels: tuple[int, ...] = (16, 16, 32, 64, 64),
        kernel: int = 5,
        stride: int = 3,
        hidden: int = 128,
        dropout: float = 0.5,
        in_channels: int = 2,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.hparams = {
            "n_pixels": int(n_pixels),
            "n_out": int(n_out),
            "members": int(members),
            "channels": tuple(int(c) for c in channels),
            "kernel": int(kernel),
            "stride": int(stride),
            "hidden": int(hidden),
            "dropout": float(dropout),
            "in_channels": int(in_channels),
            "seed": int(seed),
        }
        k = self.members = int(members)
        self.in_channels = in_channels
        c0 = channels[0]
        stem_kernel = 2 * kernel - 3  # 7 for kernel 5: a wider first look at the raw pixels
        # every member sees the same input, so the stem is one ungrouped convolution
        # whose output channels are the members' stems side by side
        self.stem = _conv(in_channels, k * c0, stem_kernel, stride, 1)
        self.stem_bn = nn.BatchNorm2d(k * c0)
        length = conv_out(n_pixels, stem_kernel, stride, stem_kernel // 2)
        blocks = []
        for c_in, c_out in itertools.pairwise(channels):
            blocks.append(_GroupedBlock(k, c_in, c_out, kernel, stride))
            length = conv_out(length, kernel, stride, kernel // 2)
        self.blocks = nn.Sequential(*blocks)
        self.features = channels[-1] * length
        self.dropout = nn.Dropout(dropout)
        self.w1 = nn.Parameter(torch.empty(k, self.features, hidden))
        self.b1 = nn.Parameter(torch.zeros(k, 1, hidden))
        self.w2 = nn.Parameter(torch.empty(k, hidden, n_out))
        self.b2 = nn.Parameter(torch.zeros(k, 1, n_out))
        for m in range(k):
            self._init_member(m, torch.Generator().manual_seed(seed * 1000 + m))

    @torch.no_grad()
    def _init_member(self, m: int, gen: torch.Generator) -> None:
        """He-normal initialisation of member ``m``'s slice of every weight."""
        for conv in self.convs():
            c_out = conv.out_channels // self.members
            w = conv.weight[m * c_out : (m + 1) * c_out]
            fan_in = w[0].numel()
            w.copy_(torch.randn(w.shape, generator=gen) * math.sqrt(2.0 / fan_in))
        self.w1[m].copy_(torch.randn(self.w1[m].shape, generator=gen) / math.sqrt(self.features))
        self.w1[m].mul_(math.sqrt(2.0))
        self.w2[m].copy_(torch.randn(self.w2[m].shape, generator=gen) / math.sqrt(self.w2.shape[1]))

    def convs(self) -> list[nn.Conv2d]:
        """Every convolution, in order."""
        return [m for m in self.modules() if isinstance(m, nn.Conv2d)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, L)`` -> ``(B, K, n_out)``: every member on the same spectra."""
        k = self.members
        x = x.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        h = torch.relu(self.stem_bn(self.stem(x)))
        h = self.blocks(h)
        h = h.reshape(h.shape[0], k, -1).transpose(0, 1)  # (K, B, F)
        h = self.dropout(torch.relu(torch.baddbmm(self.b1, h, self.w1)))
        out = torch.baddbmm(self.b2, h, self.w2)  # (K, B, n_out)
        return out.transpose(0, 1)

    def member(self, m: int) -> GaSNetEnsemble:
        """Member ``m`` as a stand-alone single-member network (same weights, same outputs)."""
        single = GaSNetEnsemble(**(self.hparams | {"members": 1}))
        src, dst = self.state_dict(), single.state_dict()
        k = self.members
        out = {}
        for name in dst:
            full = src[name]
            if name in ("w1", "b1", "w2", "b2"):
                out[name] = full[m : m + 1].clone()
            elif full.dim() == 0:  # num_batches_tracked
                out[name] = full.clone()
            else:
                n = full.shape[0] // k
                out[name] = full[m * n : (m + 1) * n].clone()
        single.load_state_dict(out)
        return single.train(self.training)


def huber(pred: torch.Tensor, target: torch.Tensor, delta: float = HUBER_DELTA) -> torch.Tensor:
    """Element-wise Huber loss (GaSNet-II Eq. 6)."""
    d = (pred - target).abs()
    return torch.where(d <= delta, 0.5 * d**2, delta * d - 0.5 * delta**2)


def ensemble_statistics(z_members: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation over the last axis (Eqs. 7-8: divided by K, not K - 1)."""
    mean = z_members.mean(-1)
    return mean, ((z_members - mean.unsqueeze(-1)) ** 2).mean(-1).sqrt()
