"""Depth noise model: observe true J-PAS fluxes the way the CEFCA archive reports them.

The noise of an aperture flux has two parts:

* **background** (sky + read noise): Gaussian, independent of the source, set by
  the per-band 5-sigma depth of the image (``DEPTH3ARC5S`` of ``TileImage``);
* **source shot noise**: Poisson, variance proportional to the source flux,
  which only matters for bright sources.

In electrons, a source of flux ``f`` gives ``N = f / phi`` electrons (``phi`` =
flux per electron) with shot variance ``N``, i.e. ``phi * f`` in flux units. The
depth gives ``sigma5 = f5 / 5``, the total noise of a source *at* the depth, but
not ``phi``; so ``phi`` is parametrised by the dimensionless **gain factor**

    G = sigma5 / phi  = photo-electrons collected from a source of flux sigma5,

and the model variance is

    var(f) = sigma_bg**2 + sigma5 * f / G,    sigma_bg**2 = sigma5**2 * (1 - 5 / G),

where the background term is fixed so that the total S/N at the depth is exactly
5 (the depth is defined by the total noise). For a background-limited image
``sigma5 ~ phi * sqrt(B)`` with ``B`` sky electrons in the aperture, so ``G ~
sqrt(B)``. For a J-PAS narrow band (480 s, 3 arcsec aperture, ~4 m2 effective
area, sky ~21 mag/arcsec2, 145 A width) ``B ~ 2-4e4`` and ``G ~ 150-200``; the
default 150 makes the shot noise equal the background at ``f = G sigma5``, about
3.7 mag brighter than the depth (S/N ~ 100). ``G = inf`` switches it off.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.typing import ArrayLike

from jpasbatch.physics.filters import jpas
from jpasbatch.physics.photometry import C_ANGSTROM

#: Default gain factor (photo-electrons per sigma5 of source flux); see module docstring.
DEFAULT_GAIN_FACTOR = 150.0


@functools.cache
def _pivots() -> np.ndarray:
    out = np.array([b.pivot_wavelength for b in jpas()])
    out.flags.writeable = False
    return out


def pivot_wavelengths() -> np.ndarray:
    """Pivot wavelengths of the 60 J-PAS bands in archive order (Angstrom).

    Returns
    -------
    numpy.ndarray
        Shape ``(60,)``, from the as-built curves of :func:`jpasbatch.physics.filters.jpas`.
    """
    return _pivots().copy()


def depth_sigma(
    depth_mag5: ArrayLike,
    aperture_corr: ArrayLike = 1.0,
    *,
    pivot: ArrayLike | None = None,
) -> np.ndarray:
    """Flux noise of a source at the 5-sigma depth: ``sigma5 = f5 / 5``.

    Parameters
    ----------
    depth_mag5
        5-sigma AB depths, shape ``(..., B)``.
    aperture_corr
        Aperture correction factor (>= 1), broadcastable to ``depth_mag5``. The
        archive's aperture-corrected fluxes (``APER_COR_3_0``) multiply the
        aperture flux *and its error* by it, so the noise scales with it.
    pivot
        Pivot wavelengths (Angstrom) of the ``B`` bands; default the 60 J-PAS bands.

    Returns
    -------
    numpy.ndarray
        ``sigma5`` in erg s-1 cm-2 A-1, same shape as the broadcast inputs:
        ``f_lambda = 10**(-0.4 (m + 48.6)) c / lambda_p**2``, divided by 5.
    """
    m = np.asarray(depth_mag5, dtype=float)
    lam = _pivots() if pivot is None else np.asarray(pivot, dtype=float)
    if m.shape[-1:] != lam.shape:
        raise ValueError(f"depth_mag5 has {m.shape[-1:]} bands, pivots {lam.shape}")
    # the 48.6 definition of AB (as astropy), not 3631 Jy: they differ by 6e-5
    f5 = 10.0 ** (-0.4 * (m + 48.6)) * C_ANGSTROM / lam**2
    return np.asarray(aperture_corr, dtype=float) * f5 / 5.0


def noise_variance(
    flux: ArrayLike, sigma5: ArrayLike, gain_factor: ArrayLike = DEFAULT_GAIN_FACTOR
) -> np.ndarray:
    """Model variance of a measured flux: background plus source shot noise.

    Parameters
    ----------
    flux
        Source flux (erg s-1 cm-2 A-1); negative values count as zero source
        light (there is no negative Poisson variance).
    sigma5
        Noise at the depth, from :func:`depth_sigma`.
    gain_factor
        ``G`` > 5 (see the module docstring); ``inf`` gives background only.

    Returns
    -------
    numpy.ndarray
        ``sigma5**2 (1 - 5/G) + sigma5 max(flux, 0) / G``.
    """
    g = np.asarray(gain_factor, dtype=float)
    if np.any(g <= 5):
        raise ValueError("gain_factor must be > 5 (the S/N at the depth is 5)")
    s5 = np.asarray(sigma5, dtype=float)
    return s5**2 * (1.0 - 5.0 / g) + s5 * np.clip(flux, 0.0, None) / g


def observe(
    true_flux: ArrayLike,
    depth_mag5: ArrayLike,
    rng: np.random.Generator | int,
    *,
    gain_factor: ArrayLike = DEFAULT_GAIN_FACTOR,
    aperture_corr: ArrayLike = 1.0,
    zp_offsets_mag: ArrayLike | None = None,
    missing: ArrayLike | None = None,
    detect_snr: float = 1.0,
    pivot: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Add depth noise to true fluxes and report them as the archive does.

    Parameters
    ----------
    true_flux
        Noise-free fluxes, shape ``(N, B)``, erg s-1 cm-2 A-1 (NaN = not covered).
    depth_mag5
        5-sigma AB depths, shape ``(B,)`` or ``(N, B)`` (e.g. each object's tile).
    rng
        Generator (or seed). Exactly one ``(N, B)`` standard-normal block is
        drawn, whatever the mask, so results are reproducible cell by cell.
    gain_factor
        ``G`` of the shot-noise term, scalar or broadcastable to ``(N, B)``.
    aperture_corr
        Aperture correction factor, broadcastable to ``(N, B)``.
    zp_offsets_mag
        Zero-point errors in mag, ``(B,)`` or ``(N, B)``: a calibration off by
        ``dm`` reports ``m + dm``, so the source flux is multiplied by
        ``10**(-0.4 dm)`` *before* the noise (the noise is set by the depth,
        which is measured in the calibrated system).
    missing
        Boolean ``(N, B)``, ``True`` where the band was not observed.
    detect_snr
        S/N threshold of the ``detected`` flag.
    pivot
        Pivot wavelengths of the ``B`` bands (default: the 60 J-PAS bands).

    Returns
    -------
    obs_flux : numpy.ndarray
        Measured fluxes ``(N, B)``; negative and tiny values are kept, as in the
        archive (forced photometry measures every band). NaN where missing or
        where the true flux is NaN.
    relerr : numpy.ndarray
        ``sigma / |obs_flux|`` (the archive's ``FLUX_RELERR``), where ``sigma`` is
        the error a pipeline would report: the model variance evaluated at the
        *measured* flux, as SExtractor does (it never sees the true flux). It can
        be huge for faint sources; NaN where missing.
    detected : numpy.ndarray
        Boolean ``(N, B)``: ``obs_flux > 0`` and ``obs_flux / sigma >= detect_snr``.
        ``False`` where missing.
    """
    rng = np.random.default_rng(rng)
    f = np.asarray(true_flux, dtype=float)
    if f.ndim != 2:
        raise ValueError(f"true_flux must be (N, B), got shape {f.shape}")
    sigma5 = np.broadcast_to(depth_sigma(depth_mag5, aperture_corr, pivot=pivot), f.shape)
    if zp_offsets_mag is not None:
        f = f * 10.0 ** (-0.4 * np.asarray(zp_offsets_mag, dtype=float))
    z = rng.standard_normal(f.shape)
    obs = f + np.sqrt(noise_variance(f, sigma5, gain_factor)) * z
    err = np.sqrt(noise_variance(obs, sigma5, gain_factor))

    lost = ~np.isfinite(obs)
    if missing is not None:
        lost |= np.broadcast_to(np.asarray(missing, dtype=bool), f.shape)
    obs[lost] = np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        relerr = err / np.abs(obs)
        detected = (obs > 0) & (obs >= detect_snr * err)
    relerr[lost] = np.nan
    return obs, relerr, detected
