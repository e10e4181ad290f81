"""The command line, run in-process through ``main`` and once as the installed script."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from astropy.io import fits

from jpasbatch.cli import main
from jpasbatch.physics.photometry import SyntheticPhotometry


def write_sdss(path, loglam, flux, and_mask):
    """A minimal SDSS spec-lite file (flux in 1e-17 erg/s/cm2/A)."""
    primary = fits.PrimaryHDU()
    primary.header.update(PLATEID=266, MJD=51602, FIBERID=7)
    coadd = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="flux", array=flux.astype(np.float32), format="E"),
            fits.Column(name="loglam", array=loglam.astype(np.float32), format="E"),
            fits.Column(name="ivar", array=np.full(loglam.size, 1.0, np.float32), format="E"),
            fits.Column(name="and_mask", array=and_mask.astype(np.int32), format="J"),
        ],
        name="COADD",
    )
    fits.HDUList([primary, coadd]).writeto(path)
    return path


def test_filters_table_csv_and_plot(tmp_path, capsys):
    assert (
        main(
            [
                "filters",
                "--bands",
                "T1,rSDSS",
                "--csv",
                str(tmp_path / "f.csv"),
                "--plot",
                str(tmp_path / "f.png"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "J0410" in out and "rSDSS" in out
    table = pd.read_csv(tmp_path / "f.csv")
    assert len(table) == 14 and set(table["tray"].dropna()) == {"T1"}
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_band_is_one_line_error(capsys):
    assert main(["filters", "--bands", "J0999"]) == 2
    err = capsys.readouterr().err
    assert "no band 'J0999'" in err and "Traceback" not in err


def test_photometry_of_sdss_and_table_spectra(tmp_path):
    loglam = np.arange(np.log10(3550.0), np.log10(10400.0), 1e-4)
    wave = 10 ** loglam.astype(np.float32).astype(float)
    flux17 = 5.0 + 2.0 * np.sin(wave / 700.0)
    mask = np.zeros(wave.size, int)
    j0500 = (wave > 4900) & (wave < 5100)
    mask[j0500] = 1  # the whole J0500 band is bad
    sdss = write_sdss(tmp_path / "spec-0266-51602-0007.fits", loglam, flux17, mask)
    table_file = tmp_path / "model.csv"
    pd.DataFrame({"wavelength": wave, "flux": flux17 * 1e-17}).to_csv(table_file, index=False)

    out = tmp_path / "phot.parquet"
    assert main(["photometry", str(sdss), str(table_file), "--out", str(out)]) == 0
    t = pq.read_table(out).to_pandas()
    assert list(t["ID"]) == ["0266-51602-0007", "model"]
    # the same numbers as the kernel on the same arrays (float32 round trip in FITS)
    ref = SyntheticPhotometry()(wave, (flux17 * 1e-17)[None])
    assert np.allclose(
        t.loc[1, [f"MAG_{b}" for b in ref.bands]].astype(float),
        ref.mag[0],
        atol=1e-9,
        equal_nan=True,
    )
    assert np.allclose(t.loc[0, "MAG_J0600"], ref.mag[0, ref.bands.index("J0600")], atol=1e-5)
    # masked band reported as not covered, the model spectrum covers it
    assert not t.loc[0, "COVERED_J0500"] and np.isnan(t.loc[0, "MAG_J0500"])
    assert t.loc[1, "COVERED_J0500"]
    # uJAVA starts at 3186 A, below these spectra
    assert not t["COVERED_uJAVA"].any()


def test_photometry_bad_file_names_the_file(tmp_path, capsys):
    bad = tmp_path / "broken.csv"
    bad.write_text("wavelength,flux\n4000,1e-17\n3990,1e-17\n4010,1e-17\n")
    # nothing written: status 1, the file and its fault named, the rejects file says why
    assert main(["photometry", str(bad), "--out", str(tmp_path / "x.parquet")]) == 1
    err = capsys.readouterr().err
    assert "broken.csv" in err and "increasing" in err
    assert "increasing" in (tmp_path / "x.rejects.csv").read_text()
    assert not (tmp_path / "x.parquet").exists()


def test_photometry_bands_and_redshift(tmp_path):
    wave = np.arange(1000.0, 12000.0, 2.0)
    spec = tmp_path / "flat.csv"
    pd.DataFrame({"wavelength": wave, "flux": np.full(wave.size, 1e-17)}).to_csv(spec, index=False)
    out = tmp_path / "p.parquet"
    assert (
        main(["photometry", str(spec), "--out", str(out), "--bands", "T2", "--redshift", "0.25"])
        == 0
    )
    t = pq.read_table(out).to_pandas()
    assert [c for c in t.columns if c.startswith("FLUX_")] == [f"FLUX_{b}" for b in
        ["J0390", "J0430", "J0470", "J0510", "J0630", "J0640", "J0650", "J0660", "J0670",
         "J0680", "J0690", "J0700", "J0710", "J0720"]]  # fmt: skip
    fluxes = t[[c for c in t.columns if c.startswith("FLUX_")]].to_numpy()
    assert np.allclose(fluxes, 1e-17 / 1.25, rtol=1e-10)


def test_installed_script_help():
    # the console script installed next to this interpreter, as a user runs it
    script = Path(sys.executable).parent / "jpasbatch"
    res = subprocess.run(
        [str(script), "photometry", "--help"], capture_output=True, text=True, check=True
    )
    assert "FLUX_<BAND>" in res.stdout and "--redshift" in res.stdout


def test_ingest_bad_files_are_one_line_errors(tmp_path, capsys):
    empty = tmp_path / "tile.parquet"
    empty.write_bytes(b"")
    assert main(["ingest", str(empty), "--out", str(tmp_path / "cat")]) == 2
    err = capsys.readouterr().err
    assert "tile.parquet" in err and "empty" in err and "Traceback" not in err
    csv = tmp_path / "tile.csv"
    csv.write_text("#SELECT * FROM minijpas.FLambdaDualObj\nTILE_ID,NUMBER\n2241,1\n")
    assert main(["ingest", str(csv), "--out", str(tmp_path / "cat")]) == 2
    err = capsys.readouterr().err
    assert "tile.csv" in err and "ALPHA_J2000" in err
    assert main(["ingest", str(csv), "--out", str(tmp_path / "c"), "--min-bands", "61"]) == 2
    assert "min_bands" in capsys.readouterr().err


def test_ingest_never_deletes_a_foreign_folder(tmp_path, capsys):
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("...")
    cat = tmp_path / "tile.parquet"
    cat.write_bytes(b"")
    assert main(["ingest", str(cat), "--out", str(precious)]) == 2
    assert "is not an ingest output" in capsys.readouterr().err
    assert (precious / "chapter1.tex").exists()


def test_photometry_with_survey_noise_is_seeded(tmp_path):
    wave = np.arange(3000.0, 11200.0, 2.0)
    spec = tmp_path / "star.csv"
    # an AB = 20 flat-f_nu source: S/N well above the depth in every band
    flux = 3631e-23 * 10 ** (-0.4 * 20) * 2.99792458e18 / wave**2
    pd.DataFrame({"wavelength": wave, "flux": flux}).to_csv(spec, index=False)
    outs = []
    for k, seed in enumerate((1, 1, 2)):
        out = tmp_path / f"p{k}.parquet"
        assert (
            main(
                [
                    "photometry",
                    str(spec),
                    "--out",
                    str(out),
                    "--noise",
                    "depth",
                    "--seed",
                    str(seed),
                ]
            )
            == 0
        )
        outs.append(pq.read_table(out).to_pandas())
    assert outs[0].equals(outs[1]) and not outs[0].equals(outs[2])
    t = outs[0]
    snr = 1 / t[[c for c in t.columns if c.startswith("FLUX_RELERR_")]].to_numpy()
    assert np.all((snr > 10) & (snr < 1000))
    mags = t[[c for c in t.columns if c.startswith("MAG_")]].to_numpy()
    assert np.all(np.abs(mags - 20) < 5 / np.maximum(snr, 1))  # within 5 sigma of the truth


def test_paths_the_system_refuses_are_one_line_errors(tmp_path, capsys):
    spec = tmp_path / "spec.csv"
    spec.write_text("wavelength,flux\n4000,1e-17\n4001,1e-17\n")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    # --out under a plain file: the system refuses the folder
    assert main(["photometry", str(spec), "--out", str(blocker / "sub" / "p.parquet")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jpasbatch photometry: error:") and "Traceback" not in err
    assert str(blocker) in err
    with pytest.raises(OSError):  # --debug shows the real exception
        main(["--debug", "photometry", str(spec), "--out", str(blocker / "sub" / "p.parquet")])


def test_every_help_page_has_an_example_and_the_defaults():
    import argparse
    import shlex

    from jpasbatch.cli.app import EXAMPLES, build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(EXAMPLES) == set(sub.choices)
    for name, p in sub.choices.items():
        page = p.format_help()
        assert f"example:\n  jpasbatch {name} " in page, name
        # the example is a valid command line of this very sub-command
        args = parser.parse_args(shlex.split(EXAMPLES[name])[1:])
        assert args.command == name
        for action in p._actions:
            if not action.option_strings or action.help in (None, argparse.SUPPRESS):
                continue
            if isinstance(action, argparse._HelpAction):
                continue
            text = p._get_formatter()._get_help_string(action).lower()
            assert "default" in text or "(required)" in text, (name, action.option_strings)


@pytest.mark.parametrize(
    ("flag", "ours", "engines"), [("-q", 30, 40), ("", 20, 40), ("-v", 10, 20)]
)
def test_verbosity_flags_set_the_log_levels(flag, ours, engines, capsys):
    import logging

    assert main([*([flag] if flag else []), "filters", "--bands", "T1"]) == 0
    assert "J0410" in capsys.readouterr().out  # the result stays on stdout
    assert logging.getLogger("jpasbatch").level == ours
    # Dask / Ray start-up chatter only with -v; their errors always
    assert logging.getLogger("distributed").level == engines
    assert logging.getLogger("ray").level == engines
