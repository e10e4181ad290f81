import csv

import numpy as np
import pytest
import speclite.filters

from jpasbatch.physics import filters


def test_sixty_bands_in_archive_order(shared_data):
    # read the archive table independently of the package's reader
    with open(shared_data / "minijpas_metadata" / "minijpas.Filter.csv") as fh:
        rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    system = filters.jpas()
    assert system.names == [r["name"] for r in rows]
    assert [b.filter_id for b in system] == list(range(1, 61))
    assert [b.extinction_coeff for b in system] == pytest.approx([float(r["kx"]) for r in rows])
    assert system.names[0] == "uJAVA" and system.names[-4:] == ["uJPAS", "gSDSS", "rSDSS", "iSDSS"]


def test_curves_match_the_independent_cefca_copy(shared_data):
    # the CEFCA 2017 files are a second, independently published copy of the curves
    # (iSDSS excluded: that copy is a coarse reconstruction, see PROVENANCE.md)
    cefca = {"uJAVA": "J0348"}
    for band in filters.jpas()[:-1]:
        data = np.loadtxt(
            shared_data
            / "jpas_filters"
            / "cefca_20170316"
            / f"JPAS_{cefca.get(band.name, band.name)}.tab"
        )
        lam, ref = data[:, 0], data[:, 1]
        lo, hi = band.support
        inside = (lam >= lo) & (lam <= hi)
        ours = np.interp(lam[inside], band.wavelength, band.response)
        assert np.max(np.abs(ours - ref[inside])) < 1e-4, band.name
        # the SVO copy leaves out only faint far tails of the CEFCA curves; J0910's
        # CEFCA curve has a ~5e-4 red plateau out to 11000 A worth ~1% of its area
        tail = np.trapezoid(np.where(inside, 0, ref), lam) / np.trapezoid(ref, lam)
        assert tail < (0.012 if band.name == "J0910" else 2e-3), band.name


def test_kinds_and_trays():
    system = filters.jpas()
    assert len(system.select(kind="narrow")) == 54
    assert system.select(kind="medium").names == ["uJAVA", "J1007"]
    assert system.select(kind="broad").names == ["uJPAS", "gSDSS", "rSDSS", "iSDSS"]
    assert len(system.select(tray="T1")) == 13 and len(system.select(tray="T2")) == 14
    assert set(system.select(tray=["T1", "T2"]).names) == set(
        filters.TRAYS["T1"] + filters.TRAYS["T2"]
    )
    # every narrow band has a ~145 A width and a pivot near its archive wavelength
    for band in system.select(kind="narrow"):
        assert 130 < band.fwhm < 170
        assert abs(band.pivot_wavelength - band.central_wavelength) < 25, band.name


def test_curves_are_closed_and_increasing():
    for band in filters.jpas() + filters.extra_bands():
        assert band.response[0] == 0 and band.response[-1] == 0, band.name
        assert np.all(np.diff(band.wavelength) > 0), band.name
        lo, hi = band.support
        assert band.wavelength[0] < lo < hi < band.wavelength[-1]


def test_select_by_name_and_errors():
    system = filters.jpas()
    assert system.select(["rSDSS", "J0378"]).names == ["J0378", "rSDSS"]  # system order
    assert system["J0660"].central_wavelength == 6607
    with pytest.raises(KeyError, match="J0999"):
        system.select(["J0999"])
    with pytest.raises(KeyError, match="no band"):
        system["nope"]
    with pytest.raises(ValueError, match="kind"):
        system.select(kind="ultra")


def test_get_system_specs():
    assert len(filters.get_system()) == 60
    assert len(filters.get_system("all")) == 60 + len(filters.EXTRA_BANDS)
    assert filters.get_system("T1,rSDSS,WISE_W1").names[-2:] == ["rSDSS", "WISE_W1"]
    assert len(filters.get_system("narrow")) == 54


def test_extra_bands_are_speclites_curves():
    extra = filters.extra_bands()
    for name, sl_name in filters.EXTRA_BANDS.items():
        ref = speclite.filters.load_filter(sl_name)
        assert np.allclose(extra[name].wavelength, ref.wavelength)
        assert np.allclose(extra[name].response, ref.response)
    assert extra["WISE_W1"].pivot_wavelength == pytest.approx(33682, rel=0.01)


def test_table_and_speclite_export():
    table = filters.jpas().table()
    assert len(table) == 60 and table["kind"].value_counts()["narrow"] == 54
    seq = filters.jpas().to_speclite()
    assert seq.names[0] == "jpasbatch-uJAVA"
    assert seq[5].effective_wavelength.value == pytest.approx(
        filters.jpas()[5].central_wavelength, abs=30
    )
