"""Tests of the spectral template loaders."""

from __future__ import annotations

import re
import types
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from jpasbatch.core.errors import InputError
from jpasbatch.physics import templates
from jpasbatch.physics.templates import (
    ARCHETYPE_KINDS,
    REDROCK_KINDS,
    TemplateLibrary,
    basel_stars,
    bundled_demo_set,
    kcorrect_galaxies,
    parse_pickles_name,
    pickles,
    redrock_archetypes,
    redrock_basis,
    redrock_qso,
)

DATA = Path(str(resources.files("jpasbatch").joinpath("data", "templates")))


def _redrock_file(kind: str) -> Path:
    (path,) = DATA.joinpath("redrock").glob(f"rrtemplate-{kind}*.fits")
    return path


def _check_library(lib: TemplateLibrary, n: int | None = None) -> None:
    assert lib.wavelength.ndim == 1
    assert np.all(np.diff(lib.wavelength) > 0)
    assert lib.flux.shape == (len(lib.labels), lib.wavelength.size)
    if n is not None:
        assert len(lib) == n


@pytest.mark.parametrize("kind", REDROCK_KINDS)
def test_redrock_basis_matches_file(kind):
    wave, basis, extra = redrock_basis(kind)
    with fits.open(_redrock_file(kind)) as hdul:
        hdr = hdul[0].header
        raw = np.array(hdul[0].data, dtype=float)
        extra_names = {h.name for h in hdul[1:]}
    assert hdr.get("CRPIX1", 1) == 1
    n = raw.shape[1]
    first, last = hdr["CRVAL1"], hdr["CRVAL1"] + (n - 1) * hdr["CDELT1"]
    if hdr.get("LOGLAM", False):
        first, last = 10**first, 10**last
        # a log grid: constant ratio between pixels
        np.testing.assert_allclose(np.diff(np.log10(wave)), hdr["CDELT1"], rtol=1e-6)
    else:
        np.testing.assert_allclose(np.diff(wave), hdr["CDELT1"], rtol=1e-6)
    assert wave[0] == pytest.approx(first, rel=1e-12)
    assert wave[-1] == pytest.approx(last, rel=1e-12)
    assert basis.shape == raw.shape
    np.testing.assert_array_equal(basis, raw)
    assert np.all(np.isfinite(basis))
    assert np.all(np.diff(wave) > 0)
    assert set(extra) == extra_names & {"ARCHETYPE_COEFF", "REDSHIFTS"}
    assert not basis.flags.writeable  # cached: must not be modifiable


def test_redrock_log_grid_values():
    # PROVENANCE.md: QSO-LOZ covers 1329-9634 A, QSO-HIZ 444-4499 A rest frame.
    wave, _, _ = redrock_basis("QSO-LOZ")
    assert wave[0] == pytest.approx(10**3.1236)
    assert wave[-1] == pytest.approx(10 ** (3.1236 + 8602e-4))
    assert (round(wave[0]), round(wave[-1])) == (1329, 9634)
    wave, _, _ = redrock_basis("QSO-HIZ")
    assert (round(wave[0]), round(wave[-1])) == (444, 4499)


@pytest.mark.parametrize("kind, row", [("galaxy-2016", 17), ("STAR-K", 3), ("STAR-WD", 19999)])
def test_archetype_reconstruction_by_hand(kind, row):
    with fits.open(_redrock_file(kind)) as hdul:
        basis = np.array(hdul[0].data, dtype=float)
        coeff = np.array(hdul["ARCHETYPE_COEFF"].data[row], dtype=float)
    expected = coeff @ basis
    lib = redrock_archetypes(kind, [row])
    _check_library(lib, 1)
    np.testing.assert_allclose(lib.flux[0], expected, rtol=1e-12, atol=0)
    assert lib.labels["index"].tolist() == [row]
    assert lib.labels["objtype"].iloc[0] == ("GALAXY" if kind == "galaxy-2016" else "STAR")


