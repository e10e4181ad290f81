from __future__ import annotations

import numpy as np
import torch
from torch import nn

from jpasbatch.classify.model import CommitteeMLP, committee_probabilities


def _member_as_sequential(model: CommitteeMLP, k: int) -> nn.Sequential:
    """Member k rebuilt from torch.nn.Linear layers: the independent reference."""
    layers = []
    for i, (w, b) in enumerate(zip(model.weights, model.biases, strict=True)):
        lin = nn.Linear(w.shape[1], w.shape[2])
        with torch.no_grad():
            lin.weight.copy_(w[k].T)
            lin.bias.copy_(b[k, 0])
        layers.append(lin)
        if i < len(model.weights) - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def test_vectorised_committee_equals_separate_networks():
    model = CommitteeMLP(59, members=3, hidden=32, layers=4, seed=3).eval()
    x = torch.randn(100, 59)
    with torch.no_grad():
        out = model(x)
        for k in range(3):
            ref = _member_as_sequential(model, k)(x)
            torch.testing.assert_close(out[k], ref, rtol=1e-5, atol=1e-5)
    # one batch per member
    xs = torch.randn(3, 10, 59)
    with torch.no_grad():
        torch.testing.assert_close(model(xs)[1], _member_as_sequential(model, 1)(xs[1]))


def test_he_init_and_architecture():
    model = CommitteeMLP(59, seed=0)
    assert len(model.weights) == 9  # 8 hidden layers + output
    assert model.weights[0].shape == (8, 59, 200) and model.weights[-1].shape == (8, 200, 4)
    std = model.weights[3].detach().std().item()
    assert abs(std - np.sqrt(2 / 200)) < 0.003
    # members are initialised differently
    assert not torch.equal(model.weights[0][0], model.weights[0][1])


def test_max_norm_constrains_each_unit():
    model = CommitteeMLP(20, members=2, hidden=16, layers=2, max_norm=2.0)
    with torch.no_grad():
        model.weights[0].mul_(10)
        model.weights[0][:, :, 0] = 0.1  # a small unit stays as it is
    before = model.weights[0].detach().clone()
    model.apply_max_norm()
    norms = model.weights[0].detach().norm(dim=1)
    assert norms.max() <= 2.0 + 1e-5
    torch.testing.assert_close(model.weights[0][:, :, 0], before[:, :, 0])
    # direction is kept
    cos = torch.nn.functional.cosine_similarity(model.weights[0][0, :, 1], before[0, :, 1], dim=0)
    assert cos > 0.9999


def test_committee_median_matches_numpy():
    rng = np.random.default_rng(0)
    for k in (8, 5):
        p = rng.dirichlet(np.ones(4), size=(k, 50))
        expected = np.median(p, axis=0)
        expected /= expected.sum(1, keepdims=True)
        got = committee_probabilities(torch.from_numpy(p)).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-12)
