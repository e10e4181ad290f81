"""Real-format spectra: SDSS masks, negative pixels, units of plain tables, per-file rejects.

Every file is generated here (:mod:`jpasbatch.spectra.examples`); magnitudes are
checked against an independent integration of the filter curves with numpy.
"""

from __future__ import annotations

import csv

import astropy.units as u
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io import fits

from jpasbatch.cli import main
from jpasbatch.core.errors import InputError
from jpasbatch.physics.filters import jpas
from jpasbatch.spectra.batch import calibration_problem, read_files
from jpasbatch.spectra.examples import BOSS_LOGLAM, write_fits_table, write_sdss
from jpasbatch.spectra.io import ReadOptions, read_spectra
from jpasbatch.spectra.masks import SPPIXMASK, sdss_bad_pixels
from jpasbatch.spectra.spectrum import Spectrum

WAVE = 10**BOSS_LOGLAM


def band_range(band: str) -> tuple[float, float]:
    b = jpas()[band]
    on = b.response > 1e-3 * b.response.max()
    return float(b.wavelength[on].min()), float(b.wavelength[on].max())


def ab_mag(wave: np.ndarray, flam: np.ndarray, band: str) -> float:
    """AB magnitude by direct integration: <f_nu> = int f_lam R lam dlam / int R c/lam dlam."""
    b = jpas()[band]
    fine = np.linspace(b.wavelength[0], b.wavelength[-1], 20001)
    r = np.interp(fine, b.wavelength, b.response)
    f = np.interp(fine, wave, flam)
    fnu = np.trapezoid(f * r * fine, fine) / np.trapezoid(r * 2.99792458e18 / fine, fine)
    return -2.5 * np.log10(fnu) - 48.6


def smooth17(wave: np.ndarray) -> np.ndarray:
    return 5.0 + 2.0 * np.sin(wave / 700.0)


def sdss(path, flux=None, ivar=None, mask=None):
    flux = smooth17(WAVE) if flux is None else flux
    ivar = np.full(WAVE.size, 25.0) if ivar is None else ivar
    mask = np.zeros(WAVE.size, int) if mask is None else mask
    return write_sdss(path, BOSS_LOGLAM, flux, ivar, mask, fiber=int(path.stem[-2:]))


def photometry(tmp_path, *files, extra=()):
    out = tmp_path / "phot.parquet"
    code = main(["photometry", *map(str, files), "--out", str(out), *extra])
    rejects = list(csv.DictReader(open(out.with_suffix(".rejects.csv"))))
    table = pq.read_table(out).to_pandas() if out.exists() else None
    return code, table, rejects


# --------------------------------------------------------------------------- masks
def test_sdss_bad_bits_and_brightsky():
    mask = np.array([0, 1 << 23, 1 << 18, (1 << 23) | (1 << 25), 1 << 16])
    assert list(sdss_bad_pixels(mask)) == [False, False, True, True, False]
    assert list(sdss_bad_pixels(mask, ["BRIGHTSKY"])) == [False, True, False, True, False]
    with pytest.raises(InputError, match="not an SDSS SPPIXMASK bit.*BRIGHTSKY"):
        ReadOptions(sdss_bad_bits=("BRIGHTSKY", "NOTABIT"))