def test_archetypes_all_rows_and_rebin():
    full = redrock_archetypes("galaxy-2016")
    _check_library(full, 750)
    assert np.all(np.isfinite(full.flux))
    binned = redrock_archetypes("galaxy-2016", [0, 5], rebin=20)
    n = full.wavelength.size // 20
    manual = full.flux[[0, 5], : n * 20].reshape(2, n, 20).mean(axis=2)
    np.testing.assert_allclose(binned.flux, manual, rtol=1e-10)
    assert binned.wavelength[0] == pytest.approx(full.wavelength[:20].mean())


def test_archetype_kinds_and_errors():
    assert set(ARCHETYPE_KINDS) == {f"STAR-{s}" for s in "ABFGKM"} | {"STAR-WD", "galaxy-2016"}
    with pytest.raises(ValueError):
        redrock_archetypes("QSO-LOZ")
    with pytest.raises(ValueError):
        redrock_archetypes("STAR-G", [955])
    with pytest.raises(ValueError):
        redrock_basis("STAR-X")


def test_redrock_qso():
    coeffs = np.array([[1.0, 0.0, 0.0, 0.0], [0.5, -0.2, 0.1, 0.05]])
    lib = redrock_qso("QSO-None", coeffs)
    _check_library(lib, 2)
    with fits.open(_redrock_file("QSO-None")) as hdul:
        basis = np.array(hdul[0].data, dtype=float)
    np.testing.assert_allclose(lib.flux, coeffs @ basis, rtol=1e-12)
    assert lib.labels["coeff_1"].tolist() == [0.0, -0.2]
    with pytest.raises(InputError):
        redrock_qso("QSO-LOZ", np.ones((2, 3)))


def test_pickles_library():
    lib = pickles()
    _check_library(lib, 131)
    on_disk = {p.stem for p in DATA.joinpath("pickles").glob("*.fits")}
    assert set(lib.labels["name"]) == on_disk
    assert lib.labels["name"].is_unique
    assert lib.wavelength[0] == 1150.0 and lib.wavelength[-1] == 25000.0
    assert np.all(np.isfinite(lib.flux))
    i = lib.labels.index[lib.labels["name"] == "g2v"][0]
    with fits.open(DATA / "pickles" / "g2v.fits") as hdul:
        np.testing.assert_array_equal(lib.flux[i], np.array(hdul[1].data["FLUX"], dtype=float))
    # normalised to 1 near 5556 A
    assert np.interp(5556.0, lib.wavelength, lib.flux[i]) == pytest.approx(1.0, abs=0.05)
    assert (lib.labels["metallicity"] != "solar").sum() == 23
    sub = lib.subset([i, 0])
    assert sub.labels["name"].tolist() == ["g2v", "o5v"]
    np.testing.assert_array_equal(sub.flux[0], lib.flux[i])


def test_pickles_cache_not_poisoned():
    lib = pickles()
    lib.labels.loc[0, "sptype"] = "X"
    with pytest.raises(ValueError):
        lib.flux[0, 0] = 5.0
    assert pickles().labels.loc[0, "sptype"] == "O"


@pytest.mark.parametrize(
    "name, sptype, subclass, lumclass, metallicity",
    [
        ("g2v", "G", 2.0, "V", "solar"),
        ("rk0v", "K", 0.0, "V", "rich"),
        ("wg5iii", "G", 5.0, "III", "weak"),
        ("b12iii", "B", 1.5, "III", "solar"),
        ("m10iii", "M", 10.0, "III", "solar"),
        ("m2.5v", "M", 2.5, "V", "solar"),
        ("a47iv", "A", 5.5, "IV", "solar"),
        ("k01ii", "K", 0.5, "II", "solar"),
    ],
)
def test_parse_pickles_name(name, sptype, subclass, lumclass, metallicity):
    lab = parse_pickles_name(name)
    assert (lab["sptype"], lab["subclass"], lab["lumclass"], lab["metallicity"]) == (
        sptype,
        subclass,
        lumclass,
        metallicity,
    )


@pytest.mark.parametrize("name", ["g2", "x2v", "g2vi", "rg", "g2viii"])
def test_parse_pickles_name_rejects(name):
    with pytest.raises(ValueError):
        parse_pickles_name(name)


