"""Generated spectra files in the real surveys' formats: for tests, docs and the README.

Real survey files cannot ship with the package (nor be a test's only data), so
these writers make files that look like them -- SDSS ``spec-lite`` (COADD in
1e-17 erg/s/cm2/A with ``loglam``, ``ivar``, ``and_mask``; SPECOBJ with
``PLUG_RA``, ``PLUG_DEC``, ``Z``, ``CLASS``) and FITS tables with a ``TUNIT``,
like the LAMOST and DESI tables users hold -- from the bundled templates, with
the features real spectra have: noise, sky residuals several sigma below zero
and ``BRIGHTSKY`` over the red OH-line forest.
"""

from __future__ import annotations

from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits

from jpasbatch.physics.templates import bundled_demo_set
from jpasbatch.spectra.masks import SPPIXMASK

#: BOSS wavelength grid: log10 steps of 1e-4 from 3600 to 10300 A.
BOSS_LOGLAM = np.arange(np.log10(3600.0), np.log10(10300.0), 1e-4)
#: Where BOSS sets ``BRIGHTSKY`` on faint objects: the red OH forest.
OH_FOREST = (6800.0, 10300.0)


def write_sdss(
    path: str | Path,
    loglam: np.ndarray,
    flux17: np.ndarray,
    ivar17: np.ndarray,
    and_mask: np.ndarray,
    *,
    plate: int = 3655,
    mjd: int = 55240,
    fiber: int = 1,
    ra: float = 112.0,
    dec: float = 39.7,
    z: float = 0.0,
    cls: str = "GALAXY",
) -> Path:
    """Write an SDSS ``spec-lite`` file (fluxes in 1e-17 erg/s/cm2/A, ivar in their -2)."""
    path = Path(path)
    primary = fits.PrimaryHDU()
    primary.header.update(
        {"PLATEID": plate, "MJD": mjd, "FIBERID": fiber, "PLUG_RA": ra, "PLUG_DEC": dec}
    )
    coadd = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="flux", array=np.asarray(flux17, np.float32), format="E"),
            fits.Column(name="loglam", array=np.asarray(loglam, np.float32), format="E"),
            fits.Column(name="ivar", array=np.asarray(ivar17, np.float32), format="E"),
            fits.Column(name="and_mask", array=np.asarray(and_mask, np.int32), format="J"),
        ],
        name="COADD",
    )
    specobj = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="PLATE", array=np.array([plate], np.int32), format="J"),
            fits.Column(name="MJD", array=np.array([mjd], np.int32), format="J"),
            fits.Column(name="FIBERID", array=np.array([fiber], np.int32), format="J"),
            fits.Column(name="PLUG_RA", array=np.array([ra]), format="D"),
            fits.Column(name="PLUG_DEC", array=np.array([dec]), format="D"),
            fits.Column(name="Z", array=np.array([z], np.float32), format="E"),
            fits.Column(name="CLASS", array=np.array([cls]), format="6A"),
        ],
        name="SPECOBJ",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.HDUList([primary, coadd, specobj]).writeto(path, overwrite=True)
    return path


