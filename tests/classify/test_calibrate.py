from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

from jpasbatch.classify.calibrate import apply_temperature, fit_temperature, nll


def test_temperature_recovers_the_overconfidence_and_matches_a_grid_search():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (20000, 4))
    true_p = softmax(logits, axis=1)
    y = np.array([rng.choice(4, p=p) for p in true_p])
    overconfident = softmax(2.0 * logits, axis=1)
    t = fit_temperature(overconfident, y)
    assert abs(t - 2.0) < 0.1
    grid = np.linspace(0.5, 4, 701)
    brute = grid[np.argmin([nll(apply_temperature(overconfident, g), y) for g in grid])]
    assert abs(t - brute) < 0.01
    calibrated = apply_temperature(overconfident, t)
    np.testing.assert_allclose(calibrated.sum(1), 1.0)
    assert (calibrated.argmax(1) == overconfident.argmax(1)).all()
    assert nll(calibrated, y) < nll(overconfident, y)


def test_prior_correction_against_bayes():
    from jpasbatch.classify.calibrate import apply_prior, prior_ratio

    # two Gaussian classes; trained balanced, the truth is 9:1
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, 1000)
    like = np.stack([np.exp(-0.5 * (x - m) ** 2) for m in (-1, 1)], 1)
    balanced = like / like.sum(1, keepdims=True)
    y_train, w_train = (
        np.r_[np.zeros(900, int), np.ones(100, int)],
        np.r_[np.ones(900), 9 * np.ones(100)],
    )
    y_nat = np.r_[np.zeros(900, int), np.ones(100, int)]
    ratio = prior_ratio(y_train, w_train, y_nat, n_classes=2)
    np.testing.assert_allclose(ratio, [0.9 / 0.5, 0.1 / 0.5])
    bayes = like * np.array([0.9, 0.1])
    np.testing.assert_allclose(apply_prior(balanced, ratio), bayes / bayes.sum(1, keepdims=True))
    # oversampled natural sample with abundance weights gives the same ratio
    y_over = np.r_[np.zeros(900, int), np.ones(1000, int)]
    w_over = np.r_[np.ones(900), 0.1 * np.ones(1000)]
    np.testing.assert_allclose(prior_ratio(y_train, w_train, y_over, w_over, n_classes=2), ratio)


def test_protocol_weights(make_toy):
    from jpasbatch.classify.data import from_table

    data = from_table(make_toy(400, seed=3))
    data.weight = np.where(data.y >= 2, 0.1, 1.0)  # QSOs oversampled x10
    natural = data.protocol_weights("natural")
    np.testing.assert_array_equal(natural, data.weight)
    w = data.protocol_weights("balanced")
    group = np.minimum(data.y, 2)
    np.testing.assert_allclose([w[group == g].sum() for g in range(3)], [1 / 3] * 3)
    # within the QSO third, QSO_LOW : QSO_HIGH stays as in the natural weights
    ratio = natural[data.y == 2].sum() / natural[data.y == 3].sum()
    assert w[data.y == 2].sum() / w[data.y == 3].sum() == pytest.approx(ratio)
    with pytest.raises(ValueError, match="protocol"):
        data.protocol_weights("uniform")