def test_kcorrect_galaxies():
    lib = kcorrect_galaxies()
    _check_library(lib, 5)
    assert 550 < lib.wavelength[0] < 700 and 3e6 < lib.wavelength[-1] < 3.3e6
    assert np.all(np.isfinite(lib.flux)) and np.all(lib.flux >= 0)
    assert {"intsfh", "mremain", "mets", "m300", "m1000"} <= set(lib.labels.columns)
    # Units: erg/s/cm2/A at 10 pc per solar mass formed. The Sun at 10 pc gives
    # 4.4e-11 at 5500 A; an old population (no mass formed in the last Gyr)
    # emits ~0.1-0.5 Lsun per Msun formed.
    old = int(np.argmin(lib.labels["m1000"]))
    f5500 = np.interp(5500.0, lib.wavelength, lib.flux[old])
    assert 2e-12 < f5500 < 1e-10
    lrg = kcorrect_galaxies("lrg1")
    _check_library(lrg, 1)
    with pytest.raises(ValueError):
        kcorrect_galaxies("nope")


def test_basel_stars_units():
    lib = basel_stars()
    _check_library(lib, 2)
    assert lib.labels["name"].tolist() == ["sun", "vega"]
    assert lib.wavelength[0] == pytest.approx(91.0) and lib.wavelength[-1] == pytest.approx(1.6e6)
    sigma = 5.670374e-5  # erg/s/cm2/K^4
    for flux, teff in zip(lib.flux, lib.labels["teff"], strict=True):
        # surface flux: the integral is sigma Teff^4
        assert np.trapezoid(flux, lib.wavelength) == pytest.approx(sigma * teff**4, rel=0.01)
    assert lib.labels["teff"].tolist() == [5777.0, 9400.0]


def test_bundled_demo_set():
    demo = bundled_demo_set()
    _check_library(demo, 20)
    assert demo.labels["id"].is_unique
    assert demo.labels["objtype"].value_counts().to_dict() == {"STAR": 9, "GALAXY": 8, "QSO": 3}
    for row, flux in zip(demo.labels.itertuples(), demo.flux, strict=True):
        inside = (demo.wavelength >= row.wave_min) & (demo.wavelength <= row.wave_max)
        assert np.all(np.isfinite(flux[inside])) and np.all(np.isnan(flux[~inside]))
        assert row.wave_min < 3200 and row.wave_max > 4400  # all cover the blue J-PAS bands
    stars = pickles()
    i = int(np.flatnonzero(stars.labels["name"] == "g2v")[0])
    j = int(np.flatnonzero(demo.labels["id"] == "star-pickles-g2v")[0])
    on = np.isin(demo.wavelength, stars.wavelength)
    np.testing.assert_array_equal(demo.flux[j, on], stars.flux[i])
    # QSOs are normalised to 1 at 1425-1475 A.
    qso = demo.flux[demo.labels["objtype"] == "QSO"]
    win = (demo.wavelength >= 1425) & (demo.wavelength <= 1475)
    np.testing.assert_allclose(qso[:, win].mean(axis=1), 1.0)


def test_missing_package_file_is_named():
    with pytest.raises(InputError, match=r"nope\.fits"):
        templates._data_file("templates", "redrock", "nope.fits")


def test_malformed_redrock_file_is_named(tmp_path, monkeypatch):
    folder = tmp_path / "data" / "templates" / "redrock"
    folder.mkdir(parents=True)
    (folder / "rrtemplate-STAR-CV-v0.1.fits").write_bytes(b"not a FITS file" * 300)
    monkeypatch.setattr(templates, "resources", types.SimpleNamespace(files=lambda _: tmp_path))
    templates._read_redrock.cache_clear()
    try:
        with pytest.raises(InputError, match=re.escape("rrtemplate-STAR-CV-v0.1.fits")):
            redrock_basis("STAR-CV")
    finally:
        monkeypatch.undo()
        templates._read_redrock.cache_clear()
