"""The instrument of the emulated spectra: sky, throughput, resolution, extinction, coverage.

Pure numpy kernels used by :func:`jpasbatch.spectra.emulate.observe`; every
number here is a rough, documented stand-in for SDSS / BOSS / DESI fibre
spectrographs (see ``docs/spectral_study/README.md`` for what they miss).
"""

from __future__ import annotations

from functools import cache

import numpy as np

from jpasbatch.spectra.grid import COMMON_GRID, LogGrid

#: Speed of light, km/s.
C_KMS = 299792.458
#: Fine sub-pixels per common-grid pixel.
SUB = 4
#: Sky airglow lines (vacuum A, relative peak flux density); the OH bands are
#: filled in by :func:`sky_lines` from their band heads.
_SKY_LINES = ((5578.9, 12.0), (5891.6, 4.0), (5897.6, 3.0), (6302.0, 6.0), (6365.5, 2.0))
_OH_BANDS = ((6830, 7050), (7230, 7460), (7700, 8050), (8280, 8560), (8760, 9060), (9300, 10400))
#: Coverage of the surveys (observed A); pixels outside are masked.
SURVEYS = {"BOSS": (3600.0, 10350.0), "SDSS": (3800.0, 9200.0), "DESI": (3600.0, 9824.0)}


def fine_grid(grid: LogGrid = COMMON_GRID) -> np.ndarray:
    """Wavelengths of the SUB sub-pixels of every grid pixel."""
    step = grid.step / SUB
    return 10.0 ** (grid.start - 0.5 * grid.step + step * (np.arange(grid.n * SUB) + 0.5))


def ccm_extinction(wavelength: np.ndarray, ebv: np.ndarray, rv: float = 3.1) -> np.ndarray:
    """Transmission ``10**(-0.4 A_lambda)`` of Cardelli, Clayton & Mathis (1989), optical/NIR."""
    x = 1e4 / np.asarray(wavelength)
    a, b = np.zeros_like(x), np.zeros_like(x)
    ir = x < 1.1
    a[ir], b[ir] = 0.574 * x[ir] ** 1.61, -0.527 * x[ir] ** 1.61
    opt = ~ir
    y = x[opt] - 1.82
    a[opt] = np.polyval([0.32999, -0.7753, 0.01979, 0.72085, -0.02427, -0.50447, 0.17699, 1], y)
    b[opt] = np.polyval([-2.09002, 5.3026, -0.62251, -5.38434, 1.07233, 2.28305, 1.41338, 0], y)
    a_lambda = np.outer(np.asarray(ebv) * rv, a + b / rv)
    return 10 ** (-0.4 * a_lambda)


@cache
def sky_lines() -> tuple[np.ndarray, np.ndarray]:
    """Airglow line list ``(wavelength, peak)``: the bright atomic lines plus OH bands.

    OH bands are represented by lines every ~9 A inside each band with a fixed
    pseudo-random pattern of strengths (not the real line list: the networks
    must learn to distrust pixels near bright sky, not the exact positions).
    """
    rng = np.random.default_rng(5577)
    wave, peak = [w for w, _ in _SKY_LINES], [p for _, p in _SKY_LINES]
    for lo, hi in _OH_BANDS:
        lines = np.arange(lo, hi, 9.0) + rng.uniform(-3, 3, int(np.ceil((hi - lo) / 9.0)))
        wave += list(lines)
        peak += list(rng.lognormal(np.log(3.0 + 2.0 * (lo > 8000)), 0.8, lines.size))
    return np.array(wave), np.array(peak)


def sky_spectrum(wavelength: np.ndarray, sigma_a: float) -> tuple[np.ndarray, np.ndarray]:
    """Sky continuum and line flux density (units of the r = 20 continuum) at ``sigma_a`` A."""
    cont = 1.2 * (wavelength / 6200.0) ** 1.0
    lw, lp = sky_lines()
    lines = np.zeros_like(wavelength)
    for w0, p in zip(lw, lp, strict=True):
        near = np.abs(wavelength - w0) < 5 * sigma_a
        lines[near] += p * np.exp(-0.5 * ((wavelength[near] - w0) / sigma_a) ** 2)
    return cont, lines


def throughput(wavelength: np.ndarray) -> np.ndarray:
    """Relative end-to-end throughput: peak ~6000 A, ~35% of it at 3600 and 10000 A."""
    t = np.exp(-0.5 * ((np.log10(wavelength) - 3.78) / 0.155) ** 2)
    # spectrograph arm crossovers (BOSS dichroic ~6000 A, DESI ~5800 / 7600 A)
    for w0 in (5800.0, 7600.0):
        t *= 1 - 0.3 * np.exp(-0.5 * ((wavelength - w0) / 40.0) ** 2)
    return t


def broaden(flux: np.ndarray, sigma_pix: np.ndarray) -> np.ndarray:
    """Gaussian convolution of each row with its own sigma (fine pixels), through FFTs."""
    n = flux.shape[1]
    pad = int(np.ceil(5 * sigma_pix.max())) + 1
    f = np.pad(flux, ((0, 0), (pad, pad)), mode="edge")
    freq = np.fft.rfftfreq(f.shape[1])
    kernel = np.exp(-2 * (np.pi * freq[None, :] * sigma_pix[:, None]) ** 2)
    return np.fft.irfft(np.fft.rfft(f, axis=1) * kernel, n=f.shape[1], axis=1)[:, pad : pad + n]
