"""Mock catalogues end to end on a real Dask cluster, and the Test-Real / Test-Synth sets."""

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from dask.distributed import Client, LocalCluster

from jpasbatch.catalog.schemas import BANDS, MOCK
from jpasbatch.mocks.pipeline import MocksConfig, make_mocks, make_partition
from jpasbatch.mocks.testsets import build_test_sets
from jpasbatch.sim.emulator import SimulateConfig, simulate, simulate_tile
from jpasbatch.sim.survey import footprint

CONFIG = MocksConfig(n_objects=6000, partition_rows=2000, error_model="depth", fast=True, seed=3)


@pytest.fixture(scope="module")
def observed(tmp_path_factory):
    """A small emulated observed catalogue, as an OBSERVED-schema Parquet file."""
    cat, _ = simulate_tile(footprint(0.1)[0], 0.1, SimulateConfig(fast=True, seed=1), 0)
    path = tmp_path_factory.mktemp("obs") / "observed.parquet"
    pq.write_table(cat, path)
    return path


def test_partition_structure_and_weights():
    hybrid = CONFIG.model_copy(update={"hybridise": True})
    plain, mixed = make_partition(0, CONFIG).to_pandas(), make_partition(0, hybrid).to_pandas()
    assert list(plain.columns) == MOCK.names and len(plain) == 2000
    # stratified splits: each class split ~70/15/15
    shares = plain.groupby("CLASS")["SPLIT"].value_counts(normalize=True).unstack()
    assert np.allclose(shares.loc[["GALAXY", "STAR"], "train"], 0.7, atol=0.02)
    # hybridisation replaces each training row by 5 hybrids, same class mix
    n_train = (plain["SPLIT"] == "train").sum()
    assert (mixed["SPLIT"] == "train").sum() == 5 * n_train
    assert (
        mixed[mixed.SPLIT == "train"].CLASS.value_counts()
        == 5 * plain[plain.SPLIT == "train"].CLASS.value_counts()
    ).all()
    # partners of similar brightness only (magnitude bins): a hybrid's r stays near its
    # base object's; one bin over the whole 14-24 mag range shifts faint ones by magnitudes
    hyb = mixed[mixed.SPLIT == "train"]
    base_id = hyb.OBJECT_ID - (hyb.OBJECT_ID % 10_000_000) // 1_000_000 * 1_000_000
    base_r = plain.set_index("OBJECT_ID").loc[base_id, "MAG_R"].to_numpy()
    shift = np.abs(hyb.MAG_R.to_numpy() - base_r)
    assert np.median(shift) < 0.05 and np.quantile(shift, 0.95) < 0.3
    # weights only on training rows; STAR / GALAXY / QSO each 1/3 of this partition's share
    train = plain[plain.SPLIT == "train"]
    merged = train.CLASS.str.replace("QSO_LOW", "QSO").str.replace("QSO_HIGH", "QSO")
    assert np.allclose(train.groupby(merged).WEIGHT.sum(), 1 / 3 / 3)
    assert (plain.loc[plain.SPLIT != "train", "WEIGHT"] == 1).all()  # no oversampling


def test_same_mocks_with_one_and_two_workers(tmp_path, client):
    make_mocks(tmp_path / "two", CONFIG, client=client)
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster:
        with Client(cluster) as one:
            props = make_mocks(tmp_path / "one", CONFIG, client=one)
    assert props["total_rows"] == 6000 and len(props["partitions"]) == 3
    a = pq.read_table(tmp_path / "one").to_pandas()
    b = pq.read_table(tmp_path / "two").to_pandas()
    assert a.equals(b)
    merged = a[a.SPLIT == "train"].CLASS.str[:3]
    assert np.allclose(a[a.SPLIT == "train"].groupby(merged).WEIGHT.sum(), 1 / 3)


def test_similarity_errors_come_from_the_observed_catalogue(tmp_path, client, observed):
    config = CONFIG.model_copy(
        update={"error_model": "similarity", "n_objects": 2000, "embed_epochs": 3}
    )
    make_mocks(tmp_path / "sim", config, observed=observed, client=client)
    mocks = pq.read_table(tmp_path / "sim").to_pandas()
    obs = pq.read_table(observed).to_pandas()
    # the absolute error of every mock band is the error of some observed object in that band
    j = "J0660"
    sigma_mock = (mocks[f"FLUX_RELERR_{j}"] * mocks[f"FLUX_{j}"].abs()).dropna().to_numpy()
    sigma_obs = (obs[f"FLUX_RELERR_{j}"] * obs[f"FLUX_{j}"].abs()).dropna().to_numpy()
    # (to float32 round-off: both are stored as relative error and flux)
    ref = np.sort(sigma_obs)
    k = np.clip(np.searchsorted(ref, sigma_mock), 1, ref.size - 1)
    nearest = np.minimum(np.abs(ref[k] - sigma_mock), np.abs(ref[k - 1] - sigma_mock))
    assert np.mean(nearest / sigma_mock < 1e-5) > 0.99
    with pytest.raises(ValueError, match="observed catalogue"):
        make_mocks(tmp_path / "x", config, client=client)