def test_brightsky_over_a_band_keeps_it_a_bad_bit_removes_it(tmp_path):
    lo, hi = band_range("J0810")
    in_band = (WAVE > lo - 20) & (WAVE < hi + 20)
    flux = smooth17(WAVE)
    flux[in_band.nonzero()[0][5]] = -6 * 0.2  # a pixel 6 sigma below zero: data
    sky = np.where(in_band, 1 << SPPIXMASK["BRIGHTSKY"], 0)
    bad = np.where(in_band, 1 << SPPIXMASK["COMBINEREJ"], 0)
    files = [
        sdss(tmp_path / "spec-01.fits", flux, mask=sky),
        sdss(tmp_path / "spec-02.fits", mask=bad),
    ]
    code, t, rejects = photometry(tmp_path, *files)
    assert code == 0 and rejects == [] and len(t) == 2
    assert t.loc[0, "COVERED_J0810"] and np.isfinite(t.loc[0, "FLUX_J0810"])
    # the negative pixel is in the band: the measured flux is the integral with it
    ref = ab_mag(WAVE, flux * 1e-17, "J0810")
    assert t.loc[0, "MAG_J0810"] == pytest.approx(ref, abs=2e-3)
    assert not t.loc[1, "COVERED_J0810"] and np.isnan(t.loc[1, "FLUX_J0810"])
    assert t.loc[1, "COVERED_J0660"]
    # --sdss-bad-bits BRIGHTSKY makes the first file lose the band too
    _, t2, _ = photometry(tmp_path, files[0], extra=["--sdss-bad-bits", "BRIGHTSKY"])
    assert not t2.loc[0, "COVERED_J0810"]


# --------------------------------------------------------------------------- batches
def test_one_corrupt_file_in_five(tmp_path):
    files = [sdss(tmp_path / f"spec-{k:02d}.fits") for k in range(10, 14)]
    corrupt = tmp_path / "spec-14.fits"
    corrupt.write_bytes(files[0].read_bytes()[:4000])
    code, t, rejects = photometry(tmp_path, *files, corrupt)
    assert code == 0
    assert len(t) == 4 and len(rejects) == 1  # rows in = rows written + rows rejected
    assert rejects[0]["SOURCE"] == str(corrupt) and "truncated" in rejects[0]["REASON"]
    assert set(t["SPECNAME"]) == {f.name for f in files}
    assert np.allclose(t["RA"], 112.0)
    code, _, _ = photometry(tmp_path, *files, corrupt, extra=["--strict"])
    assert code == 1
    code, t, rejects = photometry(tmp_path, corrupt)
    assert code == 1 and t is None and len(rejects) == 1


def test_broken_calibration_is_a_reject_not_an_error(tmp_path):
    wave = np.linspace(4000, 8000, 500)
    good = Spectrum("a", wave, np.full(500, 1e-17), np.full(500, 1e36))
    noise = Spectrum("b", wave, np.random.default_rng(0).normal(0, 1e-18, 500), np.full(500, 1e36))
    broken = Spectrum("c", wave, np.full(500, -5e-18), np.full(500, 1e36))
    assert calibration_problem(good) is None
    assert calibration_problem(noise) is None  # a blank-sky-like spectrum is noise, kept
    assert "5.0 sigma below zero" in calibration_problem(broken)
    path = write_fits_table(
        tmp_path / "neg.fits", wave, np.full(500, -0.5), ivar=np.full(500, 100.0)
    )
    (item,) = read_files([path])
    assert item.id == "neg" and "below zero" in item.reason


# --------------------------------------------------------------------------- units
def test_tunit_scale_matches_the_same_spectrum_in_cgs(tmp_path):
    lam = np.arange(3500.0, 10000.0, 1.0)
    f17 = smooth17(lam)
    a = write_fits_table(tmp_path / "a.fits", lam, f17, flux_unit="1e-17 erg / (s cm2 Angstrom)")
    b = write_fits_table(tmp_path / "b.fits", lam, f17 * 1e-17, flux_unit="erg / (s cm2 Angstrom)")
    c = write_fits_table(tmp_path / "c.fits", lam, f17 * 1e-17, flux_unit=None)  # the default
    code, t, rejects = photometry(tmp_path, a, b, c)
    assert code == 0 and not rejects
    for band in ("J0400", "J0660", "iSDSS"):
        ref = ab_mag(lam, f17 * 1e-17, band)
        assert t[f"MAG_{band}"].to_numpy() == pytest.approx([ref] * 3, abs=2e-3)


