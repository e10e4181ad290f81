"""Spectral families: coverage, finiteness, draws and the family mix."""

import numpy as np
import pandas as pd
import pytest

from jpasbatch.sim import spectral_families as sf

Z_RANGE = {"STAR": (0.0, 0.0), "GALAXY": (0.0, 1.6), "QSO": (0.1, 6.0)}
SUBTYPES = {
    "STAR": ["O", "B", "A", "F", "G", "K", "M", "WD"],
    "GALAXY": ["early", "spiral", "starburst"],
    "QSO": [""],
}


def _population(cls: str, n: int, rng) -> pd.DataFrame:
    lo, hi = Z_RANGE[cls]
    z = np.linspace(lo, hi, n)
    label = np.where(z >= 2.1, "QSO_HIGH", "QSO_LOW") if cls == "QSO" else np.full(n, cls)
    return pd.DataFrame(
        {
            "CLASS": label,
            "Z": z,
            "MAG_R": rng.uniform(17, 24, n),
            "SUBTYPE": np.resize(SUBTYPES[cls], n),
        }
    )


@pytest.mark.parametrize("name", list(sf.FAMILIES))
def test_family_spectra_are_finite_over_the_observed_range(name):
    rng = np.random.default_rng(0)
    fam = sf.FAMILIES[name]
    pop = _population(fam.cls, 120, rng)
    spec, tmpl, fx = sf.rest_spectra(name, pop, rng)
    assert spec.shape == (120, sf.GRID.size) and tmpl.shape == (120,)
    z = pop["Z"].to_numpy()
    for i in range(len(pop)):
        obs = sf.GRID * (1 + z[i])
        seen = (obs >= 3000) & (obs <= 11000)
        assert seen.sum() > 500
        assert np.isfinite(spec[i, seen]).all()
        # light where J-PAS looks (blueward of Lyman-alpha a QSO may be absorbed away)
        red = seen & (sf.GRID > 1300)
        assert np.median(spec[i, red]) > 0
    flux = sf.band_fluxes(spec, z, igm=fam.cls == "QSO")
    assert np.isfinite(flux).all()
    assert np.mean(flux > 0) > 0.98
    assert np.all(fx.ebv >= 0)


def test_qso_effects_apply_where_stated():
    rng = np.random.default_rng(1)
    pop = _population("QSO", 3000, rng)
    _, _, fx = sf.rest_spectra("qso_composite", pop, rng)
    z = pop["Z"].to_numpy()
    assert not fx.bal[z <= sf.BAL_Z_MIN].any()
    assert fx.bal[z > sf.BAL_Z_MIN].mean() == pytest.approx(sf.BAL_FRACTION, abs=0.03)
    has = np.isfinite(fx.dla_log_nhi)
    # one in a few high-z QSOs: dN/dz = 0.25 over the forest path
    assert 0.2 < has[z > 4].mean() < 0.6 and has[z < 1].mean() < 0.15
    assert np.all((fx.host_fraction >= 0) & (fx.host_fraction < 1))


def test_galaxy_line_factors_scale_emission():
    rng = np.random.default_rng(2)
    pop = _population("GALAXY", 400, rng)
    _, _, fx = sf.rest_spectra("gal_redrock", pop, rng)
    # lines x LogNormal(0, 0.5)
    assert np.log(fx.line_factor).std() == pytest.approx(0.5, rel=0.15)


def test_resample_conserves_line_flux():
    # a Gaussian line of analytic flux 50 * 2 * sqrt(2 pi) on a flat continuum of 1
    wave = np.linspace(3000, 9000, 60001)
    flux = 1 + 50 * np.exp(-0.5 * ((wave - 6563) / 2.0) ** 2)
    out = sf.resample(wave, flux[None])[0]
    edges = np.sqrt(sf.GRID[1:] * sf.GRID[:-1])
    near = (sf.GRID[1:-1] > 6300) & (sf.GRID[1:-1] < 6800)
    line = np.sum((out[1:-1][near] - 1) * np.diff(edges)[near])
    assert line == pytest.approx(50 * 2 * np.sqrt(2 * np.pi), rel=1e-3)
    np.testing.assert_allclose(out[(sf.GRID > 3100) & (sf.GRID < 6000)], 1.0, rtol=1e-9)


def test_family_mix_assigns_within_class_uniformly():
    rng = np.random.default_rng(3)
    mix = sf.FamilyMix(list(sf.FAMILIES))
    cls = np.array(["STAR"] * 6000 + ["GALAXY"] * 6000 + ["QSO_LOW"] * 3000 + ["QSO_HIGH"] * 3000)
    fam = mix.assign(cls, rng)
    for c, names in (("STAR", ["star_pickles", "star_redrock"]), ("QSO", ["qso_sdss_pca",
                     "qso_redrock", "qso_composite"])):  # fmt: skip
        got = fam[sf.class_of(cls) == c]
        assert set(got) == set(names)
        for n in names:
            assert np.mean(got == n) == pytest.approx(1 / len(names), abs=0.03)


def test_family_mix_normalises_to_r_and_labels():
    rng = np.random.default_rng(4)
    pop = pd.concat([_population(c, 40, rng) for c in ("STAR", "GALAXY", "QSO")], ignore_index=True)
    flux, labels = sf.FamilyMix(list(sf.FAMILIES)).true_fluxes(pop, rng)
    from jpasbatch.physics.photometry import flux_to_ab

    sp = sf._photometry()
    r = sp.bands.index("rSDSS")
    mag_r = flux_to_ab(flux[:, r : r + 1], np.array([sp.system[r].pivot_wavelength]))[:, 0]
    np.testing.assert_allclose(mag_r, pop["MAG_R"], atol=2e-4)
    assert set(labels["FAMILY"]) == set(sf.FAMILIES)
    assert labels.loc[sf.class_of(pop["CLASS"]) == "STAR", "TEFF"].notna().all()


def test_family_lists_are_checked():
    with pytest.raises(ValueError, match="unknown"):
        sf.check_families(["star_pickles", "nope"])
    with pytest.raises(ValueError, match="QSO"):
        sf.check_families(["star_pickles", "gal_kcorrect"])


def test_every_family_says_where_its_templates_come_from():
    for fam in sf.FAMILIES.values():
        assert (
            "licen" in fam.provenance.lower()
            or "cite" in fam.provenance.lower()
            or any(lic in fam.provenance for lic in ("MIT", "BSD"))
        ), fam.name
