"""Resampling conserves flux, bad pixels are masked, and the Dask preparation writes it all."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import integrate

from jpasbatch.core.errors import InputError
from jpasbatch.spectra import store
from jpasbatch.spectra.grid import (
    COMMON_GRID,
    LogGrid,
    median_snr,
    network_input,
    pixel_edges,
    resample,
)
from jpasbatch.spectra.io import read_spectra
from jpasbatch.spectra.prepare import prepare, prepare_files


def test_common_grid_is_the_sdss_log_grid():
    g = COMMON_GRID
    assert g.n == 4618
    assert g.wavelength[0] == pytest.approx(3600.0, abs=0.05)
    assert np.allclose(np.diff(g.loglam), 1e-4)
    # SDSS loglam values (multiples of 1e-4) fall exactly on grid centres
    steps = g.loglam * 1e4
    assert np.allclose(steps, np.round(steps), atol=1e-6)
    assert np.allclose(np.sqrt(g.edges[:-1] * g.edges[1:]), g.wavelength)


def test_resampling_equals_direct_integration_of_the_step_function():
    rng = np.random.default_rng(0)
    wave = np.sort(rng.uniform(4000, 4100, 300))  # irregular input pixels
    flux = rng.uniform(0.5, 2.0, wave.size)
    grid = LogGrid(start=np.log10(4010.0), step=2e-4, n=40)
    out, _, ok = resample(wave, flux, grid=grid)
    edges = pixel_edges(wave)

    def step(lam):
        i = np.searchsorted(edges, lam) - 1
        return flux[i]

    for j in np.flatnonzero(ok)[:12]:
        lo, hi = grid.edges[j], grid.edges[j + 1]
        breaks = edges[(edges > lo) & (edges < hi)]
        direct = integrate.quad(step, lo, hi, points=breaks, limit=200)[0] / (hi - lo)
        assert out[j] == pytest.approx(direct, rel=1e-9)
    # total flux over the covered output pixels equals the input's over the same range
    lo, hi = grid.edges[0], grid.edges[-1]
    inside = np.clip(np.minimum(edges[1:], hi) - np.maximum(edges[:-1], lo), 0, None)
    assert np.sum(out * np.diff(grid.edges)) == pytest.approx(np.sum(flux * inside), rel=1e-10)


def test_masked_pixels_carry_no_weight_and_uncovered_pixels_are_masked():
    wave = 10 ** (COMMON_GRID.loglam[:200])  # the grid itself: resampling is the identity
    flux = np.linspace(1, 2, 200)
    ivar = np.full(200, 4.0)
    good = np.ones(200, bool)
    good[50:60] = False
    flux_bad = flux.copy()
    flux_bad[50:60] = 1e6  # garbage under the mask must not leak
    grid = LogGrid(n=250)
    out, out_ivar, ok = resample(wave, flux_bad, ivar, good, grid)
    assert np.allclose(out[:50], flux[:50]) and np.allclose(out[60:200], flux[60:200])
    assert not ok[50:60].any() and (out[50:60] == 0).all() and (out_ivar[50:60] == 0).all()
    assert not ok[200:].any()  # beyond the input
    assert np.allclose(out_ivar[ok], 4.0)


def test_variance_propagation_matches_monte_carlo():
    rng = np.random.default_rng(1)
    wave = np.linspace(5000, 5100, 400)
    ivar = rng.uniform(1, 9, wave.size)
    grid = LogGrid(start=np.log10(5010.0), step=3e-4, n=20)
    draws = np.stack([rng.normal(0, 1 / np.sqrt(ivar)) for _ in range(4000)])
    out, out_ivar, ok = resample(wave, draws, np.broadcast_to(ivar, draws.shape), grid=grid)
    assert ok.all()
    mc_var = out.var(0)
    assert np.allclose(1 / out_ivar[0], mc_var, rtol=0.1)


def test_network_input_is_scale_free_and_masks_to_zero():
    rng = np.random.default_rng(2)
    flux = rng.lognormal(0, 0.3, (3, 500))
    good = rng.random((3, 500)) > 0.1
    x1 = network_input(flux, good)
    x2 = network_input(flux * 1e-17, good)  # another flux unit
    assert x1.shape == (3, 2, 500)
    assert np.allclose(x1, x2, atol=1e-6)
    assert (x1[:, 0][~good] == 0).all() and np.array_equal(x1[:, 1], good)
    # a single spike does not shrink the rest of the spectrum
    spiky = flux.copy()
    spiky[:, 10] = 1e6
    x3 = network_input(spiky, good)
    assert np.allclose(np.median(np.abs(x3[:, 0]), 1), np.median(np.abs(x1[:, 0]), 1), rtol=0.1)
    zm = network_input(flux, good, mode="zero_mean")[:, 0]
    assert np.allclose((zm * good).sum(1) / good.sum(1), 0, atol=1e-5)


def test_sdss_and_mask_pixels_are_masked_on_the_grid(sdss_files):
    sp = read_spectra(sdss_files[0])[0]
    index, flux, ivar, good, rejects = prepare_files([sdss_files[0]])
    assert len(index) == 1 and rejects.empty
    # pixels flagged in and_mask (or with ivar 0) are masked on the common grid
    on_grid = np.round((np.log10(sp.wavelength) - COMMON_GRID.start) / COMMON_GRID.step)
    on_grid = on_grid.astype(int)
    assert not good[0, on_grid[~sp.good]].any()
    assert good[0, on_grid[sp.good]].all()
    assert not good[0, COMMON_GRID.wavelength > 10301].any()  # beyond the file
    assert index["SNR"].iloc[0] == pytest.approx(median_snr(flux, ivar, good)[0])
    assert index["Z_REF"].iloc[0] == pytest.approx(sp.meta["Z"], rel=1e-6)


def test_dask_prepare_writes_partitions_rejects_and_resumes(sdss_files, tmp_path, client):
    broken = tmp_path / "broken.fits"
    broken.write_bytes(b"SIMPLE  = not really a FITS file")
    inputs = [*sdss_files, broken]
    out = tmp_path / "prepared"
    summary = prepare(inputs, out, files_per_partition=3, client=client, progress=False)
    assert summary["files"] == 7 and summary["partitions"] == 3
    assert summary["rows"] + summary["rejected"] == 7 and summary["rejected"] == 1
    st = store.SpectraStore(out)
    assert len(st) == 6 and list(st.index["PARTITION"].unique()) == ["part-00000", "part-00001"]
    rej = st.rejects()
    assert len(rej) == 1 and rej["SOURCE"].iloc[0] == str(broken) and rej["REASON"].iloc[0]
    # rows line up with the files they came from
    flux, _, good = st.arrays(np.array([4, 0]))
    ref_index, ref_flux, _, ref_good, _ = prepare_files([sdss_files[4], sdss_files[0]])
    assert np.array_equal(good, ref_good) and np.allclose(flux, ref_flux)
    assert list(st.index["ID"].iloc[[4, 0]]) == list(ref_index["ID"])
    # a rerun keeps finished partitions
    before = {p: p.stat().st_mtime_ns for p in (out / store.INDEX).glob("*.parquet")}
    again = prepare(inputs, out, files_per_partition=3, client=client, progress=False)
    assert again["rows"] == 6
    assert {p: p.stat().st_mtime_ns for p in (out / store.INDEX).glob("*.parquet")} == before
    assert isinstance(st.index, pd.DataFrame)
    # ... but not those of other inputs or partitioning
    with pytest.raises(InputError, match="files_per_partition"):
        prepare(inputs, out, files_per_partition=2, client=client, progress=False)
    with pytest.raises(InputError, match="files"):
        prepare(inputs[1:], out, files_per_partition=3, client=client, progress=False)


def test_desi_mask_and_ivar_zero_pixels_are_masked_on_the_grid(tmp_path):
    from astropy.io import fits

    rng = np.random.default_rng(4)
    hdus = [fits.PrimaryHDU()]
    tid = np.array([1, 2], dtype=np.int64)
    hdus.append(
        fits.BinTableHDU.from_columns(
            [fits.Column(name="TARGETID", array=tid, format="K")], name="FIBERMAP"
        )
    )
    arms = {"B": (3600.0, 5900.0), "R": (5660.0, 7620.0), "Z": (7520.0, 9824.0)}
    for arm, (lo, hi) in arms.items():
        wave = np.arange(lo, hi, 0.8)
        flux = 5 + rng.normal(0, 0.5, (2, wave.size))
        ivar = np.full((2, wave.size), 4.0)
        mask = np.zeros((2, wave.size), np.int32)
        if arm == "R":
            mask[0, 1000:1100] = 8  # 6460-6540 A flagged in spectrum 0
            ivar[1, 1500:1600] = 0  # 6860-6940 A without data in spectrum 1
        for name, arr in (("WAVELENGTH", wave), ("FLUX", flux), ("IVAR", ivar), ("MASK", mask)):
            hdus.append(fits.ImageHDU(arr, name=f"{arm}_{name}"))
    path = tmp_path / "coadd.fits"
    fits.HDUList(hdus).writeto(path)
    index, flux, ivar, good, rejects = prepare_files([path])
    assert list(index["ID"]) == ["1", "2"] and rejects.empty
    w = COMMON_GRID.wavelength
    assert not good[0, (w > 6462) & (w < 6538)].any() and good[1, (w > 6462) & (w < 6538)].all()
    assert not good[1, (w > 6862) & (w < 6938)].any() and good[0, (w > 6862) & (w < 6938)].all()
    assert not good[:, w > 9825].any() and good[:, (w > 3601) & (w < 9820)].sum(1).min() > 4000
    assert np.allclose(flux[good], 5e-17, atol=2.5e-17)  # erg s-1 cm-2 A-1