def test_fnu_in_jansky_agrees(tmp_path):
    lam = np.arange(3500.0, 10000.0, 1.0)
    flam = smooth17(lam) * 1e-17
    jy = (flam * u.erg / u.s / u.cm**2 / u.AA).to(u.Jy, u.spectral_density(lam * u.AA)).value
    path = write_fits_table(tmp_path / "jy.fits", lam, jy * 1e6, flux_unit="uJy")
    (spec,) = read_spectra(path)
    assert spec.flux == pytest.approx(flam, rel=1e-6)
    _, t, _ = photometry(tmp_path, path)
    assert t.loc[0, "MAG_J0500"] == pytest.approx(ab_mag(lam, flam, "J0500"), abs=2e-3)


def test_negative_pixels_without_errors_are_written(tmp_path):
    lam = np.arange(3500.0, 10000.0, 1.0)
    flux = smooth17(lam) + np.random.default_rng(1).normal(0, 3, lam.size)
    assert (flux < 0).any()
    code, t, rejects = photometry(tmp_path, write_fits_table(tmp_path / "n.fits", lam, flux))
    assert code == 0 and not rejects and len(t) == 1


def test_unit_that_is_not_a_flux_density_is_refused(tmp_path, capsys):
    lam = np.arange(3500.0, 10000.0, 1.0)
    path = write_fits_table(tmp_path / "counts.fits", lam, smooth17(lam), flux_unit="ct / s")
    with pytest.raises(InputError, match="'ct / s' is not a spectral flux density") as info:
        read_spectra(path)
    assert info.value.column == "HDU1.flux" and info.value.path == str(path)
    code, _, rejects = photometry(tmp_path, path)
    assert code == 1 and "not a spectral flux density" in rejects[0]["REASON"]
    err = capsys.readouterr().err
    assert "counts.fits" in err and "Traceback" not in err


def test_units_in_parquet_metadata_and_text_comments(tmp_path):
    lam = np.arange(350.0, 1000.0, 0.5)  # nm
    flam = smooth17(lam * 10) * 1e-17
    schema = pa.schema(
        [
            pa.field("wave", pa.float64(), metadata={"unit": "nm"}),
            pa.field("flux", pa.float64(), metadata={"unit": "W / (m2 nm)"}),
        ]
    )
    # erg/s/cm2/A -> W/m2/nm: 1e-7 W * 1e4 /m2 * 10 /nm = 1e-2
    pq.write_table(
        pa.table({"wave": lam, "flux": flam * 1e-2}, schema=schema), tmp_path / "p.parquet"
    )
    text = tmp_path / "t.txt"
    rows = "".join(f"{w} {f / 1e-17}\n" for w, f in zip(lam, flam, strict=True))
    text.write_text("# wavelength_unit: nm\n# flux_unit: 1e-17 erg/(s cm2 Angstrom)\n" + rows)
    for path in (tmp_path / "p.parquet", text):
        (spec,) = read_spectra(path)
        assert spec.wavelength == pytest.approx(lam * 10)
        assert spec.flux == pytest.approx(flam, rel=1e-9)
    # --flux-unit applies only where the file states none
    plain = tmp_path / "plain.csv"
    plain.write_text("wavelength,flux\n4000,2\n4001,3\n")
    assert read_spectra(plain, ReadOptions(flux_unit="1e-17 erg/(s cm2 Angstrom)"))[0].flux == (
        pytest.approx([2e-17, 3e-17])
    )


def test_bunit_header_gives_the_flux_unit(tmp_path):
    lam = np.arange(4000.0, 5000.0, 1.0)
    hdu = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="WAVE", array=lam, format="D"),
            fits.Column(name="FLUX", array=np.ones(lam.size), format="D"),
        ]
    )
    hdu.header["BUNIT"] = "1e-17 erg/s/cm2/Angstrom"
    hdu.writeto(tmp_path / "b.fits")
    assert read_spectra(tmp_path / "b.fits")[0].flux == pytest.approx(np.full(lam.size, 1e-17))
