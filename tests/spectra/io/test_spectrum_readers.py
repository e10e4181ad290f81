"""Tests of the SDSS, DESI and plain-table spectrum readers.

Every file is generated here with astropy / pyarrow in ``tmp_path``, in the
layout the real surveys use, so the tests need no data downloads.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io import fits

from jpasbatch.core.errors import InputError
from jpasbatch.spectra.io import (
    ReadOptions,
    iter_spectra,
    read_desi,
    read_sdss,
    read_spectra,
    read_table,
)

# --------------------------------------------------------------------------- #
# File builders
# --------------------------------------------------------------------------- #

N_SDSS = 50
LOGLAM = (3.5800 + 1e-4 * np.arange(N_SDSS)).astype(np.float32)


def sdss_arrays() -> dict[str, np.ndarray]:
    """COADD columns in SDSS units (1e-17 erg/s/cm2/A)."""
    rng = np.random.default_rng(1)
    return {
        "flux": (10.0 + rng.normal(0, 1, N_SDSS)).astype(np.float32),
        "loglam": LOGLAM.copy(),
        "ivar": np.full(N_SDSS, 4.0, dtype=np.float32),
        "and_mask": np.zeros(N_SDSS, dtype=np.int32),
    }


def write_sdss(
    path: Path,
    columns: dict[str, np.ndarray] | None = None,
    *,
    header: dict | None = None,
    specobj: bool = True,
    coadd_name: str = "COADD",
) -> Path:
    """Write an SDSS spec-lite style file: primary, COADD table, SPECOBJ table."""
    columns = sdss_arrays() if columns is None else columns
    primary = fits.PrimaryHDU()
    for key, value in (
        {"PLATEID": 266, "MJD": 51602, "FIBERID": 1} if header is None else header
    ).items():
        primary.header[key] = value
    hdus = [
        primary,
        fits.BinTableHDU.from_columns(
            [fits.Column(name=n, array=a, format=_fits_format(a)) for n, a in columns.items()],
            name=coadd_name,
        ),
    ]
    if specobj:
        hdus.append(
            fits.BinTableHDU.from_columns(
                [
                    fits.Column(name="Z", array=np.array([0.1234], np.float32), format="E"),
                    fits.Column(name="CLASS", array=np.array(["GALAXY  "]), format="8A"),
                    fits.Column(
                        name="SPECOBJID", array=np.array(["299489677444933632"]), format="19A"
                    ),
                ],
                name="SPECOBJ",
            )
        )
    fits.HDUList(hdus).writeto(path)
    return path


def _fits_format(array: np.ndarray) -> str:
    return {"f": "E" if array.dtype.itemsize == 4 else "D", "i": "J"}[array.dtype.kind]


ARM_RANGES = {"B": (0, 100), "R": (80, 200), "Z": (180, 300)}
N_DESI = 3
TARGETIDS = np.array([39627000000000001, 39627000000000002, 39627000000000003], dtype=np.int64)


def desi_arrays(arms=("B", "R", "Z"), offset: dict | None = None) -> dict[str, np.ndarray]:
    """Per-arm arrays on the common DESI 0.8 A grid (1e-17 units)."""
    rng = np.random.default_rng(2)
    out = {}
    for arm in arms:
        lo, hi = ARM_RANGES[arm]
        out[f"{arm}_WAVELENGTH"] = 3600.0 + 0.8 * np.arange(lo, hi) + (offset or {}).get(arm, 0.0)
        n = hi - lo
        out[f"{arm}_FLUX"] = (5.0 + rng.normal(0, 1, (N_DESI, n))).astype(np.float32)
        out[f"{arm}_IVAR"] = rng.uniform(1.0, 4.0, (N_DESI, n)).astype(np.float32)
        out[f"{arm}_MASK"] = np.zeros((N_DESI, n), dtype=np.int32)
    return out


def write_desi(path: Path, arrays: dict[str, np.ndarray] | None = None, *, fibermap=True) -> Path:
    arrays = desi_arrays() if arrays is None else arrays
    hdus = [fits.PrimaryHDU()]
    if fibermap:
        hdus.append(
            fits.BinTableHDU.from_columns(
                [
                    fits.Column(name="TARGETID", array=TARGETIDS, format="K"),
                    fits.Column(name="TARGET_RA", array=np.array([10.0, 11.0, 12.0]), format="D"),
                ],
                name="FIBERMAP",
            )
        )
    for name, array in arrays.items():
        hdus.append(fits.ImageHDU(array, name=name))
    fits.HDUList(hdus).writeto(path)
    return path


def gzipped(path: Path) -> Path:
    out = path.with_name(path.name + ".gz")
    out.write_bytes(gzip.compress(path.read_bytes()))
    return out


def raises_input_error(path: Path, pattern: str):
    """``pytest.raises`` requiring the message to name the file and match ``pattern``."""
    return pytest.raises(InputError, match=rf"(?s){re.escape(str(path))}.*{pattern}")


# --------------------------------------------------------------------------- #
# SDSS
# --------------------------------------------------------------------------- #


def test_sdss_round_trip(tmp_path):
    cols = sdss_arrays()
    cols["and_mask"][3] = 1 << 24
    cols["ivar"][7] = 0.0
    path = write_sdss(tmp_path / "spec-0266-51602-0001.fits", cols)
    (spec,) = read_sdss(path)
    assert spec.id == "0266-51602-0001"
    np.testing.assert_allclose(spec.wavelength, 10.0 ** cols["loglam"].astype(np.float64))
    np.testing.assert_allclose(spec.flux, cols["flux"] * 1e-17, rtol=1e-6)
    np.testing.assert_allclose(spec.ivar[~spec.mask], 4.0e34, rtol=1e-6)
    assert spec.mask[3] and spec.mask[7]
    assert spec.mask.sum() == 2
    assert spec.meta["Z"] == pytest.approx(0.1234, rel=1e-6)
    assert spec.meta["CLASS"] == "GALAXY"
    assert spec.meta["source"] == str(path)
    assert np.all(np.diff(spec.wavelength) > 0)


def test_sdss_gzipped_and_dispatch(tmp_path):
    path = gzipped(write_sdss(tmp_path / "spec.fits"))
    (spec,) = read_spectra(path)
    (direct,) = read_sdss(path)
    assert spec.id == direct.id == "0266-51602-0001"
    np.testing.assert_array_equal(spec.flux, direct.flux)


def test_sdss_id_fallbacks(tmp_path):
    plate_key = write_sdss(tmp_path / "a.fits", header={"PLATE": 3586, "MJD": 55181, "FIBERID": 2})
    assert read_sdss(plate_key)[0].id == "3586-55181-0002"
    specobjid = write_sdss(tmp_path / "b.fits", header={})
    assert read_sdss(specobjid)[0].id == "299489677444933632"
    stem = write_sdss(tmp_path / "c-1-2.fits", header={}, specobj=False)
    (spec,) = read_sdss(gzipped(stem))
    assert spec.id == "c-1-2"
    assert "Z" not in spec.meta


def test_sdss_negative_pixels_of_any_significance_are_data(tmp_path):
    cols = sdss_arrays()
    cols["flux"][5] = -1.0  # sigma = 0.5, so -2 sigma
    cols["flux"][9] = -3.0  # -6 sigma: a sky residual, kept as in every survey pipeline
    (spec,) = read_sdss(write_sdss(tmp_path / "neg.fits", cols))
    assert spec.flux[5] == pytest.approx(-1e-17)
    assert spec.flux[9] == pytest.approx(-3e-17)
    assert spec.good[9]

    cols = sdss_arrays()
    cols["flux"][9] = -30.0
    cols["and_mask"][9] = 1 << 18  # FULLREJECT: whatever the value, it is not used
    assert read_sdss(write_sdss(tmp_path / "masked.fits", cols))[0].mask[9]


def test_sdss_nan_flux_unmasked_is_an_error_masked_is_not(tmp_path):
    cols = sdss_arrays()
    cols["flux"][7] = np.nan
    path = write_sdss(tmp_path / "nan.fits", cols)
    with raises_input_error(path, r"flux is nan.*pixel 7.*not masked") as info:
        read_sdss(path)
    assert info.value.row == 7

    cols["ivar"][7] = 0.0
    (spec,) = read_sdss(write_sdss(tmp_path / "nan_masked.fits", cols))
    assert spec.mask[7] and not spec.good[7]


def test_sdss_infinite_flux(tmp_path):
    cols = sdss_arrays()
    cols["flux"][11] = np.inf
    path = write_sdss(tmp_path / "inf.fits", cols)
    with raises_input_error(path, r"flux is inf.*pixel 11"):
        read_sdss(path)


def test_sdss_negative_ivar(tmp_path):
    cols = sdss_arrays()
    cols["ivar"][4] = -1.0
    path = write_sdss(tmp_path / "ivar.fits", cols)
    with raises_input_error(path, r"negative inverse variance.*pixel 4") as info:
        read_sdss(path)
    assert info.value.column == "COADD.ivar"


def test_sdss_wavelength_not_increasing(tmp_path):
    cols = sdss_arrays()
    cols["loglam"][12] = cols["loglam"][11]
    path = write_sdss(tmp_path / "order.fits", cols)
    with raises_input_error(path, r"not strictly increasing: pixel 12") as info:
        read_sdss(path)
    assert info.value.row == 12


def test_sdss_missing_hdu(tmp_path):
    path = write_sdss(tmp_path / "nocoadd.fits", coadd_name="OTHER")
    with raises_input_error(path, r"missing HDU 'COADD'"):
        read_sdss(path)


def test_sdss_missing_column(tmp_path):
    cols = sdss_arrays()
    del cols["flux"]
    path = write_sdss(tmp_path / "noflux.fits", cols)
    with raises_input_error(path, r"COADD\.flux.*missing column 'flux'"):
        read_sdss(path)


def test_sdss_zero_rows(tmp_path):
    cols = {name: array[:0] for name, array in sdss_arrays().items()}
    path = write_sdss(tmp_path / "empty.fits", cols)
    with raises_input_error(path, r"no rows"):
        read_spectra(path)


def test_sdss_not_fits(tmp_path):
    path = tmp_path / "spec.fits"
    path.write_text("wavelength,flux\n1,2\n")
    with raises_input_error(path, r"not a FITS file"):
        read_sdss(path)


# Cut inside the COADD header, inside the COADD data, and inside the last header.
@pytest.mark.parametrize("cut", [2880 + 100, 2880 * 2 + 100, 2880 * 3 + 400, -3500])
def test_truncated_fits(tmp_path, cut):
    full = write_sdss(tmp_path / "full.fits").read_bytes()
    path = tmp_path / "cut.fits"
    path.write_bytes(full[:cut])
    with raises_input_error(path, r"truncated"):
        read_spectra(path)


def test_missing_final_padding_is_tolerated(tmp_path):
    # Some writers omit the zero padding after the last HDU; no data is lost.
    full = write_sdss(tmp_path / "full.fits").read_bytes()
    path = tmp_path / "unpadded.fits"
    path.write_bytes(full[:-1000])
    assert read_sdss(path)[0].meta["CLASS"] == "GALAXY"


def test_truncated_gzip(tmp_path):
    full = gzipped(write_sdss(tmp_path / "full.fits")).read_bytes()
    path = tmp_path / "cut.fits.gz"
    path.write_bytes(full[: len(full) // 2])
    with raises_input_error(path, r"truncated"):
        read_sdss(path)


# --------------------------------------------------------------------------- #
# DESI
# --------------------------------------------------------------------------- #


def test_desi_round_trip_and_arm_merge(tmp_path):
    arrays = desi_arrays()
    arrays["B_MASK"][0, 90] = 4  # overlap pixel, B bad: R alone
    arrays["B_MASK"][1, 95] = 4  # overlap pixel, both bad: masked
    arrays["R_IVAR"][1, 15] = 0.0
    path = write_desi(tmp_path / "coadd.fits", arrays)
    spectra = read_desi(path)
    assert [s.id for s in spectra] == [str(t) for t in TARGETIDS]
    assert spectra[2].meta["RA"] == 12.0

    expected = 3600.0 + 0.8 * np.arange(300)
    for spec in spectra:
        assert np.all(np.diff(spec.wavelength) > 0)
        np.testing.assert_allclose(spec.wavelength, expected, rtol=0, atol=1e-9)

    b_flux, r_flux = arrays["B_FLUX"].astype(float), arrays["R_FLUX"].astype(float)
    b_ivar, r_ivar = arrays["B_IVAR"].astype(float), arrays["R_IVAR"].astype(float)
    s0 = spectra[0]
    # Non-overlapping regions keep the arm values (only the unit changes).
    np.testing.assert_allclose(s0.flux[:80], b_flux[0, :80] * 1e-17, rtol=1e-6)
    np.testing.assert_allclose(s0.ivar[:80], b_ivar[0, :80] * 1e34, rtol=1e-6)
    np.testing.assert_allclose(s0.flux[100:180], r_flux[0, 20:100] * 1e-17, rtol=1e-6)
    z_flux = arrays["Z_FLUX"].astype(float)
    np.testing.assert_allclose(s0.flux[200:], z_flux[0, 20:] * 1e-17, rtol=1e-6)

    # Overlap pixel 85 = B[85] = R[5]: inverse-variance weighted mean, by hand.
    fb, ib, fr, ir = b_flux[0, 85], b_ivar[0, 85], r_flux[0, 5], r_ivar[0, 5]
    assert s0.flux[85] == pytest.approx((fb * ib + fr * ir) / (ib + ir) * 1e-17, rel=1e-9)
    assert s0.ivar[85] == pytest.approx((ib + ir) * 1e34, rel=1e-9)
    assert not s0.mask[85]
    # B masked at 90: the merged pixel is R alone.
    assert s0.flux[90] == pytest.approx(r_flux[0, 10] * 1e-17, rel=1e-9)
    assert s0.ivar[90] == pytest.approx(r_ivar[0, 10] * 1e34, rel=1e-9)
    # Spectrum 1 pixel 95: B masked and R ivar == 0 -> masked, no weight.
    s1 = spectra[1]
    assert s1.mask[95] and s1.ivar[95] == 0
    assert s1.mask.sum() == 1


def test_desi_gzipped_subset_of_arms_and_dispatch(tmp_path):
    path = gzipped(write_desi(tmp_path / "coadd.fits", desi_arrays(arms=("B", "Z"))))
    spectra = read_spectra(path)
    assert len(spectra) == N_DESI
    # B and Z do not overlap: concatenated, every pixel kept.
    assert spectra[0].wavelength.size == 100 + 120
    assert np.all(np.diff(spectra[0].wavelength) > 0)


def test_desi_unaligned_arms_interleave(tmp_path):
    arrays = desi_arrays(arms=("B", "R"), offset={"R": 0.4})
    (spec, *_) = read_desi(write_desi(tmp_path / "coadd.fits", arrays))
    assert spec.wavelength.size == 100 + 120
    assert np.all(np.diff(spec.wavelength) > 0)
    np.testing.assert_allclose(
        spec.wavelength, np.sort(np.concatenate([arrays["B_WAVELENGTH"], arrays["R_WAVELENGTH"]]))
    )


def test_desi_rounding_differences_still_merge(tmp_path):
    arrays = desi_arrays(arms=("B", "R"))
    arrays["R_WAVELENGTH"] = arrays["R_WAVELENGTH"] * (1 + 1e-12)
    (spec, *_) = read_desi(write_desi(tmp_path / "coadd.fits", arrays))
    assert spec.wavelength.size == 200


def test_desi_missing_fibermap(tmp_path):
    path = write_desi(tmp_path / "nofm.fits", fibermap=False)
    with raises_input_error(path, r"missing HDU 'FIBERMAP'"):
        read_spectra(path)


def test_desi_missing_ivar_hdu(tmp_path):
    arrays = desi_arrays()
    del arrays["R_IVAR"]
    path = write_desi(tmp_path / "noivar.fits", arrays)
    with raises_input_error(path, r"missing HDU 'R_IVAR'"):
        read_desi(path)


@pytest.mark.parametrize("what", ["FLUX", "IVAR", "MASK"])
def test_desi_length_mismatch(tmp_path, what):
    arrays = desi_arrays()
    arrays[f"R_{what}"] = arrays[f"R_{what}"][:, :-3]
    path = write_desi(tmp_path / "mismatch.fits", arrays)
    with raises_input_error(
        path, rf"length mismatch: 'R_{what}' has 117 pixels.*'R_WAVELENGTH' has 120"
    ):
        read_desi(path)


def test_desi_spectrum_count_mismatch(tmp_path):
    arrays = desi_arrays()
    arrays["Z_FLUX"] = arrays["Z_FLUX"][:2]
    path = write_desi(tmp_path / "rows.fits", arrays)
    with raises_input_error(path, r"'Z_FLUX' has 2 spectra.*'FIBERMAP' has 3 rows"):
        read_desi(path)


def test_desi_negative_pixel_is_kept(tmp_path):
    arrays = desi_arrays()
    arrays["R_IVAR"][2, 40] = 4.0
    arrays["R_FLUX"][2, 40] = -10.0  # -20 sigma
    spectra = read_desi(write_desi(tmp_path / "neg.fits", arrays))
    assert np.any(np.isclose(spectra[2].flux, -10.0e-17))


def test_desi_wavelength_not_increasing(tmp_path):
    arrays = desi_arrays()
    arrays["Z_WAVELENGTH"][[30, 31]] = arrays["Z_WAVELENGTH"][[31, 30]]
    path = write_desi(tmp_path / "order.fits", arrays)
    with raises_input_error(path, r"Z_WAVELENGTH.*not strictly increasing: pixel 31"):
        read_desi(path)


# --------------------------------------------------------------------------- #
# Plain tables
# --------------------------------------------------------------------------- #

WAVE = np.array([4000.0, 4001.5, 4003.0, 4004.5, 4006.0])
FLUX = np.array([1e-16, 2e-16, 3e-16, 2.5e-16, 1.5e-16])


def check_table_spectrum(spec, stem: str, *, ivar=None):
    assert spec.id == stem
    np.testing.assert_allclose(spec.wavelength, WAVE)
    np.testing.assert_allclose(spec.flux, FLUX)
    if ivar is None:
        assert spec.ivar is None and spec.mask is None
    else:
        np.testing.assert_allclose(spec.ivar, ivar)


def test_table_csv_case_insensitive_with_error(tmp_path):
    path = tmp_path / "model_a.csv"
    lines = ["# a model", "Wave,F_Lambda,Err"]
    lines += [f"{w},{f},{f / 10}" for w, f in zip(WAVE, FLUX, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    (spec,) = read_table(path)
    check_table_spectrum(spec, "model_a", ivar=1.0 / (FLUX / 10) ** 2)
    assert not spec.mask.any()


def test_table_whitespace_ascii_headerless_and_gzipped(tmp_path):
    path = tmp_path / "model_b.dat"
    body = "\n".join(f"{w}   {f}  99" for w, f in zip(WAVE, FLUX, strict=True))
    path.write_text("# generated by hand\n\n" + body + "\n")
    check_table_spectrum(read_table(path)[0], "model_b")
    check_table_spectrum(read_spectra(gzipped(path))[0], "model_b")


def test_table_ascii_names_in_comment(tmp_path):
    path = tmp_path / "model_c.txt"
    body = "\n".join(f"{f} {w} 3.0" for w, f in zip(WAVE, FLUX, strict=True))
    path.write_text("# flux lambda ivar\n" + body + "\n")
    check_table_spectrum(read_table(path)[0], "model_c", ivar=np.full(5, 3.0))


def test_table_fits(tmp_path):
    path = tmp_path / "model_d.fits"
    table = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="LAMBDA", array=WAVE, format="D"),
            fits.Column(name="FLUX", array=FLUX, format="D"),
            fits.Column(name="IVAR", array=np.array([1.0, 0.0, 1.0, 1.0, 1.0]), format="D"),
        ]
    )
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path)
    (spec,) = read_spectra(path)
    check_table_spectrum(spec, "model_d", ivar=[1, 0, 1, 1, 1])
    np.testing.assert_array_equal(spec.mask, [False, True, False, False, False])
    assert read_table(gzipped(path))[0].id == "model_d"


def test_table_parquet(tmp_path):
    path = tmp_path / "model_e.parquet"
    pq.write_table(pa.table({"wavelength": WAVE, "flux": FLUX, "sigma": FLUX / 5}), path)
    (spec,) = read_spectra(path)
    check_table_spectrum(spec, "model_e", ivar=1.0 / (FLUX / 5) ** 2)
    assert read_table(gzipped(path))[0].id == "model_e"


def test_iter_spectra_many_files(tmp_path):
    sdss = write_sdss(tmp_path / "s.fits")
    desi = write_desi(tmp_path / "d.fits")
    table = tmp_path / "t.csv"
    table.write_text("wavelength,flux\n4000,1\n4001,2\n")
    ids = [s.id for s in iter_spectra([sdss, str(desi), table])]
    assert ids == ["0266-51602-0001", *[str(t) for t in TARGETIDS], "t"]
    assert [s.id for s in iter_spectra(str(table))] == ["t"]


def test_table_negative_flux_is_data_unless_model_spectra(tmp_path):
    path = tmp_path / "neg.csv"
    path.write_text("wavelength,flux\n4000,1e-16\n4001,-1e-20\n4002,1e-16\n")
    (spec,) = read_table(path)
    assert spec.flux[1] == -1e-20
    with raises_input_error(path, r"negative flux.*pixel 1.*must be non-negative") as info:
        read_table(path, ReadOptions(model_spectra=True))
    assert info.value.row == 1 and info.value.column == "flux"


def test_table_nan_flux(tmp_path):
    path = tmp_path / "nan.csv"
    path.write_text("wavelength,flux\n4000,1e-16\n4001,1e-16\n4002,nan\n")
    with raises_input_error(path, r"flux is nan.*pixel 2"):
        read_spectra(path)


def test_table_wavelength_not_increasing(tmp_path):
    path = tmp_path / "order.txt"
    path.write_text("4000 1\n4001 1\n4003 1\n4002 1\n")
    with raises_input_error(path, r"not strictly increasing: pixel 3 \(4002 A\)") as info:
        read_table(path)
    assert info.value.row == 3


def test_table_negative_error(tmp_path):
    path = tmp_path / "err.csv"
    path.write_text("wave,flux,err\n4000,1,0.1\n4001,1,-0.1\n")
    with raises_input_error(path, r"'err'.*negative uncertainty"):
        read_table(path)


def test_table_negative_ivar(tmp_path):
    path = tmp_path / "model.parquet"
    pq.write_table(pa.table({"wave": WAVE, "flux": FLUX, "ivar": -np.ones(5)}), path)
    with raises_input_error(path, r"negative inverse variance.*pixel 0"):
        read_table(path)


def test_table_missing_column(tmp_path):
    path = tmp_path / "noflux.csv"
    path.write_text("wavelength,magnitude\n4000,20\n4001,21\n")
    with raises_input_error(path, r"missing flux column.*magnitude"):
        read_spectra(path)


def test_table_not_a_number(tmp_path):
    path = tmp_path / "text.csv"
    path.write_text("wavelength,flux\n4000,1\n4001,oops\n")
    with raises_input_error(path, r"'flux'.*row 1.*'oops' is not a number"):
        read_table(path)


def test_table_ragged_row(tmp_path):
    path = tmp_path / "ragged.txt"
    path.write_text("4000 1\n4001 1 7\n")
    with raises_input_error(path, r"data row 1 has 3 values"):
        read_table(path)


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.fits"
    with raises_input_error(path, r"does not exist"):
        read_spectra(path)
    with raises_input_error(path, r"does not exist"):
        list(iter_spectra([path]))


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.touch()
    with raises_input_error(path, r"empty \(0 bytes\)"):
        read_table(path)


@pytest.mark.parametrize(
    "text", ["wavelength,flux\n", "# only a comment\n\n", "# wavelength flux\n"]
)
def test_table_zero_rows(tmp_path, text):
    path = tmp_path / "header_only.csv"
    path.write_text(text)
    with raises_input_error(path, r"no data rows"):
        read_spectra(path)


def test_empty_gzip(tmp_path):
    path = tmp_path / "empty.csv.gz"
    path.write_bytes(gzip.compress(b""))
    with raises_input_error(path, r"empty"):
        read_spectra(path)


def test_fits_table_zero_rows(tmp_path):
    path = tmp_path / "zero.fits"
    table = fits.BinTableHDU.from_columns(
        [fits.Column(name="wave", format="D"), fits.Column(name="flux", format="D")], nrows=0
    )
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path)
    with raises_input_error(path, r"no data rows"):
        read_table(path)


def test_unknown_binary_format(tmp_path):
    path = tmp_path / "image.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    with raises_input_error(path, r"not a FITS file or a recognised table"):
        read_spectra(path)


def test_directory_is_not_a_file(tmp_path):
    with raises_input_error(tmp_path, r"not a regular file"):
        read_spectra(tmp_path)
