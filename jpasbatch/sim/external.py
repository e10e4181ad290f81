"""External photometry and morphology: what a Legacy Surveys + WISE cross-match adds.

OJALA feeds its transformer, besides the J-PAS bands, the DESI Legacy Imaging
Surveys g r z and WISE W1 W2 magnitudes and the Legacy Surveys morphological
model (``TYPE``: PSF, REX, EXP, DEV...). The emulator and the mocks make the
same columns here, from the same truth each already has (noiseless total fluxes,
class, redshift, size, galaxy type, Teff), so the two worlds get them the same
way and a model can use them in both.

* **DECam g r z** are band averages of the object's noiseless J-spectrum: the
  56 narrow and medium J-PAS fluxes, linear in wavelength between their pivots
  and flat beyond the reddest, integrated against the DECam curves. Being
  linear in the fluxes this is one ``(3, 56)`` matrix.
* **WISE W1 W2** lie beyond every template's wavelength range (redrock stops at
  1 um, Pickles at 2.5 um), so their flux continues the DECam z flux with a
  recipe per class: a black body at Teff for stars, an old stellar population
  (a black body of ~4000 K, redshifted) for galaxies, and a hot-dust power law
  ``f_nu ~ nu^alpha`` for QSOs. The two worlds draw the galaxy temperature and
  the QSO slope from different distributions (:data:`IR_RECIPES`), the way a
  model's infrared differs from the sky's.
* Noise: total (model) fluxes observed at the Legacy Surveys DR9 and unWISE
  depths with :func:`jpasbatch.physics.noise.observe` (no aperture losses:
  these are model fluxes, unlike the J-PAS 3 arcsec apertures).
* **MORPH_TYPE**: PSF for point sources (half-light radius below 0.2 arcsec),
  DEV for early-type galaxies, EXP for spirals, REX for star-bursts and small
  discs; towards the detection limit the fit falls back to PSF or REX at random,
  as the Legacy Surveys' does.

Every draw uses the generator passed in; callers give it a stream of its own so
that adding these columns changes none of the existing outputs.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from jpasbatch.catalog.schemas import BANDS, EXTERNAL_BANDS, MORPH_TYPES
from jpasbatch.physics.filters import extra_bands, jpas
from jpasbatch.physics.noise import observe
from jpasbatch.physics.photometry import C_ANGSTROM

__all__ = ["EXTERNAL_BANDS", "MORPH_TYPES", "external_columns", "external_from_truth"]
#: 5-sigma AB depths: DECaLS DR9 median point-source depths (g 24.0, r 23.4, z 22.5)
#: and the unWISE W1 / W2 5-sigma limits converted to AB (~20.0, ~19.3).
DEPTHS = np.array([24.0, 23.4, 22.5, 20.0, 19.3])
#: Infrared recipe per world: galaxy black-body temperature (mean, sd, K) and QSO
#: hot-dust slope alpha of f_nu ~ nu^alpha (mean, sd).
IR_RECIPES = {
    "observed": {"galaxy_t": (3800.0, 500.0), "qso_alpha": (-1.3, 0.35)},
    "simulated": {"galaxy_t": (4300.0, 300.0), "qso_alpha": (-1.0, 0.25)},
}
_H_OVER_K = 1.438777e8  # h c / k in Angstrom K


@functools.cache
def _optical_matrix() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``W`` (3, 56) with DECam grz = ``W @ f`` for the J-spectrum ``f``; pivots of both."""
    system = jpas()
    spectrum = [b for b in system if b.kind in ("narrow", "medium")]
    pivots = np.array([b.pivot_wavelength for b in spectrum])
    order = np.argsort(pivots)
    idx = np.array([system.names.index(b.name) for b in spectrum])[order]
    pivots = pivots[order]
    decam = extra_bands(EXTERNAL_BANDS[:3])
    rows = []
    for band in decam:
        lam = np.linspace(band.wavelength[0], band.wavelength[-1], 4000)
        resp = np.interp(lam, band.wavelength, band.response) * lam  # photon counting
        # hat functions of linear interpolation between the pivots, flat outside
        basis = np.stack(
            [np.interp(lam, pivots, np.eye(len(pivots))[j]) for j in range(len(pivots))]
        )
        rows.append(np.trapezoid(basis * resp, lam, axis=1) / np.trapezoid(resp, lam))
    ext_pivots = np.array([b.pivot_wavelength for b in extra_bands(EXTERNAL_BANDS)])
    return np.stack(rows), idx, ext_pivots


def _planck_nu(lam: np.ndarray, t: np.ndarray) -> np.ndarray:
    """B_nu up to a constant, at wavelength ``lam`` (Angstrom) and temperature ``t`` (K)."""
    x = np.clip(_H_OVER_K / (lam * t), None, 500.0)
    return 1.0 / (lam**3 * np.expm1(x))


