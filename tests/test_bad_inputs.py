"""The bad-input corpus: what a new user gets wrong, across ingest, photometry, spectra,
infer and run.

Every case must end with exit status 2 and one ``jpasbatch CMD: error: ...`` line on
stderr naming the offending path, no traceback, and nothing left in ``--out``. A CSV
with one cell that is not a number is not an error: its row goes to the rejects,
named by column and row, and the other rows are kept.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io import fits

from jpasbatch.catalog.cuts import photometry_arrays
from jpasbatch.catalog.random import random_catalogue
from jpasbatch.catalog.readers import write_archive_like
from jpasbatch.catalog.schemas import BANDS
from jpasbatch.classify.classifier import Classifier
from jpasbatch.classify.features import FeatureScaler
from jpasbatch.classify.model import CommitteeMLP
from jpasbatch.cli import main

N_ROWS = 60


class _Payload:
    """Pickled, it runs ``touch <marker>`` when unpickled: what a malicious .pt does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Good and bad inputs, made once for the module."""
    d = tmp_path_factory.mktemp("inputs")
    table = random_catalogue(N_ROWS, seed=4)
    f: dict[str, Path] = {"dir": d}
    # catalogues for infer (observed layout) and ingest (archive layout)
    pq.write_table(table, d / "observed.parquet")
    f["observed"] = d / "observed.parquet"
    f["archive_csv"] = write_archive_like(d / "archive.csv", table, layout="per_band", fmt="csv")
    drop = [f"FLUX_{b}" for b in BANDS[50:]] + [f"FLUX_RELERR_{b}" for b in BANDS[50:]]
    pq.write_table(table.drop_columns(drop), d / "bands50.parquet")
    f["bands50"] = d / "bands50.parquet"
    pq.write_table(table.drop_columns(["OBJECT_ID"]), d / "no_id.parquet")
    f["no_id"] = d / "no_id.parquet"
    # the archive layout with 50-element flux arrays
    archive = write_archive_like(d / "archive.parquet", table, layout="array", fmt="parquet")
    arch = pq.read_table(archive)
    for name in ("FLUX_APER_COR_3_0", "FLUX_RELERR_APER_COR_3_0"):
        values = np.stack(arch[name].to_numpy(zero_copy_only=False))[:, :50].ravel()
        col = pa.FixedSizeListArray.from_arrays(pa.array(values), 50)
        arch = arch.set_column(arch.schema.get_field_index(name), name, col)
    pq.write_table(arch, d / "archive50.parquet")
    f["archive50"] = d / "archive50.parquet"
    # a CSV without DELTA_J2000, a ragged CSV, an empty file, a FITS image, noise
    lines = f["archive_csv"].read_text().splitlines()
    header = lines[1].split(",")
    k = header.index('"DELTA_J2000"')
    cut = [",".join(c for i, c in enumerate(line.split(",")) if i != k) for line in lines[1:]]
    (d / "no_dec.csv").write_text("\n".join([lines[0], *cut]) + "\n")
    f["no_dec"] = d / "no_dec.csv"
    ragged = lines.copy()
    ragged[2 + 9] = ragged[2 + 9].rsplit(",", 1)[0]
    (d / "ragged.csv").write_text("\n".join(ragged) + "\n")
    f["ragged"] = d / "ragged.csv"
    # one flux cell that is not a number: row 17, FLUX_APER_COR_3_0_J0600
    bad = lines.copy()
    cells = bad[2 + 17].split(",")
    cells[header.index('"FLUX_APER_COR_3_0_J0600"')] = "n/a"
    bad[2 + 17] = ",".join(cells)
    (d / "bad_cell.csv").write_text("\n".join(bad) + "\n")
    f["bad_cell"] = d / "bad_cell.csv"
    (d / "empty.csv").write_bytes(b"")
    f["empty"] = d / "empty.csv"
    fits.PrimaryHDU(np.zeros((4, 4), np.float32)).writeto(d / "image.fits")
    f["image_fits"] = d / "image.fits"
    (d / "noise.parquet").write_bytes(np.random.default_rng(0).bytes(4096))
    f["noise"] = d / "noise.parquet"
    (d / "plain").write_text("a plain file, not a folder\n")
    f["plain"] = d / "plain"
    (d / "columns.yaml").write_text("flux: F\nfluxes_typo: G\n")
    f["bad_columns"] = d / "columns.yaml"
    # a classifier, a damaged copy, and a folder with a pickle where the model should be
    scaler = FeatureScaler.fit(photometry_arrays(table)[0].astype(float))
    clf = Classifier(CommitteeMLP(scaler.n_features, members=2, hidden=8, layers=1), scaler)
    f["model"] = clf.save(d / "model" / "model.json").parent
    f["corrupt_model"] = clf.save(d / "corrupt" / "model.json").parent
    weights = f["corrupt_model"] / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    f["marker"] = d / "pwned"
    (d / "pickled").mkdir()
    with open(d / "pickled" / "model.pt", "wb") as fh:
        pickle.dump(_Payload(f["marker"]), fh)
    f["pickled"] = d / "pickled"
    # spectra: one good table
    wave = np.arange(3500.0, 10000.0, 2.0)
    spec = np.column_stack([wave, np.full(wave.size, 1e-17)])
    np.savetxt(d / "spec.csv", spec, delimiter=",", header="wavelength,flux", comments="")
    f["spec"] = d / "spec.csv"
    # job specs
    (d / "bad.yaml").write_text("name: x\n  workdir: [\n")
    f["bad_yaml"] = d / "bad.yaml"
    (d / "stage.yaml").write_text(f"name: x\nworkdir: {d / 'jobwd'}\nclassify: {{}}\n")
    f["unknown_stage"] = d / "stage.yaml"
    (d / "list.yaml").write_text("- simulate\n- ingest\n")
    f["list_yaml"] = d / "list.yaml"
    (d / "key.yaml").write_text(f"name: x\nworkdir: {d / 'jobwd'}\nsimulate: {{area: 1}}\n")
    f["bad_key"] = d / "key.yaml"
    return f


@dataclass(frozen=True)
class Case:
    """One bad invocation: the arguments (``{name}`` are :func:`files` entries,
    ``{out}`` the output path) and the path the error must name."""

    id: str
    argv: list[str]
    names: str
    out: str = "out"


CASES = [
    # ingest
    Case("ingest-missing", ["ingest", "{dir}/nope.csv", "--out", "{out}"], "{dir}/nope.csv"),
    Case("ingest-folder", ["ingest", "{dir}", "--out", "{out}"], "{dir}"),
    Case("ingest-out-under-file", ["ingest", "{observed}", "--out", "{plain}/x"], "{plain}"),
    Case("ingest-empty", ["ingest", "{empty}", "--out", "{out}"], "{empty}"),
    Case("ingest-fits-image", ["ingest", "{image_fits}", "--out", "{out}"], "{image_fits}"),
    Case("ingest-noise", ["ingest", "{noise}", "--out", "{out}"], "{noise}"),
    Case("ingest-missing-column", ["ingest", "{no_dec}", "--out", "{out}"], "{no_dec}"),
    Case("ingest-50-bands", ["ingest", "{archive50}", "--out", "{out}"], "{archive50}"),
    Case("ingest-ragged", ["ingest", "{ragged}", "--out", "{out}"], "{ragged}"),
    Case(
        "ingest-second-file-bad",
        ["ingest", "{archive_csv}", "{empty}", "--out", "{out}"],
        "{empty}",
    ),
    Case(
        "ingest-bad-column-map",
        ["ingest", "{archive_csv}", "--columns", "{bad_columns}", "--out", "{out}"],
        "fluxes_typo",
    ),
    # photometry
    Case(
        "photometry-out-under-file",
        ["photometry", "{spec}", "--out", "{plain}/sub/p.parquet"],
        "{plain}",
    ),
    Case("photometry-out-folder", ["photometry", "{spec}", "--out", "{dir}"], "{dir}"),
    # spectra
    Case(
        "spectra-model-missing",
        ["spectra", "{spec}", "--model", "{dir}/nomodel", "--out", "{out}/s.parquet"],
        "{dir}/nomodel",
    ),
    Case(
        "spectra-pickled-model",
        ["spectra", "{spec}", "--model", "{pickled}", "--out", "{out}/s.parquet"],
        "{pickled}",
    ),
    Case(
        "spectra-wrong-model-kind",
        ["spectra", "{spec}", "--model", "{model}", "--out", "{out}/s.parquet"],
        "{model}",
    ),
    # infer
    Case("infer-missing", ["infer", "--catalog", "{dir}/nope", "--out", "{out}"], "{dir}/nope"),
    Case("infer-empty", ["infer", "--catalog", "{empty}", "--out", "{out}"], "{empty}"),
    Case(
        "infer-not-parquet",
        ["infer", "--catalog", "{archive_csv}", "--out", "{out}"],
        "{archive_csv}",
    ),
    Case("infer-50-bands", ["infer", "--catalog", "{bands50}", "--out", "{out}"], "{bands50}"),
    Case(
        "infer-archive-50",
        ["infer", "--catalog", "{archive50}", "--out", "{out}"],
        "{archive50}",
    ),
    Case("infer-no-id", ["infer", "--catalog", "{no_id}", "--out", "{out}"], "{no_id}"),
    Case(
        "infer-corrupt-model",
        ["infer", "--catalog", "{observed}", "--model", "{corrupt_model}", "--out", "{out}"],
        "{corrupt_model}",
    ),
    Case(
        "infer-pickled-model-folder",
        ["infer", "--catalog", "{observed}", "--model", "{pickled}", "--out", "{out}"],
        "{pickled}",
    ),
    Case(
        "infer-pickled-model-file",
        ["infer", "--catalog", "{observed}", "--model", "{pickled}/model.pt", "--out", "{out}"],
        "{pickled}/model.pt",
    ),
    Case(
        "infer-model-missing",
        ["infer", "--catalog", "{observed}", "--model", "{dir}/gone", "--out", "{out}"],
        "{dir}/gone",
    ),
    Case(
        "infer-out-under-file",
        ["infer", "--catalog", "{observed}", "--model", "{model}", "--out", "{plain}/vac"],
        "{plain}",
    ),
    # run
    Case("run-missing", ["run", "{dir}/nope.yaml"], "{dir}/nope.yaml"),
    Case("run-folder", ["run", "{dir}"], "{dir}"),
    Case("run-bad-yaml", ["run", "{bad_yaml}"], "{bad_yaml}"),
    Case("run-unknown-stage", ["run", "{unknown_stage}"], "{unknown_stage}"),
    Case("run-not-a-mapping", ["run", "{list_yaml}"], "{list_yaml}"),
    Case("run-bad-key", ["run", "{bad_key}"], "{bad_key}"),
]


def _fill(text: str, files: dict[str, Path], out: Path) -> str:
    return text.format(out=out, **{k: str(v) for k, v in files.items()})


def _snapshot(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_and_leaves_nothing(case, files, tmp_path, capsys):
    out = tmp_path / case.out
    inputs_before = _snapshot(files["dir"])
    argv = [_fill(a, files, out) for a in case.argv]
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = [x for x in captured.err.splitlines() if x.strip()]
    command = case.argv[0]
    errors = [x for x in lines if x.startswith(f"jpasbatch {command}: error: ")]
    assert len(errors) == 1 and len(lines) == 1, captured.err  # one line, nothing else
    assert _fill(case.names, files, out) in errors[0]
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    # nothing left behind: no output folder, and the inputs' folder as it was
    assert not out.exists(), _snapshot(out)
    assert _snapshot(files["dir"]) == inputs_before
    assert not files["marker"].exists(), "the pickled payload ran"


def test_debug_shows_the_traceback(files, tmp_path):
    # --debug re-raises, for a developer
    with pytest.raises(Exception, match="nope.csv"):
        main(["--debug", "ingest", str(files["dir"] / "nope.csv"), "--out", str(tmp_path / "o")])


def test_an_existing_foreign_out_is_never_emptied(files, tmp_path, capsys):
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("...")
    argv = ["infer", "--catalog", str(files["bands50"]), "--out", str(precious)]
    assert main(argv) == 2
    assert "bands50.parquet" in capsys.readouterr().err
    assert _snapshot(precious) == ["chapter1.tex"]


def test_a_failed_run_empties_but_keeps_an_out_it_did_not_create(files, client, tmp_path, capsys):
    # the error comes from inside the Dask tasks, after started.json, arrays.zarr
    # and dataset/ were made
    out = tmp_path / "vac"
    out.mkdir()  # the user made it, empty: it stays, empty
    argv = ["infer", "--catalog", str(files["observed"]), "--model", str(files["model"])]
    argv += ["--out", str(out), "--templates", "none", "--keep-columns", "NOPE"]
    argv += ["--dask-address", client.scheduler.address]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "NOPE" in err and "Traceback" not in err
    assert out.is_dir() and _snapshot(out) == []


def test_a_non_numeric_cell_is_a_reject_not_an_error(files, client, tmp_path, capsys):
    out = tmp_path / "cat"
    address = client.scheduler.address
    argv = ["ingest", str(files["bad_cell"]), "--out", str(out), "--dask-address", address]
    assert main([*argv, "--min-bands", "0", "--no-flags-cut", "--no-mask-flags-cut"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    rejects = pq.read_table(out / "rejects").to_pandas()
    bad = rejects[rejects["REASON"] == "BAD_VALUE"]
    assert bad["SOURCE_ROW"].tolist() == [17]
    assert bad["SOURCE_FILE"].tolist() == [str(files["bad_cell"])]
    assert "FLUX_APER_COR_3_0_J0600" in bad["DETAIL"].iloc[0]
    assert "'n/a'" in bad["DETAIL"].iloc[0]
    # rows are conserved: in = kept + rejected
    import lsdb

    kept = len(lsdb.open_catalog(out).compute())
    assert kept + len(rejects) == N_ROWS
    assert len(rejects) == 1  # the other rows pass (no cuts but the unreadable value)


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["infer", "--catalog", "{bands50}", "--out", "{out}"], "{bands50}"),
        (["ingest", "{dir}/nope.csv", "--out", "{out}"], "{dir}/nope.csv"),
    ],
    ids=["infer-50-bands", "ingest-missing"],
)
def test_installed_command(argv, names, files, tmp_path):
    # as a user runs it: the console script, a fresh process, its whole stderr
    out = tmp_path / "out"
    script = Path(sys.executable).parent / "jpasbatch"
    res = subprocess.run(
        [str(script), *(_fill(a, files, out) for a in argv)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"jpasbatch {argv[0]}: error: "), res.stderr
    assert _fill(names, files, out) in lines[0]
    assert not out.exists()


def test_corpus_is_large_enough():
    # the issue asks for >= 25 kinds of bad input over the five commands
    assert len(CASES) >= 25
    assert {c.argv[0] for c in CASES} == {"ingest", "photometry", "spectra", "infer", "run"}
