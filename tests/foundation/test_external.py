"""The extra inputs the project gained for the foundation model: external bands, MOCK_EXT."""

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from jpasbatch.catalog.schemas import BANDS, EXTERNAL, MOCK, MOCK_EXT
from jpasbatch.mocks.pipeline import MocksConfig, make_partition
from jpasbatch.physics.filters import extra_bands
from jpasbatch.physics.photometry import SyntheticPhotometry
from jpasbatch.sim.external import external_true_fluxes, morphology


def test_decam_bands_of_the_j_spectrum_match_direct_synthetic_photometry():
    """For smooth spectra, DECam g r from the 56 J-PAS fluxes ~ DECam photometry of the spectrum."""
    wave = np.linspace(3000, 11500, 8000)
    spectra = np.stack([(wave / 6000.0) ** a for a in (-2.5, -1.0, 0.5)]) * 1e-17
    jp = SyntheticPhotometry()(wave, spectra).flux
    direct = SyntheticPhotometry(extra_bands(("DECAM_G", "DECAM_R", "DECAM_Z")))(wave, spectra).flux
    got = external_true_fluxes(jp, np.array(["STAR"] * 3), np.zeros(3), np.full(3, 5000.0),
                               "observed", np.random.default_rng(0))  # fmt: skip
    np.testing.assert_allclose(got[:, :2], direct[:, :2], rtol=0.01)
    # z extends past the reddest J-PAS band (flat extrapolation): a few per cent
    np.testing.assert_allclose(got[:, 2], direct[:, 2], rtol=0.05)


def test_wise_recipes():
    jp = np.full((3, len(BANDS)), 1e-17)
    rng = np.random.default_rng(0)
    f = external_true_fluxes(jp, np.array(["STAR", "QSO_LOW", "GALAXY"]), np.array([0, 1, 0.3]),
                             np.array([30000.0, np.nan, np.nan]), "observed", rng)  # fmt: skip
    piv = np.array([b.pivot_wavelength for b in extra_bands(("WISE_W1", "WISE_W2"))])
    fnu = f[:, 3:] * piv**2
    # a hot star is Rayleigh-Jeans (f_nu ~ nu^2): W1 / W2 = (lambda2 / lambda1)^2
    assert fnu[0, 0] / fnu[0, 1] == pytest.approx((piv[1] / piv[0]) ** 2, rel=0.02)
    # a QSO's hot dust is red in W1 - W2 (f_nu rising to the red)
    assert fnu[1, 1] > fnu[1, 0]


def test_morphology_types():
    rng = np.random.default_rng(0)
    n = 4000
    m = morphology(np.array(["GALAXY"] * n), np.array(["early"] * n), np.full(n, 1.5),
                   np.full(n, 18.0), rng)  # fmt: skip
    assert (m == "DEV").mean() > 0.9
    faint = morphology(np.array(["GALAXY"] * n), np.array(["early"] * n), np.full(n, 1.5),
                       np.full(n, 25.0), rng)  # fmt: skip
    assert set(np.unique(faint)) <= {"PSF", "REX", "DEV"} and (faint == "DEV").mean() < 0.1
    point = morphology(np.array(["STAR"] * n), np.array(["G"] * n), np.zeros(n),
                       np.full(n, 18.0), rng)  # fmt: skip
    assert (point == "PSF").mean() > 0.95


def test_extras_leave_the_mock_columns_unchanged():
    config = MocksConfig(n_objects=600, partition_rows=600, error_model="depth", fast=True, seed=2)
    plain = make_partition(0, config)
    ext = make_partition(0, config.model_copy(update={"extras": True}))
    assert plain.schema.names == MOCK.names and ext.schema.names == MOCK_EXT.names
    assert ext.select(MOCK.names).equals(plain)
    df = ext.to_pandas()
    assert df.loc[df.CLASS != "STAR", "TEFF"].isna().all()
    assert df.loc[df.CLASS == "STAR", "TEFF"].notna().all()
    assert df.loc[df.CLASS != "GALAXY", "EW_HALPHA"].isna().all()
    assert df["CLASS_STAR"].between(0, 1).all() and df["MORPH_TYPE"].notna().all()
    # point sources look point-like
    assert df.loc[df.CLASS == "STAR", "CLASS_STAR"].median() > 0.9


def test_emulator_writes_external_photometry(observed_tile):
    ext, truth = observed_tile["external"], observed_tile["truth"]
    assert ext.schema.equals(EXTERNAL, check_metadata=False)
    assert ext["OBJECT_ID"].to_pylist() == truth["OBJECT_ID"].tolist()
    bright = (truth["MAG_R"] < 20).to_numpy()
    rel = pd.Series(ext["FLUX_RELERR_DECAM_R"].to_numpy())
    assert rel[bright].median() < 0.05  # DECaLS r is 23.4 deep


def test_test_sets_carry_the_extra_columns(tmp_path, observed_tile):
    from jpasbatch.catalog.readers import write_archive_like
    from jpasbatch.mocks.testsets import build_test_sets

    sim = tmp_path / "sim"
    for sub in ("catalogue", "truth", "external"):
        (sim / sub).mkdir(parents=True)
    write_archive_like(sim / "catalogue" / "tile.parquet", observed_tile["catalogue"],
                       layout="array", fmt="parquet")  # fmt: skip
    observed_tile["truth"].to_parquet(sim / "truth" / "tile.parquet", index=False)
    pq.write_table(observed_tile["external"], sim / "external" / "tile.parquet")
    build_test_sets(sim, tmp_path)
    real = pq.read_table(tmp_path / "test_real.parquet")
    assert real.schema.names == MOCK_EXT.names
    df = real.to_pandas()
    assert df["FLUX_WISE_W1"].notna().any() and df["MORPH_TYPE"].notna().all()
    gal = df.CLASS == "GALAXY"
    assert df.loc[gal, "EW_HALPHA"].notna().all() and df.loc[~gal, "EW_HALPHA"].isna().all()
