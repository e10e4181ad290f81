"""The survey emulator: physics of the observation, determinism across workers."""

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from dask.distributed import Client, LocalCluster
from scipy.integrate import quad

from jpasbatch.catalog.readers import read_catalogue
from jpasbatch.catalog.schemas import BANDS, OBSERVED
from jpasbatch.sim.emulator import (
    APERTURE_RADIUS,
    SimulateConfig,
    aperture_fraction,
    simulate,
    simulate_tile,
    xmatch_probability,
)
from jpasbatch.sim.survey import footprint, reference_tiles, tile_areas

FAST = SimulateConfig(area_deg2=0.3, seed=7, fast=True)


@pytest.fixture(scope="module")
def tile_output():
    tile = footprint(0.27)[0]
    return tile, *simulate_tile(tile, 0.27, FAST, 0)


def test_aperture_fraction_against_numerical_integration():
    # a Gaussian source convolved with a Gaussian PSF, integrated numerically
    seeing, r_e = np.array([0.8, 1.2, 1.6]), 0.6
    for fwhm, got in zip(seeing, aperture_fraction(np.array(r_e), seeing), strict=True):

        def caught(sigma):
            return quad(
                lambda r: r * np.exp(-(r**2) / (2 * sigma**2)) / sigma**2, 0, APERTURE_RADIUS
            )[0]

        s_psf = fwhm / 2.3548
        want = caught(np.hypot(s_psf, r_e / 1.1774)) / caught(s_psf)
        assert got == pytest.approx(want, rel=1e-6)
    assert aperture_fraction(np.array(0.0), seeing) == pytest.approx(1.0)
    # extended sources come out fainter than their total flux, by a seeing-dependent amount
    frac = aperture_fraction(np.array(1.0), seeing)
    assert np.all(frac < 0.8) and np.ptp(frac) > 0.02


def test_catalogue_conforms_and_is_deterministic(tile_output):
    tile, cat, truth = tile_output
    assert cat.schema.equals(OBSERVED, check_metadata=False)
    assert (
        len(truth) == cat.num_rows and truth["OBJECT_ID"].tolist() == cat["OBJECT_ID"].to_pylist()
    )
    again, truth2 = simulate_tile(tile, 0.27, FAST, 0)
    # pandas equality: NaN (missing bands) equals NaN
    assert again.to_pandas().equals(cat.to_pandas()) and truth2.equals(truth)
    other, _ = simulate_tile(tile, 0.27, FAST, 1)
    assert not other.to_pandas().equals(cat.to_pandas())


def test_noise_follows_the_tile_depths(tile_output):
    tile, cat, truth = tile_output
    j = BANDS.index("J0660")
    true = truth[f"TRUE_FLUX_{BANDS[j]}"].to_numpy()
    pivot = 6606.9  # close enough to locate objects at the 5-sigma depth
    mag = -2.5 * np.log10(true * pivot**2 / 2.99792458e18) - 48.6
    point = truth["HALF_LIGHT_ARCSEC"].to_numpy() == 0
    at_depth = point & (np.abs(mag - tile.depth[j]) < 0.1)
    snr = 1 / cat[f"FLUX_RELERR_{BANDS[j]}"].to_numpy()[at_depth]
    assert at_depth.sum() > 30
    assert np.median(snr) == pytest.approx(5, rel=0.2)


def test_flags_classes_and_cross_match(tile_output):
    _, cat, truth = tile_output
    cs = cat["CLASS_STAR"].to_numpy()
    stars = (truth["CLASS"] == "STAR").to_numpy() & (truth["MAG_R"] < 21).to_numpy()
    big = (truth["HALF_LIGHT_ARCSEC"] > 1.0).to_numpy()
    assert np.median(cs[stars]) > 0.8 and np.median(cs[big]) < 0.2
    assert 0.01 < (cat["FLAGS"].to_numpy() != 0).mean() < 0.1
    # the cross-match subset is bright-biased and prefers QSOs at a given magnitude
    x = truth["IN_XMATCH"].to_numpy()
    r = truth["MAG_R"].to_numpy()
    assert x[r < 19].mean() > 5 * x[r > 22].mean()
    p = xmatch_probability(np.array(["STAR", "GALAXY", "QSO_LOW"]), np.full(3, 21.5))
    assert p[2] > p[1] > p[0]


def test_footprint_areas():
    assert len(reference_tiles()) == 4
    assert tile_areas(1.0).sum() == pytest.approx(1.0)
    tiles = footprint(2.5)
    assert len(tiles) == 10 and len({t.tile_id for t in tiles}) == 10


def test_same_output_with_one_and_two_workers(tmp_path):
    results = {}
    for n in (1, 2):
        with LocalCluster(n_workers=n, threads_per_worker=1, dashboard_address=None) as cluster:
            with Client(cluster) as client:
                simulate(tmp_path / f"w{n}", FAST, client=client)
        results[n] = {
            p.name: pq.read_table(p)
            for p in sorted((tmp_path / f"w{n}" / "catalogue").glob("*.parquet"))
        }
    assert results[1].keys() == results[2].keys() and len(results[1]) == 2
    for name in results[1]:
        assert results[1][name].to_pandas().equals(results[2][name].to_pandas())
    # the archive-layout files read back through the catalogue readers
    table = read_catalogue(tmp_path / "w1" / "catalogue" / name)
    truth = pd.read_parquet(tmp_path / "w1" / "truth" / name)
    assert table.num_rows == len(truth)


def test_a_survey_of_chosen_families():
    fams = ["star_redrock", "gal_redrock", "qso_composite"]
    config = SimulateConfig(fast=True, seed=4, families=fams)
    cat, truth = simulate_tile(footprint(0.02)[0], 0.02, config, 0)
    assert cat.num_rows == len(truth) > 0
    assert set(truth["FAMILY"]) <= set(fams) and "gal_redrock" in set(truth["FAMILY"])
    by_class = truth.groupby("FAMILY").CLASS.unique()
    assert set(by_class["gal_redrock"]) == {"GALAXY"}
    assert truth["EW_HALPHA"].isna().all()
    with pytest.raises(ValueError, match="unknown spectral families"):
        SimulateConfig(families=["nope"])
