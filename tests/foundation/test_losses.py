"""NLL gradients and the weighted MMD against direct computations."""

import math

import numpy as np
import pytest
import torch

from jpasbatch.foundation.losses import (
    Reweighter,
    domain_adaptation_loss,
    effective_sample_size,
    gaussian_nll,
    median_bandwidth,
    weighted_mmd2,
)


def test_nll_value_and_gradient_against_analytic_form():
    y = torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)
    mu = torch.tensor([0.1, -0.5, 2.5], dtype=torch.float64, requires_grad=True)
    sp = torch.tensor([0.2, 0.5, 1.0], dtype=torch.float64, requires_grad=True)
    so = torch.tensor([0.1, 0.0, 0.3], dtype=torch.float64)
    loss = gaussian_nll(y, mu, sp, so)
    var = sp.detach() ** 2 + so**2
    want = 0.5 * ((y - mu.detach()) ** 2 / var + torch.log(var))
    torch.testing.assert_close(loss, want)
    loss.sum().backward()
    # d/dmu = -(y - mu) / var ; d/dsp = sp / var * (1 - (y - mu)^2 / var)
    r = y - mu.detach()
    torch.testing.assert_close(mu.grad, -r / var)
    torch.testing.assert_close(sp.grad, sp.detach() / var * (1 - r**2 / var))
    # and autograd agrees with finite differences (gradcheck)
    z = y.abs()  # redshifts
    assert torch.autograd.gradcheck(
        lambda m, s: gaussian_nll(z, m, s, so, redshift=True).sum(), (mu, sp)
    )


def test_redshift_nll_uses_residual_over_one_plus_z():
    z = torch.tensor([0.0, 1.0, 3.0])
    mu = z + torch.tensor([0.1, 0.2, 0.4])  # dz / (1 + z) = 0.1 for every object
    sigma = torch.full((3,), 0.05)
    loss = gaussian_nll(z, mu, sigma, redshift=True)
    assert torch.allclose(loss, loss[0].expand(3))
    assert loss[0] == pytest.approx(0.5 * (0.1**2 / 0.05**2 + math.log(0.05**2)))


def _mmd_direct(hs, ht, w, sigma):
    """Eq. 10 by brute force: || mean_i phi(s_i) - sum_j w_j phi(t_j) ||^2 as a double loop."""

    def k(a, b):
        return math.exp(-np.sum((a - b) ** 2) / (2 * sigma**2))

    ns = len(hs)
    total = 0.0
    for a in range(ns):
        for b in range(ns):
            total += k(hs[a], hs[b]) / ns**2
    for a in range(len(ht)):
        for b in range(len(ht)):
            total += w[a] * w[b] * k(ht[a], ht[b])
    for a in range(ns):
        for b in range(len(ht)):
            total -= 2 / ns * w[b] * k(hs[a], ht[b])
    return total


def test_weighted_mmd_against_direct_computation():
    rng = np.random.default_rng(0)
    hs = rng.normal(0, 1, (12, 4))
    ht = rng.normal(0.5, 1.3, (9, 4))
    w = rng.random(9)
    w /= w.sum()
    pooled = np.vstack([hs, ht])
    d = np.sqrt(((pooled[:, None] - pooled[None]) ** 2).sum(-1))
    sigma = np.median(d[~np.eye(len(pooled), dtype=bool)])
    got = weighted_mmd2(torch.tensor(hs), torch.tensor(ht), torch.tensor(w))
    assert float(median_bandwidth(torch.tensor(hs), torch.tensor(ht))) == pytest.approx(sigma)
    assert float(got) == pytest.approx(_mmd_direct(hs, ht, w, sigma), rel=1e-10)
    # identical samples with uniform weights: zero; MMD is never negative
    same = weighted_mmd2(torch.tensor(hs), torch.tensor(hs), torch.full((12,), 1 / 12.0).double())
    assert float(same) == pytest.approx(0.0, abs=1e-12) and float(got) > 0