def test_test_real_and_test_synth(tmp_path, client):
    simulate(tmp_path / "sim", SimulateConfig(area_deg2=0.1, fast=True), client=client)
    counts = build_test_sets(tmp_path / "sim", tmp_path)
    truth = pd.read_parquet(tmp_path / "sim" / "truth")
    assert counts["test_real"] == truth["IN_XMATCH"].sum() > 0
    real = pd.read_parquet(tmp_path / "test_real.parquet").set_index("OBJECT_ID")
    synth = pd.read_parquet(tmp_path / "test_synth.parquet").set_index("OBJECT_ID")
    for b in BANDS[::7]:  # the exact observed error of each measurement, in both sets
        s_real = real[f"FLUX_RELERR_{b}"] * real[f"FLUX_{b}"].abs()
        s_synth = synth[f"FLUX_RELERR_{b}"] * synth[f"FLUX_{b}"].abs()
        assert np.allclose(s_real, s_synth, rtol=1e-5, equal_nan=True)
    # Test-Synth scatters around the noiseless fluxes with those errors
    t = truth.set_index("OBJECT_ID").loc[synth.index]
    pull = (synth["FLUX_J0660"] - t["TRUE_FLUX_J0660"]) / (
        real["FLUX_RELERR_J0660"] * real["FLUX_J0660"].abs()
    )
    assert abs(pull.mean()) < 0.2 and pull.std() == pytest.approx(1, abs=0.15)


def test_qso_boost_oversamples_and_weights_back():
    plain = make_partition(0, CONFIG).to_pandas()
    boosted = make_partition(0, CONFIG.model_copy(update={"qso_boost": 10.0})).to_pandas()
    frac = [(t.CLASS.str.startswith("QSO")).mean() for t in (plain, boosted)]
    # QSOs are rare: x10 in the draw raises their share by close to x10
    assert 6 < frac[1] / max(frac[0], 1 / len(plain)) < 11
    rest = boosted[boosted.SPLIT != "train"]
    qso = rest.CLASS.str.startswith("QSO")
    assert np.allclose(rest.WEIGHT[qso], 0.1) and np.allclose(rest.WEIGHT[~qso], 1.0)
    # weighted, the QSO share of the test rows is back near the natural one
    natural = (rest.WEIGHT * qso).sum() / rest.WEIGHT.sum()
    assert abs(natural - frac[0]) < 0.5 * frac[0] + 0.003


def test_family_mocks_carry_their_family_and_randomisation():
    config = CONFIG.model_copy(
        update={
            "families": ["star_redrock", "gal_redrock", "qso_composite", "qso_redrock"],
            "n_objects": 1500,
            "partition_rows": 1500,
            "qso_boost": 10,
            "hybridise": True,
            "hybrid_factor": 2,
        }
    )
    table = make_partition(0, config)
    assert table.schema.names == [*MOCK.names, "FAMILY"]
    rows = table.to_pandas()
    assert set(rows.FAMILY) == {"star_redrock", "gal_redrock", "qso_composite", "qso_redrock"}
    fam_class = rows.groupby("FAMILY").CLASS.unique()
    assert set(fam_class["gal_redrock"]) == {"GALAXY"}
    assert set(fam_class["qso_composite"]) <= {"QSO_LOW", "QSO_HIGH"}
    # a hybrid keeps its base object's family: 2 hybrids per training row
    assert (rows.SPLIT == "train").sum() == 2 * (make_partition(0, config.model_copy(
        update={"hybridise": False})).to_pandas().SPLIT == "train").sum()  # fmt: skip
    # the zero-point scatter changes colours and nothing else: same objects, same r
    plain = config.model_copy(update={"hybridise": False})
    jittered = plain.model_copy(update={"zero_point_mag": 0.05})
    a, b = make_partition(0, plain).to_pandas(), make_partition(0, jittered).to_pandas()
    assert (a.CLASS == b.CLASS).all() and np.allclose(a.Z, b.Z)
    assert not np.allclose(a.FLUX_gSDSS, b.FLUX_gSDSS, rtol=1e-3, atol=0)
    with pytest.raises(ValueError, match="no family for class"):
        MocksConfig(families=["star_pickles", "gal_kcorrect"])
