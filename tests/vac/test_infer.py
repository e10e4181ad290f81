"""VAC production on a real Dask cluster: HATS and plain inputs, Zarr, resume, targets."""

from __future__ import annotations

import json

import lsdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import zarr
from astropy import units as u
from astropy.io import fits as pyfits
from astropy.table import Table

from jpasbatch.catalog.cuts import QualityCuts
from jpasbatch.catalog.ingest import ingest
from jpasbatch.catalog.random import random_catalogue
from jpasbatch.catalog.readers import write_archive_like
from jpasbatch.core.errors import JpasBatchError
from jpasbatch.vac import arrays
from jpasbatch.vac.infer import InferSpec, infer
from jpasbatch.vac.sources import partitions
from jpasbatch.vac.targets import expected_counts, qso_targets, read_vac, write_targets
from jpasbatch.vac.truth import vac_against_truth


@pytest.fixture(scope="module")
def hats_catalogue(tmp_path_factory, client, with_bad_rows):
    d = tmp_path_factory.mktemp("hats")
    write_archive_like(d / "in.parquet", with_bad_rows(random_catalogue(3000, seed=8)))
    ingest(
        [d / "in.parquet"],
        d / "cat",
        max_rows_per_partition=700,
        client=client,
        progress=False,
        cuts=QualityCuts(min_bands=0, flags=False, mask_flags=False),
    )
    return d / "cat"


@pytest.fixture(scope="module")
def vac(hats_catalogue, committee, client, tmp_path_factory):
    out = tmp_path_factory.mktemp("vac") / "vac"
    summary = infer(
        InferSpec(catalogue=hats_catalogue, model=committee, out=out), client=client, progress=False
    )
    return out, summary


def test_vac_of_a_hats_catalogue(hats_catalogue, vac):
    out, summary = vac
    cat = lsdb.open_catalog(hats_catalogue)
    got = lsdb.open_catalog(out)
    # the same HEALPix partitions as the input, so it cross-matches and joins in LSDB
    assert (
        got.get_healpix_pixels() == cat.get_healpix_pixels() and len(got.get_healpix_pixels()) > 2
    )
    rows = cat.compute()
    vac_rows = got.compute()
    rejects = pd.concat(pd.read_parquet(p) for p in sorted((out / "rejects").glob("*.parquet")))
    # row conservation, and the rejects are exactly the defective rows
    assert len(vac_rows) + len(rejects) == len(rows) == summary["rows_in"]
    # (the ingest rejected the infinite flux and the negative error already; the two rows
    # without rSDSS flux are kept for the template fit, without classifier output)
    assert summary["rejected_by_reason"] == {}
    assert (vac_rows["QUALITY"] & 4 == 4).sum() == 2 and vac_rows["P_STAR"].isna().sum() == 2
    assert set(vac_rows["OBJECT_ID"]) | set(rejects["OBJECT_ID"]) == set(rows["OBJECT_ID"])
    joined = got.join(cat, left_on="OBJECT_ID", right_on="OBJECT_ID", suffixes=("", "_cat"))
    assert len(joined.compute()) == len(vac_rows)
    # provenance: models, input checksums, the ingest's own provenance
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["models"]["classifier"] and len(prov["inputs"]) == len(partitions(hats_catalogue))
    assert prov["catalogue_provenance"]["parameters"]["max_rows_per_partition"] == 700
    assert set(vac_rows["PROVENANCE_ID"]) == {prov["id"]}


def test_zarr_arrays_are_aligned_by_row(vac):
    out, _ = vac
    for part in partitions(out):
        table = pq.read_table(part.path)
        key = part.key.replace("dataset/", "")
        stored = arrays.read_partition_arrays(out, key)
        np.testing.assert_array_equal(stored["OBJECT_ID"], table["OBJECT_ID"].to_numpy())
        assert stored["P_MEMBERS"].shape == (table.num_rows, 3, 4)
        # rows without rSDSS flux have no classifier output (NaN); the others sum to 1
        members = stored["P_MEMBERS"][np.isfinite(stored["P_MEMBERS"]).all(axis=(1, 2))]
        assert len(members) >= table.num_rows - 2
        np.testing.assert_allclose(members.sum(-1), 1, atol=1e-5)


def _partition_of(cat, ra, dec):
    """Index into ``cat.get_healpix_pixels()`` of the pixel holding each position (-1: none)."""
    from hats.pixel_math.spatial_index import compute_spatial_index

    index = compute_spatial_index(np.asarray(ra, float), np.asarray(dec, float))
    where = np.full(len(index), -1)
    for k, pix in enumerate(cat.get_healpix_pixels()):
        where[(index >> (2 * (29 - pix.order))) == pix.pixel] = k
    return where


