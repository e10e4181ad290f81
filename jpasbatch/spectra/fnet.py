"""FNet: a 24-layer 1D ResNet with kernels 500 / 200 / 15 for QSO redshifts.

Rastegar Nia et al. (MNRAS): spectra resampled to 4618 log-lambda pixels over
3600-10325 A, zero-mean and unit-norm, go through 8 residual blocks of three
convolutions each (kernels 500, 200 and 15, "same" padding, batch norm after
every convolution, ReLU), a shortcut around every block, 32 channels in the
first 21 convolutions and 64, 32, 16 in the last three; the flattened output
feeds three fully connected layers that end in the redshift. MSE loss, Adam
(lr 2.4e-4, betas 0.9 / 0.999, weight decay 1e-5), the learning rate divided
by 10 at epochs 75, 85 and 90, He-normal initialisation, gradient clipping.

The defaults are the paper's network. Written directly, its convolutions cost
~50 GFLOP per spectrum (no layer down-samples and the kernels are long), so
kernels longer than :data:`FFT_MIN_KERNEL` are applied as FFT convolutions:
the same linear map (tested against ``Conv1d``), at O(L log L) instead of
O(L k) per channel pair. For smaller CPU runs ``bin`` averages input pixels
first and ``kernel_scale`` shrinks the kernels by the same factor -- the same
wavelength span per kernel on a coarser grid -- and ``width`` scales the
channels. A trained model records its settings.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

#: Kernel sizes of the three convolutions of every block.
KERNELS = (500, 200, 15)
#: Output channels of the 24 convolutions.
CHANNELS = (32,) * 21 + (64, 32, 16)
#: Kernels at least this long are applied through FFTs.
FFT_MIN_KERNEL = 32


def _fast_length(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n (pocketfft is fastest on those)."""
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < 2 * n:
        p35 = p5
        while p35 < 2 * n:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def fft_conv_same(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``F.conv1d(x, weight, padding="same")`` computed with FFTs.

    Parameters
    ----------
    x
        ``(B, C_in, L)``.
    weight
        ``(C_out, C_in, k)``.

    Returns
    -------
    torch.Tensor
        ``(B, C_out, L)``: the cross-correlation PyTorch's convolutions compute,
        with its "same" padding (``(k - 1) // 2`` zeros on the left, the rest
        on the right). Zero padding to >= L + k - 1 makes the circular
        correlation the linear one.
    """
    k, length = weight.shape[-1], x.shape[-1]
    left = (k - 1) // 2
    xp = F.pad(x, (left, k - 1 - left))
    n = _fast_length(xp.shape[-1])
    xf = torch.fft.rfft(xp, n=n)  # (B, I, f)
    wf = torch.fft.rfft(weight, n=n)  # (O, I, f)
    # channel mixing per frequency, Y = X conj(W), as one real batched product
    # [Xr Xi] @ [[Wr, -Wi], [Wi, Wr]]: complex batched matmuls run a slow loop on CPUs
    xri = torch.cat([xf.real, xf.imag], 1).permute(2, 0, 1)  # (f, B, 2I)
    wr, wi = wf.real.permute(2, 1, 0), wf.imag.permute(2, 1, 0)  # (f, I, O)
    w2 = torch.cat([torch.cat([wr, -wi], 2), torch.cat([wi, wr], 2)], 1)  # (f, 2I, 2O)
    y = torch.bmm(xri, w2).permute(1, 2, 0)  # (B, 2O, f)
    c_out = weight.shape[0]
    yf = torch.complex(y[:, :c_out], y[:, c_out:])
    return torch.fft.irfft(yf, n=n)[..., :length]


class _Block(nn.Module):
    """Three same-padded convolutions (BN + ReLU) with a shortcut around them."""

    def __init__(self, c_in: int, chans: tuple[int, int, int], kernels: tuple[int, ...]) -> None:
        super().__init__()
        layers, c = [], c_in
        for i, (c_out, k) in enumerate(zip(chans, kernels, strict=True)):
            layers += [nn.Conv1d(c, c_out, k, padding="same", bias=False), nn.BatchNorm1d(c_out)]
            if i < 2:
                layers.append(nn.ReLU())
            c = c_out
        self.body = nn.Sequential(*layers)
        # a 1x1 projection where the channel count changes (the last block)
        self.short = nn.Identity() if c_in == c else nn.Conv1d(c_in, c, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for layer in self.body:
            if isinstance(layer, nn.Conv1d) and layer.kernel_size[0] >= FFT_MIN_KERNEL:
                h = fft_conv_same(h, layer.weight)
            else:
                h = layer(h)
        return torch.relu(h + self.short(x))


class FNet(nn.Module):
    """FNet for one redshift per spectrum.

    Parameters
    ----------
    n_pixels
        Input length (4618 in the paper).
    in_channels
        1 (flux) in the paper; 2 adds the good-pixel indicator.
    width
        Factor on every channel count (1.0: 32 ... 64, 32, 16).
    bin
        Average this many input pixels first (1: none).
    kernel_scale
        Divide the kernel sizes by this (they stay >= 3 and odd-or-even as given).
    hidden
        Units of the first two fully connected layers.
    seed
        Initialisation seed.
    """

    def __init__(
        self,
        n_pixels: int = 4618,
        in_channels: int = 1,
        width: float = 1.0,
        bin: int = 1,
        kernel_scale: float = 1.0,
        hidden: tuple[int, int] = (256, 64),
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.hparams = {
            "n_pixels": int(n_pixels),
            "in_channels": int(in_channels),
            "width": float(width),
            "bin": int(bin),
            "kernel_scale": float(kernel_scale),
            "hidden": tuple(int(h) for h in hidden),
            "seed": int(seed),
        }
        self.bin = int(bin)
        self.pool = nn.AvgPool1d(self.bin) if self.bin > 1 else nn.Identity()
        length = n_pixels // self.bin
        kernels = tuple(max(3, round(k / kernel_scale)) for k in KERNELS)
        chans = [max(2, round(c * width)) for c in CHANNELS]
        blocks, c = [], in_channels
        for b in range(8):
            three = tuple(chans[3 * b : 3 * b + 3])
            blocks.append(_Block(c, three, kernels))
            c = three[-1]
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c * length, hidden[0]),
            nn.ReLU(),
            nn.Linear(hidden[0], hidden[1]),
            nn.ReLU(),
            nn.Linear(hidden[1], 1),
        )
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, nn.Conv1d | nn.Linear):  # He normal
                    fan_in = m.weight[0].numel()
                    m.weight.copy_(torch.randn(m.weight.shape, generator=gen))
                    m.weight.mul_(math.sqrt(2.0 / fan_in))
                    if m.bias is not None:
                        m.bias.zero_()

    def conv_layers(self) -> list[nn.Conv1d]:
        """The 24 convolutions of the residual blocks (not the shortcut projection)."""
        return [m for b in self.blocks for m in b.body if isinstance(m, nn.Conv1d)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, L)`` -> ``(B,)`` redshifts."""
        return self.head(self.blocks(self.pool(x))).squeeze(-1)
