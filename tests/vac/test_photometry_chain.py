"""`jpasbatch photometry` output feeds `jpasbatch infer` as it is: string IDs, kept columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jpasbatch.cli import main
from jpasbatch.spectra.examples import make_examples
from jpasbatch.vac.sources import object_ids


@pytest.fixture(scope="module")
def photometry_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("chain")
    files = make_examples(d / "spectra")
    out = d / "phot.parquet"
    assert main(["photometry", *map(str, files), "--out", str(out), "--noise", "depth"]) == 0
    return out


def test_photometry_then_infer_keeps_every_id(photometry_file, committee, tmp_path):
    phot = pq.read_table(photometry_file).to_pandas()
    assert len(phot) == 7 and phot["ID"].map(type).eq(str).all()
    out = tmp_path / "vac"
    code = main(["infer", "--model", str(committee), "--catalog", str(photometry_file),
                 "--out", str(out), "--workers", "1"])  # fmt: skip
    assert code == 0
    vac = pd.concat(pd.read_parquet(f) for f in sorted((out / "dataset").glob("*.parquet")))
    rejects = pd.concat(pd.read_parquet(f) for f in sorted((out / "rejects").glob("*.parquet")))
    assert len(vac) + len(rejects) == len(phot)
    # every spectrum's ID and name in the VAC (or, with its reason, in the rejects)
    merged = vac.merge(phot[["ID", "SPECNAME", "RA"]], on="ID", suffixes=("", "_in"))
    assert len(merged) == len(vac) and (merged["SPECNAME"] == merged["SPECNAME_in"]).all()
    oid = dict(zip(object_ids(pa.array(phot["ID"]), "x").to_pylist(), phot["ID"], strict=True))
    assert set(vac["ID"]) | {oid[o] for o in rejects["OBJECT_ID"]} == set(phot["ID"])
    # coordinates from the spectra files, OBJECT_ID a stable hash of the ID
    assert np.allclose(merged["ALPHA_J2000"], merged["RA_in"], equal_nan=True)
    assert merged["ALPHA_J2000"].notna().sum() == 5  # the SDSS files say where they are
    assert vac["OBJECT_ID"].is_unique


def test_object_ids_are_stable_and_distinct():
    ids = pa.array(["3655-55240-0002", "3655-55240-0003", "lamost-like-k5v"])
    a, b = object_ids(ids, "f"), object_ids(ids, "f")
    assert a.equals(b) and len(set(a.to_pylist())) == 3
    assert all(0 <= v < 2**63 for v in a.to_pylist())
    ints = pa.array([5, 7], pa.int32())
    assert object_ids(ints, "f").to_pylist() == [5, 7]


def test_bad_keep_column_fails_once_without_traceback(photometry_file, committee, tmp_path, capsys):
    args = ["--out", str(tmp_path / "vac"), "--workers", "1", "--keep-columns", "NOPE"]
    code = main(["infer", "--model", str(committee), "--catalog", str(photometry_file), *args])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "'NOPE'" in err and "phot.parquet" in err
    assert "Traceback" not in err and "TimeoutError" not in err


def test_template_pz_round_trips_through_qp(photometry_file, tmp_path):
    import qp
    import zarr

    out = tmp_path / "vac"
    assert main(["infer", "--catalog", str(photometry_file), "--out", str(out),
                 "--workers", "1", "--templates", "coarse", "--model", "none"]) == 0  # fmt: skip
    vac = pd.read_parquet(out / "dataset")
    assert vac["CLASS"].tolist() == vac["CLASS_TEMPLATE"].tolist()  # no classifier
    assert np.allclose(vac["Z_PHOT"], vac["Z_TEMPLATE"])
    prov = __import__("json").loads((out / "provenance.json").read_text())
    assert prov["class_source"] == "template" and prov["z_phot_source"] == "template"
    root = zarr.open_group(str(out / "arrays.zarr"), mode="r")
    z = np.asarray(root.attrs["PZ_TEMPLATE_Z"])
    pz = root["part-00000"]["PZ_TEMPLATE"][...]
    assert pz.shape == (len(vac), z.size)
    assert np.allclose(np.trapezoid(pz, z, axis=1), 1, atol=1e-3)
    ens = qp.Ensemble(qp.interp, data={"xvals": z, "yvals": pz})
    ens.write_to(str(tmp_path / "pz.fits"))
    back = qp.read(str(tmp_path / "pz.fits"))
    assert back.npdf == len(vac)
    grid = np.linspace(0, 6, 601)
    assert np.allclose(back.pdf(grid), ens.pdf(grid))
    # the galaxy and QSO p(z) peak at their template redshift (the grid's resolution)
    extragalactic = (vac["CLASS_TEMPLATE"] != "STAR").to_numpy()
    peak = z[pz.argmax(axis=1)]
    step = np.max(np.diff(z))
    assert np.all(np.abs(peak - vac["Z_TEMPLATE"])[extragalactic] <= 2 * step)


def test_infer_without_model_uses_the_shipped_committee(photometry_file, tmp_path):
    import json

    from jpasbatch.core import defaults
    from jpasbatch.core.provenance import file_sha256

    out = tmp_path / "vac"
    assert main(["infer", "--catalog", str(photometry_file), "--out", str(out),
                 "--workers", "1", "--templates", "coarse"]) == 0  # fmt: skip
    vac = pd.read_parquet(out / "dataset")
    assert vac["CLASS_ANN"].notna().all()  # the classifier ran on every row
    prov = json.loads((out / "provenance.json").read_text())
    card = defaults.default_model() / "model.json"
    assert prov["models"]["classifier"] == file_sha256(card)