def test_reweighting_can_cancel_a_prior_shift():
    """Target = source classes in the wrong proportions; the right weights shrink the MMD."""
    rng = np.random.default_rng(2)
    a, b = rng.normal(-2, 0.3, (20, 2)), rng.normal(2, 0.3, (20, 2))
    hs = torch.tensor(np.vstack([a, b]))  # 20 / 20
    ht = torch.tensor(np.vstack([a[:5], b]))  # 5 / 20: the minority class is rare
    uniform = torch.full((25,), 1 / 25.0, dtype=torch.float64)
    balanced = torch.tensor([1 / 10.0] * 5 + [1 / 40.0] * 20, dtype=torch.float64)
    assert weighted_mmd2(hs, ht, balanced) < 0.1 * weighted_mmd2(hs, ht, uniform)
    # and the reweighting MLP learns to up-weight the minority under the DA loss
    torch.manual_seed(0)
    psi = Reweighter(2, hidden=16).double()
    opt = torch.optim.Adam(psi.parameters(), lr=0.05)
    for _ in range(60):
        loss, _ = domain_adaptation_loss(hs, ht, psi(ht), lambda_mmd=1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    w = psi(ht).detach()
    assert w[:5].mean() > 2 * w[5:].mean()


def test_entropy_and_ess_regularisers():
    n = 10
    uniform = torch.full((n,), 1.0 / n)
    hs, ht = torch.randn(5, 3), torch.randn(n, 3)
    _, parts = domain_adaptation_loss(hs, ht, uniform)
    assert parts["entropy_reg"] == pytest.approx(0.0, abs=1e-6)
    assert parts["ess_frac"] == pytest.approx(1.0) and parts["ess_reg"] == 0.0
    peaked = torch.tensor([0.91] + [0.01] * 9)
    ess = float(effective_sample_size(peaked))
    assert ess == pytest.approx(1 / (0.91**2 + 9 * 0.01**2))
    loss, parts = domain_adaptation_loss(hs, ht, peaked, lambda_mmd=0.2)
    assert parts["ess_reg"] == pytest.approx(0.7 - ess / n)  # active below 70% of the batch
    entropy = -(peaked * peaked.log()).sum()
    assert parts["entropy_reg"] == pytest.approx(float(1 - entropy / math.log(n)), rel=1e-5)
    want = 0.2 * (parts["mmd2"] + 0.1 * parts["entropy_reg"] + 0.05 * parts["ess_reg"])
    assert float(loss) == pytest.approx(want, rel=1e-5)


def test_objective_beta_nll_weights_each_term_by_its_variance():
    from jpasbatch.foundation.model import FoundationModel, split_outputs
    from jpasbatch.foundation.objective import Objective
    from jpasbatch.foundation.tokens import token_index, vocabulary

    from .conftest import TINY

    torch.manual_seed(0)
    v = len(vocabulary())
    model = FoundationModel(**TINY).eval()
    values, errors = torch.randn(6, v), torch.rand(6, v) * 0.3
    context = torch.ones(6, v, dtype=torch.bool)
    targets = torch.tensor([token_index("J0660"), token_index("rSDSS")]).expand(6, 2)
    context[:, targets[0]] = False
    batch = {
        "values": values, "errors": errors, "context": context, "targets": targets,
        "valid": torch.ones(6, 2, dtype=torch.bool),
        "y": torch.gather(values, 1, targets), "y_err": torch.gather(errors, 1, targets),
    }  # fmt: skip
    ids = torch.arange(v)
    with torch.no_grad():
        plain, _ = Objective(model)(ids, **batch)
        weighted, _ = Objective(model, beta=0.5)(ids, **batch)
        out, _ = model(ids, values, errors, context, targets)
    mu, sigma = split_outputs(out)
    var = sigma**2 + batch["y_err"] ** 2
    nll = gaussian_nll(batch["y"], mu, sigma, batch["y_err"])
    assert float(plain) == pytest.approx(float(nll.mean()), rel=1e-5)
    assert float(weighted) == pytest.approx(float((nll * var.sqrt()).mean()), rel=1e-5)
