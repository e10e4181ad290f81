"""GaSNet-II and FNet: shapes, FNet's 24 layers, the vectorised ensemble, its statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from jpasbatch.spectra.fnet import CHANNELS, KERNELS, FNet, fft_conv_same
from jpasbatch.spectra.gasnet import GaSNetEnsemble, ensemble_statistics, huber


def test_gasnet_output_shapes_and_length_reduction():
    x = torch.randn(5, 2, 4618)
    clf = GaSNetEnsemble(4618, 3, members=1).eval()
    reg = GaSNetEnsemble(4618, 1, members=10, channels=(4, 4, 8), hidden=8).eval()
    assert clf(x).shape == (5, 1, 3)
    assert reg(x).shape == (5, 10, 1)
    # stem and four blocks of stride 3: 4618 -> 1540 -> 514 -> 172 -> 58 -> 20
    assert clf.features == 64 * 20


def test_every_member_is_an_independent_network():
    torch.manual_seed(0)
    x = torch.randn(7, 2, 300)
    ens = GaSNetEnsemble(300, 1, members=4, channels=(4, 8, 8), hidden=16, seed=5).eval()
    out = ens(x)
    for m in range(4):
        single = ens.member(m).eval()
        assert torch.allclose(single(x)[:, 0], out[:, m], atol=1e-5)
    # member m of any ensemble starts from the same weights (seed * 1000 + m)
    small = GaSNetEnsemble(300, 1, members=2, channels=(4, 8, 8), hidden=16, seed=5).eval()
    assert torch.allclose(small(x), out[:, :2], atol=1e-5)
    # members do not share parameters: a loss on one member moves only its weights
    ens.train()
    ens.zero_grad()
    ens(x)[:, 1].sum().backward()
    w = ens.blocks[0].conv1.weight.grad
    n = w.shape[0] // 4
    assert w[:n].abs().sum() == 0 and w[n : 2 * n].abs().sum() > 0
    assert ens.w1.grad[0].abs().sum() == 0 and ens.w1.grad[1].abs().sum() > 0


def test_ensemble_statistics_match_numpy():
    z = torch.rand(6, 10, dtype=torch.float64) * 3
    mean, std = ensemble_statistics(z)
    assert np.allclose(mean.numpy(), z.numpy().mean(1))
    assert np.allclose(std.numpy(), z.numpy().std(1, ddof=0))  # GaSNet-II Eq. 8: over 10


def test_huber_matches_torch():
    a, b = torch.randn(200) * 0.3, torch.randn(200) * 0.3
    assert torch.allclose(huber(a, b).mean(), F.huber_loss(a, b, delta=0.1))


def test_fnet_has_24_layers_with_the_papers_kernels_and_channels():
    net = FNet()
    convs = net.conv_layers()
    assert len(convs) == 24
    assert [c.kernel_size[0] for c in convs] == list(KERNELS) * 8
    assert [c.out_channels for c in convs] == list(CHANNELS)
    assert CHANNELS[:21] == (32,) * 21 and CHANNELS[21:] == (64, 32, 16)
    small = FNet(n_pixels=4618, in_channels=2, width=0.1, bin=8, kernel_scale=8).eval()
    assert small(torch.randn(3, 2, 4618)).shape == (3,)
    assert [c.kernel_size[0] for c in small.conv_layers()[:3]] == [62, 25, 3]


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("k", [500, 200, 15, 16])
def test_fft_convolution_equals_conv1d_same(k):
    torch.manual_seed(k)
    x = torch.randn(2, 3, 700, dtype=torch.float64)
    w = torch.randn(4, 3, k, dtype=torch.float64)
    assert torch.allclose(fft_conv_same(x, w), F.conv1d(x, w, padding="same"), atol=1e-9)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_fnet_forward_uses_fft_for_long_kernels_and_matches_direct():
    torch.manual_seed(1)
    net = FNet(n_pixels=300, in_channels=2, width=0.1, hidden=(8, 4)).double().eval()
    x = torch.randn(2, 2, 300, dtype=torch.float64)
    h = net.pool(x)
    direct = h
    for block in net.blocks:
        direct = torch.relu(block.body(direct) + block.short(direct))  # Conv1d layers as such
    direct = net.head(direct).squeeze(-1)
    assert torch.allclose(net(x), direct, atol=1e-8)
