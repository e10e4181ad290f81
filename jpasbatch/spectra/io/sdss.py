"""SDSS ``spec`` / ``spec-lite`` files (:func:`read_sdss`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

from jpasbatch.core.errors import InputError
from jpasbatch.spectra.io.files import PathLike, check_file, file_stem
from jpasbatch.spectra.io.fits import (
    find_hdu,
    fits_column,
    hdu_data,
    hdu_names,
    open_fits,
    table_columns,
)
from jpasbatch.spectra.io.options import SURVEY_FLUX_UNIT, ReadOptions
from jpasbatch.spectra.io.validate import as_float, check_pixels, check_wavelength
from jpasbatch.spectra.masks import sdss_bad_pixels
from jpasbatch.spectra.spectrum import Spectrum


def read_sdss(path: PathLike, options: ReadOptions | None = None) -> list[Spectrum]:
    """Read an SDSS ``spec`` / ``spec-lite`` FITS file.

    Parameters
    ----------
    path
        The file (optionally gzipped).

    Returns
    -------
    list of Spectrum
        One spectrum. ``flux`` and ``ivar`` are converted from the SDSS
        1e-17 erg s-1 cm-2 A-1 unit (``ivar`` by 1e34); the wavelength is
        ``10**loglam`` (vacuum Angstrom). ``mask`` is ``True`` where
        ``ivar`` is zero or ``and_mask`` has one of ``options.sdss_bad_bits``
        (see :mod:`jpasbatch.spectra.masks`: ``BRIGHTSKY`` is not bad). ``meta``
        holds ``source`` and, from the ``SPECOBJ``/``SPALL`` HDU or the primary
        header, ``Z``, ``CLASS``, ``RA`` and ``DEC`` (``PLUG_RA``/``PLUG_DEC``).

    Raises
    ------
    InputError
        If the file is not a valid SDSS spectrum; see :func:`read_spectra`.

    Notes
    -----
    The id is ``PLATE-MJD-FIBERID`` zero-padded as in the SDSS file names
    (``0266-51602-0001``), taken from the primary header (``PLATEID`` or
    ``PLATE``, ``MJD``, ``FIBERID``), else from the same columns of HDU 2,
    else ``SPECOBJID``, else the file stem. ``and_mask`` is optional (old
    reductions without it are masked on ``ivar == 0`` only).
    """
    path = check_file(path)
    with open_fits(path) as hdul:
        return sdss_from_hdul(hdul, path, options or ReadOptions())


def unnamed_sdss(hdul: fits.HDUList) -> bool:
    """An SDSS spec file whose HDU 1 has no EXTNAME (DR16 spec-lite as some tools copy
    them): recognised by its ``flux``, ``loglam`` and ``ivar`` columns."""
    if len(hdul) < 2 or not isinstance(hdul[1], fits.BinTableHDU) or hdul[1].name:
        return False
    return {"flux", "loglam", "ivar"} <= {c.lower() for c in hdul[1].columns.names}


def sdss_from_hdul(hdul: fits.HDUList, path: Path, options: ReadOptions) -> list[Spectrum]:
    hdu = hdul[1] if unnamed_sdss(hdul) else find_hdu(hdul, "COADD", path)
    data = hdu_data(hdu, path)
    table_columns(hdu, path)  # fails clearly if COADD is an image
    if data is None or len(data) == 0:
        raise InputError("HDU 'COADD' has no rows (empty spectrum)", path=path, column="COADD")
    loglam = as_float(fits_column(hdu, data, "loglam", path), path, "COADD.loglam")
    flux = as_float(fits_column(hdu, data, "flux", path), path, "COADD.flux")
    ivar = as_float(fits_column(hdu, data, "ivar", path), path, "COADD.ivar")
    and_mask = fits_column(hdu, data, "and_mask", path, required=False)

    wave = 10.0**loglam
    check_wavelength(wave, path, "COADD.loglam")
    mask = ivar == 0
    if and_mask is not None:
        mask |= sdss_bad_pixels(and_mask, options.sdss_bad_bits)
    check_pixels(wave, flux, ivar, mask, path, flux_column="COADD.flux", ivar_column="COADD.ivar")
    # Masked pixels may carry garbage ivar; 0 is what "no information" means.
    ivar = np.where(mask, 0.0, ivar)

    primary = hdul[0].header
    meta: dict = {"source": str(path)}
    specobj = _sdss_specobj(hdul, path)
    if specobj is not None:
        for key in ("Z", "CLASS"):
            if key in specobj:
                value = specobj[key]
                meta[key] = value.strip() if isinstance(value, str) else float(value)
    for key in ("RA", "DEC"):
        for source in (specobj or {}, primary):
            value = source.get(f"PLUG_{key}", source.get(key))
            if isinstance(value, int | float) and np.isfinite(value):
                meta[key] = float(value)
                break
    spectrum = Spectrum(
        id=_sdss_id(primary, specobj, path),
        wavelength=wave,
        flux=flux * SURVEY_FLUX_UNIT,
        # ivar scales as 1/flux**2.
        ivar=ivar / SURVEY_FLUX_UNIT**2,
        mask=mask,
        meta=meta,
    )
    return [spectrum]


def _sdss_specobj(hdul: fits.HDUList, path: Path) -> dict | None:
    """First row of the SPECOBJ/SPALL HDU (HDU 2) as ``{UPPER_NAME: value}``."""
    names = hdu_names(hdul)
    hdu = None
    for name in ("SPECOBJ", "SPALL"):
        if name in names:
            hdu = hdul[name]
            break
    if hdu is None and len(hdul) > 2:
        hdu = hdul[2]
    if not isinstance(hdu, fits.BinTableHDU | fits.TableHDU):
        return None
    data = hdu_data(hdu, path)
    if data is None or len(data) == 0:
        return None
    row = data[0]
    return {
        name.upper(): (value.item() if isinstance(value, np.generic) else value)
        for name, value in zip(hdu.columns.names, row, strict=True)
        if np.ndim(value) == 0
    }


def _sdss_id(header: fits.Header, specobj: dict | None, path: Path) -> str:
    sources: list = [header]
    if specobj is not None:
        sources.append(specobj)
    for source in sources:
        plate = source.get("PLATEID", source.get("PLATE"))
        mjd = source.get("MJD")
        fiber = source.get("FIBERID")
        try:
            return f"{int(plate):04d}-{int(mjd):05d}-{int(fiber):04d}"
        except (TypeError, ValueError):
            continue
    for source in sources:
        specobjid = source.get("SPECOBJID")
        if specobjid not in (None, ""):
            return str(specobjid).strip()
    return file_stem(path)
