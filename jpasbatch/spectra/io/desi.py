"""DESI coadd files, the spectrograph arms merged onto one grid (:func:`read_desi`)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from astropy.io import fits

from jpasbatch.core.errors import InputError
from jpasbatch.spectra.io.files import PathLike, check_file
from jpasbatch.spectra.io.fits import (
    find_hdu,
    fits_column,
    hdu_data,
    hdu_names,
    open_fits,
    read_image,
    table_columns,
)
from jpasbatch.spectra.io.options import SURVEY_FLUX_UNIT
from jpasbatch.spectra.io.validate import as_float, check_length, check_pixels, check_wavelength
from jpasbatch.spectra.spectrum import Spectrum


def read_desi(path: PathLike) -> list[Spectrum]:
    """Read a DESI coadd FITS file, merging the spectrograph arms.

    Parameters
    ----------
    path
        The file (optionally gzipped).

    Returns
    -------
    list of Spectrum
        One spectrum per ``FIBERMAP`` row, id ``str(TARGETID)``, flux and ivar
        converted from 1e-17 erg s-1 cm-2 A-1.

    Raises
    ------
    InputError
        If the file is not a valid DESI coadd; see :func:`read_spectra`.

    Notes
    -----
    Arms are any HDU set ``{ARM}_WAVELENGTH``/``{ARM}_FLUX``/``{ARM}_IVAR``
    (``B``, ``R``, ``Z`` or a pre-merged ``BRZ``); ``{ARM}_MASK`` is optional.

    How the arms are merged: all arm grids are concatenated and sorted, and
    pixels of different arms whose wavelengths agree to within 1% of the
    smallest pixel spacing are the *same* output pixel. DESI coadds put all
    arms on one common 0.8 A grid, so in the overlaps every pixel coincides
    and becomes the inverse-variance weighted mean of the arms that are good
    there (``mask == 0``, ``ivar > 0``, finite flux); its ``ivar`` is the sum
    of those arms' ``ivar``. A merged pixel with no good arm is masked and
    keeps the plain mean of the finite arm values. Pixels that do not
    coincide (arm grids not aligned) are kept unchanged and interleaved, so
    the merged grid is always strictly increasing, contains every input
    wavelength, and no value is ever interpolated (which would correlate the
    noise of neighbouring pixels).
    """
    path = check_file(path)
    with open_fits(path) as hdul:
        return desi_from_hdul(hdul, path)


def desi_arms(names: list[str]) -> list[str]:
    return [m.group(1) for name in names if (m := re.fullmatch(r"([A-Z0-9]+)_FLUX", name))]


def desi_from_hdul(hdul: fits.HDUList, path: Path) -> list[Spectrum]:
    fibermap = find_hdu(hdul, "FIBERMAP", path)
    fm_data = hdu_data(fibermap, path)
    table_columns(fibermap, path)
    if fm_data is None or len(fm_data) == 0:
        raise InputError("HDU 'FIBERMAP' has no rows (no spectra)", path=path, column="FIBERMAP")
    targetid = fits_column(fibermap, fm_data, "TARGETID", path)
    n_spec = len(targetid)
    labels = [f"spectrum {k} (TARGETID {t})" for k, t in enumerate(targetid)]

    arm_names = desi_arms(hdu_names(hdul))
    if not arm_names:
        raise InputError(
            "no spectrograph arm found: expected HDUs B_FLUX, R_FLUX and/or Z_FLUX",
            path=path,
            column="B_FLUX",
        )
    arms = []
    for arm in arm_names:
        wcol = f"{arm}_WAVELENGTH"
        wave = as_float(read_image(hdul, wcol, path), path, wcol)
        check_wavelength(wave, path, wcol)
        flux = as_float(read_image(hdul, f"{arm}_FLUX", path), path, f"{arm}_FLUX")
        ivar = as_float(read_image(hdul, f"{arm}_IVAR", path), path, f"{arm}_IVAR")
        if f"{arm}_MASK" in hdu_names(hdul):
            mask = read_image(hdul, f"{arm}_MASK", path) != 0
        else:
            mask = np.zeros(flux.shape, dtype=bool)
        for name, array in ((f"{arm}_FLUX", flux), (f"{arm}_IVAR", ivar), (f"{arm}_MASK", mask)):
            check_length(array, wave.size, path, name, wcol)
            rows = 1 if array.ndim == 1 else array.shape[0]
            if array.ndim > 2 or rows != n_spec:
                raise InputError(
                    f"length mismatch: {name!r} has {rows} spectra (shape {array.shape}) but "
                    f"'FIBERMAP' has {n_spec} rows",
                    path=path,
                    column=name,
                )
        flux, ivar, mask = (np.atleast_2d(a) for a in (flux, ivar, mask))
        mask = mask | (ivar == 0)
        check_pixels(
            wave,
            flux,
            ivar,
            mask,
            path,
            flux_column=f"{arm}_FLUX",
            ivar_column=f"{arm}_IVAR",
            labels=labels,
        )
        arms.append((wave, flux, ivar, mask))

    wave, flux, ivar, mask = _merge_arms(arms)
    extra = {
        name: values
        for name in ("TARGET_RA", "TARGET_DEC")
        if (values := fits_column(fibermap, fm_data, name, path, required=False)) is not None
    }
    spectra = []
    for k in range(n_spec):
        meta: dict = {"source": str(path), "arms": "".join(arm_names)}
        for name, values in extra.items():
            meta[name.removeprefix("TARGET_")] = float(values[k])
        spectra.append(
            Spectrum(
                id=str(int(targetid[k])),
                # A copy each: a shared grid would let in-place edits of one
                # spectrum (e.g. a redshift shift) silently change the others.
                wavelength=wave.copy(),
                flux=flux[k] * SURVEY_FLUX_UNIT,
                ivar=ivar[k] / SURVEY_FLUX_UNIT**2,
                mask=mask[k],
                meta=meta,
            )
        )
    return spectra


def _merge_arms(
    arms: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Merge ``(wave (L_a,), flux, ivar, mask (N, L_a))`` arms onto one grid.

    See :func:`read_desi` for the rule. Returns ``wave (G,)`` and
    ``flux, ivar, mask (N, G)``.
    """
    if len(arms) == 1:
        wave, flux, ivar, mask = arms[0]
        return wave, flux, np.where(mask, 0.0, ivar), mask
    all_wave = np.concatenate([a[0] for a in arms])
    # Pixels closer than 1% of the finest spacing are one pixel; two pixels of
    # the same arm can never be that close, so an arm never merges with itself.
    spacing = min(float(np.min(np.diff(a[0]))) if a[0].size > 1 else np.inf for a in arms)
    tol = 0.01 * spacing if np.isfinite(spacing) else 1e-9 * float(np.max(all_wave))
    order = np.argsort(all_wave, kind="stable")
    new_pixel = np.concatenate([[True], np.diff(all_wave[order]) > tol])
    group_sorted = np.cumsum(new_pixel) - 1
    group = np.empty_like(group_sorted)
    group[order] = group_sorted
    n_pix = int(group_sorted[-1]) + 1
    n_spec = arms[0][1].shape[0]

    wave_sum = np.bincount(group, weights=all_wave, minlength=n_pix)
    wave_count = np.bincount(group, minlength=n_pix)
    wave = wave_sum / wave_count

    weight = np.zeros((n_spec, n_pix))
    weighted_flux = np.zeros((n_spec, n_pix))
    plain_sum = np.zeros((n_spec, n_pix))
    plain_count = np.zeros((n_spec, n_pix))
    start = 0
    for arm_wave, flux, ivar, mask in arms:
        # Indices are unique within one arm, so fancy-index += is safe here.
        idx = group[start : start + arm_wave.size]
        start += arm_wave.size
        finite = np.isfinite(flux)
        good = finite & ~mask & (ivar > 0)
        w = np.where(good, ivar, 0.0)
        weight[:, idx] += w
        weighted_flux[:, idx] += w * np.where(good, flux, 0.0)
        plain_sum[:, idx] += np.where(finite, flux, 0.0)
        plain_count[:, idx] += finite
    with np.errstate(invalid="ignore", divide="ignore"):
        flux = np.where(weight > 0, weighted_flux / weight, plain_sum / plain_count)
    return wave, flux, weight, weight == 0
