"""Hybridisation, inverse-density weights and stratified splits."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import cdist

from jpasbatch.mocks.augment import (
    balanced_split,
    draw_alpha,
    drop_bands,
    hybridise,
    inverse_density_weights,
    luminosity_coefficients,
    magnitude_bins,
)

CLASSES = np.array(["GALAXY", "QSO_HIGH", "QSO_LOW", "STAR"])  # np.unique order


def _training_set(n=6000, seed=0):
    rng = np.random.default_rng(seed)
    cls = rng.choice(CLASSES, n, p=[0.5, 0.1, 0.15, 0.25])
    # class mix changes with magnitude, so c_ij differ between bins
    r = rng.uniform(17, 23.6, n) + np.where(cls == "STAR", -1.0, 0.0)
    flux = 10 ** rng.uniform(-17, -16, (n, 10))
    return flux, cls, r


def test_luminosity_coefficients_sum_rule():
    counts = np.array([120, 5, 0, 900])
    c = luminosity_coefficients(counts)
    np.testing.assert_array_equal(np.diag(c), 0)
    np.testing.assert_allclose(c.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(c[0, 3], 900 / (1025 - 120))
    assert c[:, 2].sum() == 0  # an absent class is never a partner
    np.testing.assert_array_equal(luminosity_coefficients([7, 0, 0])[0], 0)  # nobody to mix with


def test_hybrid_class_counts_and_layout():
    flux, cls, r = _training_set()
    fh, ch, rh = hybridise(flux, cls, r, 1, factor=5, bin_size=1000)
    assert fh.shape == (5 * len(flux), flux.shape[1]) and rh.shape == ch.shape == (5 * len(flux),)
    np.testing.assert_array_equal(ch, np.tile(cls, 5))
    for c in CLASSES:
        assert np.sum(ch == c) == 5 * np.sum(cls == c)


def test_hybrids_follow_eq6_within_magnitude_bins():
    _, cls, r = _training_set(seed=1)
    bins = magnitude_bins(r, 1000)
    # diagnostic columns: a bin-constant value, and one indicator per class
    tagged = np.column_stack([bins + 1.0, *(cls == c for c in CLASSES)]).astype(float)
    fh, ch, _, y = hybridise(tagged, cls, r, 2, factor=3, bin_size=1000, soft_labels=True)
    base = np.tile(np.arange(len(cls)), 3)
    # partners come from the base object's own bin (convex mix of a constant)
    np.testing.assert_allclose(fh[:, 0], bins[base] + 1.0, rtol=1e-12)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(fh[:, 1:], y, atol=1e-12)  # Eq. 6 mixes one-hot vectors into Eq. 2
    for k in np.unique(bins):
        counts = np.array([np.sum((bins == k) & (cls == c)) for c in CLASSES])
        for i, c in enumerate(CLASSES):
            rows = (ch == c) & (bins[base] == k)
            alpha = y[rows, i]
            for j in range(len(CLASSES)):
                if j != i:
                    c_ij = counts[j] / (counts.sum() - counts[i])  # paper Eq. 5
                    np.testing.assert_allclose(y[rows, j], (1 - alpha) * c_ij, atol=1e-12)


def test_mixing_weights_follow_truncated_exponential():
    b = 0.1
    alpha = draw_alpha(20_000, b, 3)
    assert np.all((alpha >= 0) & (alpha <= 1))
    # 1 - alpha has pdf (1/b) exp(-x/b) on [0, 1]: scipy's truncexpon, bound 1/b in units of b
    ref = stats.truncexpon(b=1 / b, scale=b)
    assert stats.kstest(1 - alpha, ref.cdf).pvalue > 1e-3
    assert stats.kstest(1 - alpha, stats.truncexpon(b=1 / 0.2, scale=0.2).cdf).pvalue < 1e-6
    # the alphas inside hybridise are the same distribution
    flux, cls, r = _training_set(seed=2)
    _, ch, _, y = hybridise(flux, cls, r, 4, b=b, bin_size=2000, soft_labels=True)
    own = y[np.arange(len(y)), np.searchsorted(CLASSES, ch)]
    assert stats.kstest(1 - own, ref.cdf).pvalue > 1e-3


def test_hybrid_r_magnitude_is_that_of_the_mixed_flux():
    flux, cls, r = _training_set(seed=3)
    flux[:, 0] = 10 ** (-0.4 * r)
    fh, _, rh = hybridise(flux, cls, r, 5, factor=2, bin_size=1500)
    np.testing.assert_allclose(rh, -2.5 * np.log10(fh[:, 0]), atol=1e-10)


def test_hybridise_deterministic():
    flux, cls, r = _training_set(n=2000, seed=4)
    a = hybridise(flux, cls, r, np.random.default_rng(8), bin_size=500)
    b = hybridise(flux, cls, r, np.random.default_rng(8), bin_size=500)
    c = hybridise(flux, cls, r, np.random.default_rng(9), bin_size=500)
    for x, z in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, z)
    assert not np.array_equal(a[0], c[0])


def _knn_radius(x, k):
    d = cdist(x, x)
    return np.sort(d, axis=1)[:, k]  # column 0 is the point itself


def test_weights_normalised_per_class():
    rng = np.random.default_rng(5)
    cls = rng.choice(["GALAXY", "QSO", "STAR"], 3000, p=[0.8, 0.05, 0.15])
    w = inverse_density_weights(rng.normal(size=(3000, 3)), cls, k=8)
    assert w.sum() == pytest.approx(1.0, rel=1e-12)
    for c in ("GALAXY", "QSO", "STAR"):
        assert w[cls == c].sum() == pytest.approx(1 / 3, rel=1e-12)
    cls4 = rng.choice(list("ABCD"), 400)
    w4 = inverse_density_weights(rng.normal(size=(400, 2)), cls4, k=5)
    for c in "ABCD":
        assert w4[cls4 == c].sum() == pytest.approx(0.25, rel=1e-12)


def test_denser_regions_get_lower_weights():
    rng = np.random.default_rng(6)
    x = np.vstack([rng.normal(0, 1, (800, 2)), rng.normal(10, 3, (500, 2))])
    cls = np.r_[np.zeros(800, int), np.ones(500, int)]
    k = 7
    w = inverse_density_weights(x, cls, k=k)
    for c in (0, 1):
        sel = cls == c
        ref = _knn_radius(x[sel], k) ** 2  # 1 / rho_kNN in D = 2
        np.testing.assert_allclose(w[sel], ref / ref.sum() / 2, rtol=1e-9)
    core = np.linalg.norm(x[:800], axis=1)
    assert stats.spearmanr(core, w[:800]).statistic > 0.8  # weight grows away from the peak
    # smoothing: w ~ 1 / (rho / rho_median + eps) caps the weights of the emptiest regions
    eps = 0.5
    smooth = inverse_density_weights(x, cls, k=k, eps=eps)
    ref = _knn_radius(x[:800], k)
    rel_rho = (np.exp(np.median(np.log(ref))) / ref) ** 2
    np.testing.assert_allclose(smooth[:800], 1 / (rel_rho + eps) / np.sum(1 / (rel_rho + eps)) / 2)
    assert smooth[:800].max() / smooth[:800].min() < w[:800].max() / w[:800].min()
    # duplicates (infinite density) get weight 0
    dup = np.vstack([x[:800], np.repeat(x[:1], k, axis=0)])  # k + 1 identical points
    with pytest.warns(UserWarning, match="duplicates"):
        wd = inverse_density_weights(dup, np.zeros(800 + k, int), k=k)
    assert np.all(wd[800:] == 0) and wd[0] == 0 and np.all(wd[1:800] > 0)


def test_class_specific_feature_spaces():
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(300, 2)), rng.normal(size=(200, 1))
    x = np.full((500, 3), np.nan)
    x[:300, :2], x[300:, 2:] = a, b
    cls = np.r_[np.zeros(300, int), np.ones(200, int)]
    w = inverse_density_weights(x, cls, k=5)
    np.testing.assert_allclose(w[:300], inverse_density_weights(a, np.zeros(300, int), k=5) / 2)
    np.testing.assert_allclose(w[300:], inverse_density_weights(b, np.zeros(200, int), k=5) / 2)
    x[0, 2] = 1.0
    with pytest.raises(ValueError, match="partly NaN"):
        inverse_density_weights(x, cls)


def test_splits_are_stratified_and_deterministic():
    rng = np.random.default_rng(8)
    cls = rng.choice(["GALAXY", "QSO_LOW", "QSO_HIGH", "STAR"], 5003, p=[0.6, 0.1, 0.05, 0.25])
    s = balanced_split(cls, 1)
    assert set(np.unique(s)) == {"train", "validation", "test"}
    for c in np.unique(cls):
        n = np.sum(cls == c)
        got = [np.sum(s[cls == c] == name) for name in ("train", "validation", "test")]
        assert sum(got) == n
        assert np.all(np.abs(np.array(got) - np.array([0.7, 0.15, 0.15]) * n) < 1)
    np.testing.assert_array_equal(s, balanced_split(cls, np.random.default_rng(1)))
    assert not np.array_equal(s, balanced_split(cls, 2))
    with pytest.raises(ValueError, match="fractions"):
        balanced_split(cls, 1, fractions=(0.7, 0.2, 0.2))


def test_drop_bands_patterns_and_share():
    rng = np.random.default_rng(5)
    n, nb = 30_000, 60
    flux, relerr = np.ones((n, nb)), np.ones((n, nb))
    order = rng.permutation(nb)  # any wavelength order
    mask = drop_bands(flux, relerr, 0.3, rng, order, keep=int(order[30]))
    rows = mask.any(1)
    assert rows.mean() == pytest.approx(0.3, abs=0.01)
    assert np.array_equal(np.isnan(flux), mask) and np.array_equal(np.isnan(relerr), mask)
    assert not mask[:, order[30]].any()  # the reference band is kept
    assert mask[rows].sum(1).max() <= 4
    # a third of the rows lose bands only at the red end, in wavelength order
    red = mask[:, order[-3:]].any(1) & ~mask[:, order[:-3]].any(1)
    assert red.mean() == pytest.approx(0.1, abs=0.015)
    for row in np.flatnonzero(red)[:50]:
        lost = np.flatnonzero(mask[row, order])
        assert np.array_equal(lost, np.arange(nb - lost.size, nb))