def test_crossmatch_with_the_vac_is_complete_at_partition_edges(vac):
    """Every object of another catalogue 0.5-2.5 arcsec from a VAC row finds it in LSDB, also
    across a pixel edge (through the margin cache), as a brute-force match finds it."""
    import warnings

    from astropy.coordinates import SkyCoord, match_coordinates_sky

    from jpasbatch.catalog.margin import open_catalog

    out, _ = vac
    assert (out / "margin" / "hats.properties").exists()
    cat = open_catalog(out, columns=["OBJECT_ID", "ALPHA_J2000", "DELTA_J2000"])
    assert cat.margin is not None
    rows = cat.compute()
    ra0, dec0 = rows["ALPHA_J2000"].to_numpy(), rows["DELTA_J2000"].to_numpy()
    part0 = _partition_of(cat, ra0, dec0)
    # each VAC row seen from 8 directions at 2.5 arcsec: the points across a pixel edge
    # from their row are kept, plus one random point per row (mostly inside its pixel)
    rng = np.random.default_rng(4)
    cos = np.cos(np.radians(dec0))
    angles = np.arange(8) * np.pi / 4
    pts = []
    for a in angles:
        ra, dec = ra0 + 2.5 / 3600 * np.cos(a) / cos, dec0 + 2.5 / 3600 * np.sin(a)
        pts.append((ra, dec, _partition_of(cat, ra, dec) != part0))
    edge_ra = np.concatenate([p[0][p[2]] for p in pts])
    edge_dec = np.concatenate([p[1][p[2]] for p in pts])
    r, a = rng.uniform(0.5, 2.5, len(ra0)) / 3600, rng.uniform(0, 2 * np.pi, len(ra0))
    other = pd.DataFrame(
        {
            "ra": np.concatenate([edge_ra, ra0 + r * np.cos(a) / cos]),
            "dec": np.concatenate([edge_dec, dec0 + r * np.sin(a)]),
        }
    )
    other["OTHER_ID"] = np.arange(len(other))
    assert len(edge_ra) >= 20  # the test needs objects across edges to mean something
    left = lsdb.from_dataframe(other, ra_column="ra", dec_column="dec")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = left.crossmatch(cat, radius_arcsec=3.0, suffixes=("", "_vac")).compute()
    assert not [w for w in caught if "incomplete" in str(w.message)]
    got_pairs = set(zip(got["OTHER_ID"], got["OBJECT_ID_vac"], strict=True))

    # brute force: the nearest VAC row of every point, if within 3 arcsec
    idx, sep, _ = match_coordinates_sky(
        SkyCoord(other["ra"].to_numpy(), other["dec"].to_numpy(), unit="deg"),
        SkyCoord(ra0, dec0, unit="deg"),
    )
    near = sep.arcsec < 3.0
    want = set(zip(other["OTHER_ID"][near], rows["OBJECT_ID"].to_numpy()[idx[near]], strict=True))
    assert got_pairs == want and len(want) == len(other)

    # without the margin the pairs across edges are lost (what the margin is for)
    bare = lsdb.open_catalog(out, columns=["OBJECT_ID", "ALPHA_J2000", "DELTA_J2000"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lost = left.crossmatch(bare, radius_arcsec=3.0, suffixes=("", "_vac")).compute()
    assert len(lost) <= len(want) - len(edge_ra) // 2


def test_zarr_arrays_name_their_axes_and_classes(vac):
    out, _ = vac
    root = zarr.open_group(str(out / arrays.STORE), mode="r")
    groups = list(root.group_keys())
    assert len(groups) == len(partitions(out))
    for name in groups:
        group = root[name]
        assert set(group.array_keys()) == {"OBJECT_ID", "P_MEMBERS", "PZ_TEMPLATE"}
        for arr in group.array_values():
            dims = arr.attrs["_ARRAY_DIMENSIONS"]
            # one name per axis, the rows first; the same names in Zarr v3's own field
            assert len(dims) == arr.ndim and dims[0] == "object"
            assert tuple(arr.metadata.dimension_names) == tuple(dims)
        assert group["P_MEMBERS"].attrs["_ARRAY_DIMENSIONS"] == ["object", "member", "class"]
        # the class order of the last axis is the VAC's P_<CLASS> column order
        assert group["P_MEMBERS"].attrs["classes"] == ["STAR", "GALAXY", "QSO_LOW", "QSO_HIGH"]
        pz = group["PZ_TEMPLATE"]
        grid = root.attrs[pz.attrs["z_grid"]]
        assert pz.shape[1] == len(grid) and np.all(np.diff(grid) > 0)


def test_zarr_arrays_open_in_xarray(vac):
    xr = pytest.importorskip("xarray")
    out, _ = vac
    key = partitions(out)[0].key.replace("dataset/", "")
    ds = xr.open_zarr(out / arrays.STORE, group=arrays.group_name(key), consolidated=False)
    stored = arrays.read_partition_arrays(out, key)
    assert ds["P_MEMBERS"].dims == ("object", "member", "class")
    np.testing.assert_array_equal(ds["P_MEMBERS"].values, stored["P_MEMBERS"])
    assert ds.sizes["object"] == len(stored["OBJECT_ID"])


def test_resume_skips_finished_partitions_and_gives_the_same_vac(
    hats_catalogue, committee, client, vac, tmp_path
):
    out, _ = vac
    copy = tmp_path / "vac"
    import shutil

    shutil.copytree(out, copy)
    files = sorted((copy / "dataset").rglob("Npix=*.parquet"))
    # an interrupted run: two partitions never finished (their VAC files are missing)
    for f in files[:2]:
        f.unlink()
    (copy / "vac_summary.json").unlink()
    spec = InferSpec(catalogue=hats_catalogue, model=committee, out=copy, resume=True)
    summary = infer(spec, client=client, progress=False)
    assert summary["partitions_resumed"] == len(files) - 2
    for a, b in zip(files, sorted((out / "dataset").rglob("Npix=*.parquet")), strict=True):
        assert pq.read_table(a).equals(pq.read_table(b))
    # resuming with another model would mix two runs in one VAC: refused
    from jpasbatch.classify.load import load_model

    clf = load_model(committee)
    clf.temperature = 2.0  # a different model, as valid as the first
    other = clf.save(tmp_path / "other" / "model.json")
    (copy / "dataset" / "Norder=0").mkdir(exist_ok=True)
    spec = InferSpec(catalogue=hats_catalogue, model=other, out=copy, resume=True)
    with pytest.raises(JpasBatchError, match="another run"):
        infer(spec, client=client, progress=False)


def test_plain_and_photometry_parquet(catalogue_file, committee, client, tmp_path):
    spec = InferSpec(
        catalogue=catalogue_file, model=committee, out=tmp_path / "plain", rows_per_partition=1000
    )
    summary = infer(spec, client=client, progress=False)
    assert summary["partitions"] == 4 and summary["rows_vac"] + summary["rows_rejected"] == 4000
    rejects = pd.read_parquet(tmp_path / "plain" / "rejects")
    assert sorted(rejects["SOURCE_ROW"]) == [3, 7]  # rows of the input file
    # other partitions would leave the finished ones meaning other rows: no resume
    other = spec.model_copy(update={"resume": True, "rows_per_partition": 700})
    with pytest.raises(JpasBatchError, match="another rows_per_partition"):
        infer(other, client=client, progress=False)
    # a `jpasbatch photometry` file: ID, FLUX_<band>, no errors
    table = pq.read_table(catalogue_file).slice(0, 300).to_pandas()
    phot = table[[c for c in table if c.startswith("FLUX_") and "RELERR" not in c]]
    phot.insert(0, "ID", np.arange(300))
    phot.to_parquet(tmp_path / "phot.parquet")
    summary = infer(
        InferSpec(catalogue=tmp_path / "phot.parquet", model=committee, out=tmp_path / "phot"),
        client=client,
        progress=False,
    )
    vac = read_vac(tmp_path / "phot")
    assert summary["rows_in"] == 300 and set(vac["OBJECT_ID"]) <= set(range(300))
    assert vac["ALPHA_J2000"].isna().all()


def test_targets_and_counts_against_a_loop(vac, tmp_path):
    out, _ = vac
    frame = read_vac(out)
    targets = qso_targets(frame, threshold=0.3, mag_limit=22.0)
    expected = [
        (-(r.P_QSO_LOW + r.P_QSO_HIGH), r.OBJECT_ID)
        for r in frame.itertuples()
        if r.P_QSO_LOW + r.P_QSO_HIGH >= 0.3 and r.MAG_R <= 22.0
    ]
    assert list(targets["OBJECT_ID"]) == [i for _, i in sorted(expected)]
    counts = expected_counts(frame, np.array([15.0, 18.0, 25.0]), threshold=0.3)
    mid = frame[(frame.MAG_R >= 18) & (frame.MAG_R < 25)]
    assert counts.loc[1, "N"] == len(mid)
    assert counts.loc[1, "N_GALAXY_EXPECTED"] == pytest.approx(mid.P_GALAXY.sum(), rel=1e-5)
    paths = write_targets(out, tmp_path / "t", threshold=0.3, mag_limit=22.0)
    fits = Table.read(paths["qso_targets"])
    assert list(fits["OBJECT_ID"]) == list(targets["OBJECT_ID"])
    assert fits.meta["PQSO_MIN"] == 0.3
    assert len(pd.read_csv(paths["expected_counts_csv"])) == 16


def test_units_readable_by_astropy(hats_catalogue, vac, tmp_path):
    """Table.read shows the units of the VAC, of the ingested catalogue and of the targets."""
    out, summary = vac
    f_lambda = u.erg / u.s / u.cm**2 / u.AA
    # the ingested catalogue: a HATS pixel file as hats-import wrote it
    pixel = next((hats_catalogue / "dataset").rglob("Npix=*.parquet"))
    cat = Table.read(pixel)
    assert cat["FLUX_J0378"].unit == f_lambda and cat["ALPHA_J2000"].unit == u.deg
    assert cat["FLUX_RELERR_J0378"].unit is None and "_healpix_29" in cat.colnames
    assert cat["DELTA_J2000"].description == "declination (J2000)"
    # the VAC's rows: every file reads, also those with null strings (no classifier output)
    tables = [Table.read(f) for f in sorted((out / "dataset").rglob("Npix=*.parquet"))]
    assert sum(len(t) for t in tables) == summary["rows_vac"]
    rows = tables[0]
    want = {"ALPHA_J2000": u.deg, "DELTA_J2000": u.deg, "MAG_R": u.mag, "ENTROPY": u.bit}
    assert {c: rows[c].unit for c in rows.colnames if rows[c].unit is not None} == want
    # the Arrow field metadata stays (other readers use it)
    assert pq.read_schema(pixel).field("FLUX_J0378").metadata[b"unit"] == b"erg s-1 cm-2 Angstrom-1"
    # the targets FITS: TUNITn in the header, read back as units
    paths = write_targets(out, tmp_path / "t", threshold=0.0, mag_limit=30.0)
    header = pyfits.getheader(paths["qso_targets"], 1)
    units = {header[f"TTYPE{i}"]: header.get(f"TUNIT{i}") for i in range(1, header["TFIELDS"] + 1)}
    assert units["ALPHA_J2000"] == "deg" and units["MAG_R"] == "mag"
    assert units["OBJECT_ID"] is None
    assert Table.read(paths["expected_counts"])["MAG_R_LO"].unit == u.mag


def test_vac_against_truth(vac, tmp_path):
    out, _ = vac
    frame = read_vac(out, ["OBJECT_ID", "P_STAR", "P_GALAXY", "P_QSO_LOW", "P_QSO_HIGH"])
    rng = np.random.default_rng(0)
    truth = pd.DataFrame(
        {
            "OBJECT_ID": frame["OBJECT_ID"],
            "CLASS": rng.choice(["STAR", "GALAXY", "QSO_LOW", "QSO_HIGH"], len(frame)),
            "MAG_R": rng.uniform(17, 24, len(frame)),
        }
    )
    truth.to_parquet(tmp_path / "truth.parquet")
    rep = vac_against_truth(out, tmp_path / "truth.parquet", tmp_path / "rep", r_max=23.6)
    assert rep["report"].exists()
    # cut and bins on the VAC's observed r, as the job report's expected counts
    observed = read_vac(out, ["MAG_R"])["MAG_R"]
    kept = observed <= 23.6
    assert 0 < kept.sum() and rep["table"].iloc[-1]["n"] == kept.sum()
    page = rep["report"].read_text()
    assert "Metrics in observed r bins" in page and "true r" not in page


def test_a_lost_vac_row_is_the_one_row_conservation_error(hats_catalogue, vac, tmp_path):
    import shutil

    from jpasbatch.catalog import ingest as ingest_module
    from jpasbatch.core.errors import RowConservationError
    from jpasbatch.vac.infer import _conserved, partitions

    out, summary = vac
    parts = partitions(hats_catalogue, 200_000)
    assert _conserved(out, parts)["rows_vac"] == summary["rows_vac"]
    broken = tmp_path / "vac"
    shutil.copytree(out, broken)
    path = broken / "dataset" / f"{parts[0].key}.parquet"
    table = pq.read_table(path)
    pq.write_table(table.slice(1), path)  # one row lost
    with pytest.raises(RowConservationError, match="rows in"):
        _conserved(broken, parts)
    # ingest raises the same class: one except catches a loss in either stage
    assert ingest_module.RowConservationError is RowConservationError
