from __future__ import annotations

import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler

from jpasbatch.catalog.schemas import BANDS
from jpasbatch.classify.features import FeatureScaler

R = BANDS.index("rSDSS")


@pytest.fixture
def flux():
    rng = np.random.default_rng(1)
    f = rng.uniform(0.1, 5.0, (200, 60))
    f[0, 3] = -0.5  # a negative flux: colour 0, ratio kept
    f[1, 7] = np.nan  # missing band
    f[2, R] = -1.0  # no reference: unusable row
    f[3, 10] = 1e6  # a wild ratio, clipped for ann1
    return f


def test_ann1_relative_fluxes_against_a_loop(flux):
    scaler = FeatureScaler.fit(flux, "ann1", standardise=False)
    x, ok = scaler.transform(flux)
    assert x.shape == (200, 59) and x.dtype == np.float32
    assert not ok[2] and ok.sum() == 199
    for i in (0, 1, 3, 50):
        expected = []
        for j in range(60):
            if j == R:
                continue
            v = flux[i, j] / flux[i, R]
            expected.append(0.0 if np.isnan(v) else min(max(v, -50.0), 50.0))
        np.testing.assert_allclose(x[i], expected, rtol=1e-6)
    assert np.all(x[2] == 0)


def test_ann2_colours_and_scaled_magnitude(flux):
    scaler = FeatureScaler.fit(flux, "ann2", standardise=False)
    x, ok = scaler.transform(flux)
    assert x.shape == (200, 60)
    mag = -2.5 * np.log10(flux)
    others = [j for j in range(60) if j != R]
    colours = mag[:, others] - mag[:, [R]]
    good = np.isfinite(colours) & ok[:, None]
    np.testing.assert_allclose(x[:, :59][good], colours[good], rtol=1e-5, atol=1e-5)
    assert x[0, others.index(3)] == 0.0 and x[1, others.index(7)] == 0.0
    r = mag[ok, R]
    np.testing.assert_allclose(x[ok, 59], (r - r.min()) / (r.max() - r.min()), atol=1e-6)
    assert x[ok, 59].min() == 0.0 and x[ok, 59].max() == pytest.approx(1.0)
    # the constants travel with the model
    again = FeatureScaler(**scaler.to_dict())
    np.testing.assert_array_equal(again.transform(flux)[0], x)


@pytest.mark.parametrize("kind", ["ann1", "ann2"])
def test_standardisation_against_scikit_learn(flux, kind):
    raw, ok = FeatureScaler.fit(flux, kind, standardise=False).transform(flux)
    scaler = FeatureScaler.fit(flux, kind)
    x, _ = scaler.transform(flux)
    expected = StandardScaler().fit(raw[ok]).transform(raw[ok])
    np.testing.assert_allclose(x[ok], expected, atol=1e-4)
    assert np.all(x[~ok] == 0)
    # fitted on a sample, with the whole set's r fluxes for the magnitude range
    sample = FeatureScaler.fit(flux[::2], kind, r_flux=flux[:, R])
    assert (sample.r_min, sample.r_max) == (scaler.r_min, scaler.r_max)
    np.testing.assert_array_equal(FeatureScaler(**scaler.to_dict()).transform(flux)[0], x)


def test_fit_needs_a_reference_flux():
    with pytest.raises(ValueError, match="rSDSS"):
        FeatureScaler.fit(np.zeros((3, 60)))


@pytest.mark.parametrize("kind", ["ann1", "ann2"])
def test_missing_bands_become_the_training_mean(flux, kind):
    zero = FeatureScaler.fit(flux, kind)
    mean = FeatureScaler.fit(flux, kind, missing="mean")
    xz, _ = zero.transform(flux)
    xm, _ = mean.transform(flux)
    col = 7 if 7 < R else 6  # band 7's feature column (the reference has none)
    # standardised, the mean is 0: the "no information" value whatever the band
    assert xm[1, col] == 0.0
    assert xz[1, col] == pytest.approx((0.0 - zero.mean[col]) / zero.std[col], rel=1e-5)
    # every other feature is the same
    other = np.ones_like(xm, bool)
    other[1, col] = False
    np.testing.assert_array_equal(xm[other], xz[other])
    # a card without the field (older models) keeps the paper's zero
    d = mean.to_dict()
    assert FeatureScaler.from_dict(d).missing == "mean"
    d.pop("missing")
    assert FeatureScaler.from_dict(d).missing == "zero"