def write_fits_table(
    path: str | Path,
    wavelength: np.ndarray,
    flux: np.ndarray,
    *,
    ivar: np.ndarray | None = None,
    flux_unit: str | None = "1e-17 erg / (s cm2 Angstrom)",
) -> Path:
    """Write a (wavelength [Angstrom], flux[, ivar]) FITS table with ``TUNIT`` s."""
    path = Path(path)
    ivar_unit = None if flux_unit is None else (u.Unit(flux_unit) ** -2).to_string()
    columns = [
        fits.Column(name="wavelength", array=np.asarray(wavelength), format="D", unit="Angstrom"),
        fits.Column(name="flux", array=np.asarray(flux, np.float32), format="E", unit=flux_unit),
    ]
    if ivar is not None:
        columns.append(
            fits.Column(name="ivar", array=np.asarray(ivar, np.float32), format="E", unit=ivar_unit)
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.BinTableHDU.from_columns(columns).writeto(path, overwrite=True)
    return path


def template_flux17(kind: str, z: float, r_mag: float, wave: np.ndarray) -> np.ndarray:
    """A bundled template (by label ``id``) at redshift ``z``, scaled to an r-band AB
    magnitude ``r_mag`` near 6200 A, on the observed grid ``wave``, in 1e-17 units."""
    lib = bundled_demo_set()
    k = int(np.flatnonzero(lib.labels["id"] == kind)[0])
    rest = lib.flux[k]
    ok = np.isfinite(rest)
    flux = np.interp(wave / (1 + z), lib.wavelength[ok], rest[ok], left=np.nan, right=np.nan)
    flux = np.nan_to_num(flux, nan=0.0)
    # f_lambda of an AB magnitude at 6200 A: 3631 Jy c / lambda^2
    target = 3631e-23 * 10 ** (-0.4 * r_mag) * 2.998e18 / 6200.0**2
    near = (wave > 6000) & (wave < 6400)
    level = np.mean(flux[near])
    return flux * (target / level if level > 0 else 0.0) / 1e-17


def make_examples(out: str | Path, seed: int = 0) -> list[Path]:
    """A small batch of SDSS-format spectra and tables showing what real files hold.

    Five ``spec-lite`` files (a star, two galaxies, two QSOs; r = 18.5-20.5, BOSS
    noise, ``BRIGHTSKY`` over the OH forest, one sky residual 6 sigma below zero),
    one LAMOST-like FITS table with ``ivar`` and a ``TUNIT`` of
    1e-17 erg/s/cm2/A, one DESI-like table without errors, and one corrupt file
    (a truncated spec-lite), so that ``jpasbatch photometry`` on the folder
    writes 7 rows and 1 rejects row.
    """
    out = Path(out)
    rng = np.random.default_rng(seed)
    wave = 10**BOSS_LOGLAM
    objects = [  # (template, z, r, class, fiber)
        ("star-pickles-g2v", 0.0, 18.5, "STAR", 11),
        ("galaxy-redrock2016-244", 0.12, 18.8, "GALAXY", 22),
        ("galaxy-redrock2016-657", 0.45, 20.0, "GALAXY", 33),
        ("qso-redrock-None", 1.2, 19.5, "QSO", 44),
        ("qso-redrock-None", 2.6, 20.5, "QSO", 55),
    ]
    sky = np.where((wave > OH_FOREST[0]) & (wave < OH_FOREST[1]), 1 << SPPIXMASK["BRIGHTSKY"], 0)
    paths = []
    for k, (kind, z, r, cls, fiber) in enumerate(objects):
        true = template_flux17(kind, z, r, wave)
        sigma = np.full(wave.size, 0.8) * np.where(sky != 0, 2.0, 1.0)
        flux = true + rng.normal(0, sigma)
        if k == 1:
            flux[3000] = true[3000] - 6 * sigma[3000]  # a sky residual: data, not an error
        name = f"spec-3655-55240-{fiber:04d}.fits"
        paths.append(
            write_sdss(
                out / name,
                BOSS_LOGLAM,
                flux,
                sigma**-2,
                sky,
                fiber=fiber,
                ra=112.0 + 0.01 * k,
                dec=39.7 + 0.01 * k,
                z=z,
                cls=cls,
            )
        )
    lam = np.arange(3700.0, 9100.0, 1.5)
    star = template_flux17("star-pickles-k5v", 0.0, 17.0, lam)
    noise = 0.05 * np.abs(star) + 0.3
    paths.append(
        write_fits_table(
            out / "lamost-like-k5v.fits", lam, star + rng.normal(0, noise), ivar=noise**-2
        )
    )
    lam = np.arange(3600.0, 9800.0, 0.8)
    gal = template_flux17("galaxy-redrock2016-179", 0.2, 19.0, lam) + rng.normal(0, 0.3, lam.size)
    paths.append(write_fits_table(out / "desi-like-galaxy.fits", lam, gal))
    corrupt = out / "spec-3655-55240-0066.fits"
    corrupt.write_bytes(paths[0].read_bytes()[:5000])  # cut in the middle of COADD
    paths.append(corrupt)
    return paths