def external_true_fluxes(
    true_flux: np.ndarray,
    classes: np.ndarray,
    z: np.ndarray,
    teff: np.ndarray,
    world: str,
    rng: np.random.Generator,
) -> np.ndarray:
    """Noiseless f_lambda (N, 5) in :data:`EXTERNAL_BANDS` from the J-PAS truth.

    Parameters
    ----------
    true_flux
        Noiseless total J-PAS fluxes (N, 60), archive order.
    classes, z, teff
        Class names, redshifts and stellar effective temperatures (NaN: 5000 K).
    world
        ``"observed"`` or ``"simulated"`` (selects :data:`IR_RECIPES`).
    rng
        Draws the galaxy temperatures and QSO slopes.
    """
    w, idx, piv = _optical_matrix()
    f = np.asarray(true_flux, float)[:, idx]
    ok = np.isfinite(f)
    with np.errstate(invalid="ignore", divide="ignore"):
        # renormalise over the covered bands (templates that stop short of a band)
        optical = (np.where(ok, f, 0.0) @ w.T) / (ok.astype(float) @ w.T)
    n = len(f)
    recipe = IR_RECIPES[world]
    classes = np.asarray(classes).astype(str)
    z = np.nan_to_num(np.asarray(z, float))
    t_star = np.nan_to_num(np.asarray(teff, float), nan=5000.0)
    t_gal = np.clip(rng.normal(*recipe["galaxy_t"], n), 2500, 8000)
    alpha = rng.normal(*recipe["qso_alpha"], n)
    lam_z, lam_w = piv[2], piv[3:]
    # f_nu ratio W / z per class; f_lambda = f_nu c / lam^2
    ratio = np.ones((n, 2))
    star = classes == "STAR"
    gal = classes == "GALAXY"
    qso = np.char.startswith(classes, "QSO")
    ratio[star] = _planck_nu(lam_w[None], t_star[star, None]) / _planck_nu(
        lam_z, t_star[star, None]
    )
    rest = (1 + z[gal, None]) ** -1
    ratio[gal] = _planck_nu(lam_w[None] * rest, t_gal[gal, None]) / _planck_nu(
        lam_z * rest, t_gal[gal, None]
    )
    ratio[qso] = (lam_w[None] / lam_z) ** (-alpha[qso, None])
    fnu_z = optical[:, 2] * lam_z**2 / C_ANGSTROM
    wise = ratio * fnu_z[:, None] * C_ANGSTROM / lam_w[None] ** 2
    return np.column_stack([optical, wise])


def morphology(
    classes: np.ndarray,
    subtype: np.ndarray,
    half_light: np.ndarray,
    mag_r: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Legacy-Surveys-like ``TYPE`` per object (strings of :data:`MORPH_TYPES`)."""
    half_light = np.nan_to_num(np.asarray(half_light, float))
    subtype = np.asarray(subtype).astype(str)
    out = np.full(len(half_light), "EXP", dtype=object)
    out[subtype == "early"] = "DEV"
    out[(subtype == "starburst") | ((half_light < 0.5) & (subtype != "early"))] = "REX"
    out[half_light < 0.2] = "PSF"
    # low S/N: the fit cannot tell the models apart and settles on the simplest ones
    confused = rng.random(len(out)) < 0.03 + 0.97 / (1 + np.exp(-(np.asarray(mag_r) - 23.2) / 0.4))
    out[confused] = np.where(rng.random(confused.sum()) < 0.5, "PSF", "REX")
    return out.astype(str)


def external_columns(
    true_flux: np.ndarray,
    classes: np.ndarray,
    z: np.ndarray,
    mag_r: np.ndarray,
    subtype: np.ndarray,
    half_light: np.ndarray,
    teff: np.ndarray,
    world: str,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Observed external columns: ``FLUX_<B>``, ``FLUX_RELERR_<B>`` (float32), ``MORPH_TYPE``."""
    true = external_true_fluxes(true_flux, classes, z, teff, world, rng)
    _, _, piv = _optical_matrix()
    flux, relerr, _ = observe(true, DEPTHS, rng, pivot=piv)
    cols = {f"FLUX_{b}": flux[:, k].astype(np.float32) for k, b in enumerate(EXTERNAL_BANDS)}
    cols |= {
        f"FLUX_RELERR_{b}": relerr[:, k].astype(np.float32) for k, b in enumerate(EXTERNAL_BANDS)
    }
    cols["MORPH_TYPE"] = morphology(classes, subtype, half_light, mag_r, rng)
    return cols


def external_from_truth(truth: pd.DataFrame, world: str, rng: np.random.Generator) -> pd.DataFrame:
    """:func:`external_columns` of an emulator truth table, with its ``OBJECT_ID``."""
    cols = external_columns(
        truth[[f"TRUE_FLUX_{b}" for b in BANDS]].to_numpy(float),
        truth["CLASS"].to_numpy(),
        truth["Z"].to_numpy(float),
        truth["MAG_R"].to_numpy(float),
        truth["SUBTYPE"].to_numpy(),
        truth["HALF_LIGHT_ARCSEC"].to_numpy(float),
        truth["TEFF"].to_numpy(float),
        world,
        rng,
    )
    return pd.DataFrame({"OBJECT_ID": truth["OBJECT_ID"].to_numpy(np.int64)} | cols)
