"""Read observed and model spectra from SDSS, DESI and plain-table files.

Every reader returns a list of :class:`~jpasbatch.spectra.spectrum.Spectrum` on
a strictly increasing wavelength grid in Angstrom with f_lambda in
erg s-1 cm-2 A-1, so that the photometry never has to know where a spectrum
came from.

Bad input never ends in a bare traceback: every problem is raised as
:class:`~jpasbatch.core.errors.InputError` naming the file, the HDU/column and,
where it applies, the pixel or row, because a catalogue-scale batch job is
run by people who did not write the file and must be able to find the fault.
Only what is structurally wrong is refused (a missing HDU or column, a
non-increasing wavelength, a length mismatch, a non-finite unmasked value, an
empty file, a unit that is not a flux density). Noise is not an error:
negative pixels of any significance are data, as in every survey pipeline.
Model and template libraries opt into non-negativity (``ReadOptions.model_spectra``).

Formats
-------
SDSS
    ``spec``/``spec-lite`` files: binary table HDU ``COADD`` with ``flux``,
    ``loglam``, ``ivar``, ``and_mask``; HDU 2 (``SPECOBJ``/``SPALL``) with
    ``Z``, ``CLASS``.
DESI
    coadd files: ``FIBERMAP`` with ``TARGETID`` and, per spectrograph arm,
    ``{ARM}_WAVELENGTH``, ``{ARM}_FLUX``, ``{ARM}_IVAR`` and ``{ARM}_MASK``.
    The arms are merged onto one grid, see :func:`read_desi`.
Tables
    CSV, whitespace-separated ASCII (``#`` comments), ECSV, FITS tables and
    Parquet with a wavelength and a flux column, and the units the file states;
    see :func:`read_table`.

Any of these may be gzipped (``.gz``); the content, not the file name, decides
the format in :func:`read_spectra`.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
import warnings
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from jpasbatch.core.errors import InputError
from jpasbatch.spectra.masks import SDSS_BAD_BITS, sdss_bad_pixels, sdss_bitmask
from jpasbatch.spectra.spectrum import Spectrum
from jpasbatch.spectra.units import (
    DEFAULT_FLUX_UNIT,
    error_scale,
    flux_scale,
    parse_unit,
    wavelength_to_angstrom,
)

__all__ = [
    "ReadOptions",
    "iter_spectra",
    "read_desi",
    "read_sdss",
    "read_spectra",
    "read_table",
]

PathLike = str | os.PathLike[str]

#: SDSS and DESI store flux in units of 1e-17 erg s-1 cm-2 A-1.
SURVEY_FLUX_UNIT = 1e-17

#: Accepted (lower-case) column names of plain tables, in order of preference.
WAVELENGTH_NAMES = ("wavelength", "wave", "lambda", "lam")
FLUX_NAMES = ("flux", "flux_lambda", "f_lambda", "flam")
IVAR_NAMES = ("ivar", "inverse_variance")
ERROR_NAMES = ("error", "err", "sigma", "flux_error", "flux_err")

_GZIP_MAGIC = b"\x1f\x8b"
_FITS_MAGIC = b"SIMPLE  ="
_PARQUET_MAGIC = b"PAR1"
_TABLE_FORMATS = "CSV, whitespace-separated ASCII, FITS table or Parquet"
_KNOWN_SUFFIXES = {".gz", ".fits", ".fit", ".fts", ".csv", ".txt", ".dat", ".ascii", ".parquet"}
# "# flux_unit: Jy", "# unit = 1e-17 erg/s/cm2/A", "# wavelength unit: nm"
_UNIT_COMMENT = re.compile(r"^(?:(\w+?)[ _])?unit\s*[:=]\s*(.+)$", re.IGNORECASE)


@dataclass(frozen=True)
class ReadOptions:
    """How spectra files are read (the defaults suit real survey files).

    Attributes
    ----------
    sdss_bad_bits
        SDSS ``and_mask`` bits that make a pixel bad (names of
        :data:`jpasbatch.spectra.masks.SPPIXMASK`); the default leaves out the
        informational bits such as ``BRIGHTSKY``.
    flux_unit
        Flux unit of plain tables whose file states none (astropy syntax).
    model_spectra
        Plain tables are noiseless model spectra (template libraries): any
        negative flux is an error. Off by default: a user's table is an
        observed spectrum, whose negative pixels are noise.
    """

    sdss_bad_bits: tuple[str, ...] = SDSS_BAD_BITS
    flux_unit: str = DEFAULT_FLUX_UNIT
    model_spectra: bool = False

    def __post_init__(self) -> None:
        sdss_bitmask(self.sdss_bad_bits)  # unknown bit names fail here, before any file
        parse_unit(self.flux_unit, Path("--flux-unit"), "flux")


# --------------------------------------------------------------------------- #
# Public API
# --------------------------------------------------------------------------- #


def read_spectra(path: PathLike, options: ReadOptions | None = None) -> list[Spectrum]:
    """Read every spectrum in one file, whatever its format.

    The format is decided from the content, not the name: a FITS file with a
    ``COADD`` HDU is read as SDSS, one with ``FIBERMAP`` and ``*_FLUX`` HDUs as
    DESI, anything else as a plain table. Gzipped files are decompressed.

    Parameters
    ----------
    path
        The file to read.
    options
        Masks, default flux unit, model spectra (see :class:`ReadOptions`).

    Returns
    -------
    list of Spectrum
        The spectra in file order.

    Raises
    ------
    InputError
        If the file is missing, empty, of an unknown format or fails validation.
    """
    path = _check_file(path)
    options = options or ReadOptions()
    if _head(path).startswith(_FITS_MAGIC):
        with _open_fits(path) as hdul:
            names = _hdu_names(hdul)
            if "COADD" in names or _unnamed_sdss(hdul):
                return _sdss_from_hdul(hdul, path, options)
            # A file with only one of FIBERMAP / *_FLUX is a damaged DESI coadd:
            # the DESI reader names what is missing better than a table reader.
            if "FIBERMAP" in names or _desi_arms(names):
                return _desi_from_hdul(hdul, path)
            return _fits_table(hdul, path, options)
    return _read_table_checked(path, options)


def iter_spectra(
    paths: PathLike | Iterable[PathLike], options: ReadOptions | None = None
) -> Iterator[Spectrum]:
    """Yield the spectra of many files, one file at a time.

    Parameters
    ----------
    paths
        File paths, read in order with :func:`read_spectra`. A single path is
        accepted too (and not iterated character by character).

    Yields
    ------
    Spectrum
        The spectra of each file in turn; only one file is held in memory.
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    for path in paths:
        yield from read_spectra(path, options)


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
    path = _check_file(path)
    with _open_fits(path) as hdul:
        return _sdss_from_hdul(hdul, path, options or ReadOptions())


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
    path = _check_file(path)
    with _open_fits(path) as hdul:
        return _desi_from_hdul(hdul, path)


def read_table(path: PathLike, options: ReadOptions | None = None) -> list[Spectrum]:
    """Read a plain (wavelength, flux[, ivar/error]) table.

    Parameters
    ----------
    path
        CSV, whitespace-separated ASCII (``#`` comments), ECSV, FITS table or
        Parquet file, optionally gzipped.
    options
        ``flux_unit`` for files that state no unit; ``model_spectra`` to refuse
        negative fluxes (template libraries).

    Returns
    -------
    list of Spectrum
        One spectrum, id = file stem, flux in erg s-1 cm-2 A-1 and wavelength
        in Angstrom, converted from the units the file states.

    Raises
    ------
    InputError
        If the file is missing, empty, not a known table, lacks a column, states
        a unit that is not a wavelength / spectral flux density, or fails
        validation. Negative fluxes are kept (noise) unless ``model_spectra``.

    Notes
    -----
    Columns are matched case-insensitively: wavelength from
    ``wavelength, wave, lambda, lam``; flux from
    ``flux, flux_lambda, f_lambda, flam``; optional noise from
    ``ivar, inverse_variance`` or a 1-sigma ``error, err, sigma, flux_error,
    flux_err`` (converted to ``ivar = 1/error**2``; an error of 0 carries no
    usable weight and gives ``ivar = 0``). Pixels with ``ivar == 0`` are
    masked. An ASCII file without a header line uses its first two columns as
    wavelength and flux (further columns are ignored), unless the last comment
    line just before the data names the columns (``# wavelength flux``).

    Units, in order: the column's own (FITS ``TUNIT``, Parquet/Arrow field
    metadata ``unit``, ECSV header, or a comment ``# flux_unit: Jy`` /
    ``# wavelength_unit: nm`` / ``# unit: ...`` for the flux), then a FITS
    ``BUNIT`` for the flux, then ``options.flux_unit`` (flux) and Angstrom
    (wavelength). Errors and ivar without a unit of their own follow the flux.
    """
    return _read_table_checked(_check_file(path), options or ReadOptions())


# --------------------------------------------------------------------------- #
# Files
# --------------------------------------------------------------------------- #


def _check_file(path: PathLike) -> Path:
    """Return ``path`` as a Path after checking it is a non-empty file."""
    path = Path(path)
    if not path.exists():
        raise InputError("file does not exist", path=path)
    if not path.is_file():
        raise InputError("is not a regular file (a directory?)", path=path)
    if path.stat().st_size == 0:
        raise InputError("file is empty (0 bytes)", path=path)
    return path


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(2) == _GZIP_MAGIC


def _head(path: Path, size: int = 2880) -> bytes:
    """First ``size`` bytes of the (decompressed) content, to sniff the format."""
    try:
        if _is_gzip(path):
            with gzip.open(path, "rb") as fh:
                head = fh.read(size)
        else:
            with path.open("rb") as fh:
                head = fh.read(size)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"gzip stream is truncated or corrupt ({exc})", path=path) from exc
    if not head:
        raise InputError("file is empty (decompresses to 0 bytes)", path=path)
    return head


def _read_bytes(path: Path) -> bytes:
    """The whole (decompressed) content of a file."""
    if not _is_gzip(path):
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as fh:
            return fh.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"gzip stream is truncated or corrupt ({exc})", path=path) from exc


def _content_size(path: Path) -> int:
    """Size of the decompressed content, streaming so a large file is never held.

    Streaming to the end also proves the gzip stream is complete: astropy
    silently drops the HDUs after the point where a ``.gz`` file was cut.
    """
    if not _is_gzip(path):
        return path.stat().st_size
    size = 0
    try:
        with gzip.open(path, "rb") as fh:
            while chunk := fh.read(1 << 22):
                size += len(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"gzip stream is truncated or corrupt ({exc})", path=path) from exc
    return size


def _stem(path: Path) -> str:
    """File name without ``.gz`` and format suffixes (``spec-1-2-3.fits.gz`` -> ``spec-1-2-3``)."""
    name = path.name
    while (suffix := Path(name).suffix.lower()) in _KNOWN_SUFFIXES and suffix:
        name = name[: -len(suffix)]
    return name or path.name


# --------------------------------------------------------------------------- #
# FITS access
# --------------------------------------------------------------------------- #


@contextmanager
def _open_fits(path: Path) -> Iterator[fits.HDUList]:
    """Open a FITS file, turning every kind of corruption into InputError.

    All headers are parsed up front and the file size is compared with the
    size the headers promise, because astropy only *warns* about (or silently
    ignores) a truncated file and fails much later with an unrelated message.
    """
    if not _head(path).startswith(_FITS_MAGIC):
        raise InputError(
            "not a FITS file (it does not start with a SIMPLE card); "
            f"expected an SDSS/DESI FITS spectrum or a {_TABLE_FORMATS}",
            path=path,
        )
    size = _content_size(path)
    try:
        with warnings.catch_warnings(record=True) as caught:
            # Recorded, not printed: astropy only warns when a header cannot be
            # parsed, then silently drops that HDU and all after it.
            warnings.simplefilter("always")
            hdul = fits.open(path, memmap=False, lazy_load_hdus=False)
    except (OSError, ValueError, EOFError, zlib.error) as exc:
        raise InputError(
            f"not a readable FITS file, corrupt or truncated ({exc})", path=path
        ) from exc
    with hdul:
        for warning in caught:
            if "Error validating header" in str(warning.message):
                raise InputError(
                    f"FITS file is truncated or corrupt: the header after HDU {len(hdul) - 1} "
                    "cannot be read, so the HDUs from there on are lost; re-download or "
                    "re-copy the file",
                    path=path,
                )
        last = hdul[-1]
        expected = last.fileinfo()["datLoc"] + last.size
        if size < expected:
            raise InputError(
                f"FITS file is truncated: it has {size} bytes but its headers describe "
                f"{expected} (HDU {len(hdul) - 1} {last.name!r} is incomplete); "
                "re-download or re-copy the file",
                path=path,
                column=last.name or None,
            )
        yield hdul


def _hdu_names(hdul: fits.HDUList) -> list[str]:
    return [hdu.name.upper() for hdu in hdul]


def _hdu(hdul: fits.HDUList, name: str, path: Path) -> fits.hdu.base.ExtensionHDU:
    """HDU ``name``, or InputError listing the HDUs that are there."""
    if name not in _hdu_names(hdul):
        raise InputError(
            f"missing HDU {name!r}; the file has HDUs {_hdu_names(hdul)} "
            "(wrong file type, or truncated?)",
            path=path,
            column=name,
        )
    return hdul[name]


def _hdu_data(hdu, path: Path):
    """The data of an HDU; read errors of a damaged file become InputError."""
    try:
        return hdu.data
    except (OSError, ValueError, EOFError, TypeError, zlib.error) as exc:
        raise InputError(
            f"cannot read the data of HDU {hdu.name!r}, the file is corrupt ({exc})",
            path=path,
            column=hdu.name,
        ) from exc


def _table_columns(hdu, path: Path) -> dict[str, str]:
    """Map lower-case column name -> actual name of a table HDU."""
    if not isinstance(hdu, fits.BinTableHDU | fits.TableHDU):
        raise InputError(f"HDU {hdu.name!r} is not a table", path=path, column=hdu.name)
    return {name.lower(): name for name in hdu.columns.names}


def _fits_column(hdu, data, name: str, path: Path, *, required: bool = True) -> np.ndarray | None:
    """Column ``name`` (case-insensitive) of table HDU ``hdu`` as a numpy array."""
    columns = _table_columns(hdu, path)
    if name.lower() not in columns:
        if not required:
            return None
        raise InputError(
            f"missing column {name!r} in HDU {hdu.name!r}; it has {list(columns.values())}",
            path=path,
            column=f"{hdu.name}.{name}",
        )
    return np.asarray(data[columns[name.lower()]])


def _image(hdul: fits.HDUList, name: str, path: Path) -> np.ndarray:
    return np.asarray(_hdu_data(_hdu(hdul, name, path), path))


# --------------------------------------------------------------------------- #
# Validation
# --------------------------------------------------------------------------- #


def _as_float(values, path: Path, column: str) -> np.ndarray:
    """Values as float64, or InputError naming the first non-number."""
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        pass
    values = np.asarray(values, dtype=object).ravel()
    for row, value in enumerate(values):
        try:
            float(value)
        except (TypeError, ValueError):
            raise InputError(
                f"value {value!r} is not a number", path=path, column=column, row=row
            ) from None
    raise InputError("column is not numeric", path=path, column=column)  # pragma: no cover


def _check_wavelength(wave: np.ndarray, path: Path, column: str) -> None:
    """Wavelengths must be 1-D, finite, positive and strictly increasing."""
    if wave.ndim != 1:
        raise InputError(
            f"wavelength must be one-dimensional, got shape {wave.shape}", path=path, column=column
        )
    bad = np.flatnonzero(~np.isfinite(wave))
    if bad.size:
        raise InputError(
            f"wavelength is {wave[bad[0]]} (not a finite number) at pixel {bad[0]}",
            path=path,
            column=column,
            row=int(bad[0]),
        )
    bad = np.flatnonzero(wave <= 0)
    if bad.size:
        raise InputError(
            f"wavelength {wave[bad[0]]:g} A at pixel {bad[0]} is not positive",
            path=path,
            column=column,
            row=int(bad[0]),
        )
    bad = np.flatnonzero(np.diff(wave) <= 0)
    if bad.size:
        i = int(bad[0]) + 1
        raise InputError(
            f"wavelength is not strictly increasing: pixel {i} ({wave[i]:.6g} A) does not "
            f"follow pixel {i - 1} ({wave[i - 1]:.6g} A); sort the spectrum and remove "
            "duplicate wavelengths",
            path=path,
            column=column,
            row=i,
        )


def _check_length(array: np.ndarray, n: int, path: Path, column: str, wave_column: str) -> None:
    """The last axis of ``array`` must match the ``n`` wavelengths."""
    if array.ndim == 0 or array.shape[-1] != n:
        length = "a scalar" if array.ndim == 0 else f"{array.shape[-1]} pixels"
        raise InputError(
            f"length mismatch: {column!r} has {length} but {wave_column!r} has {n}",
            path=path,
            column=column,
        )


def _check_pixels(
    wave: np.ndarray,
    flux: np.ndarray,
    ivar: np.ndarray | None,
    mask: np.ndarray | None,
    path: Path,
    *,
    flux_column: str,
    ivar_column: str | None,
    model: bool = False,
    labels: list[str] | None = None,
) -> None:
    """Check flux and ivar pixel by pixel; arrays are ``(L,)`` or ``(N, L)``.

    Negative fluxes are refused only for ``model`` spectra (noiseless
    templates); in observed spectra they are noise or sky residuals, kept as data.
    """
    flux2 = np.atleast_2d(flux)
    ivar2 = None if ivar is None else np.atleast_2d(ivar)
    masked = np.zeros(flux2.shape, dtype=bool) if mask is None else np.atleast_2d(mask)

    def where(k: int, i: int) -> str:
        # DESI files hold many spectra: say which one before the pixel.
        spectrum = f"{labels[k]}, " if labels else ""
        return f"{spectrum}pixel {i} ({wave[i]:.2f} A)"

    def first(bad: np.ndarray) -> tuple[int, int] | None:
        hits = np.argwhere(bad)
        return None if hits.size == 0 else (int(hits[0][0]), int(hits[0][1]))

    if ivar2 is not None:
        hit = first(ivar2 < 0)
        if hit:
            k, i = hit
            raise InputError(
                f"negative inverse variance ({ivar2[k, i]:g}) in {where(k, i)}; "
                "ivar must be >= 0 (0 marks a pixel without data)",
                path=path,
                column=ivar_column,
                row=i,
            )
        hit = first(~np.isfinite(ivar2) & ~masked)
        if hit:
            k, i = hit
            raise InputError(
                f"inverse variance is {ivar2[k, i]} (not a finite number) in {where(k, i)}, "
                "which is not masked",
                path=path,
                column=ivar_column,
                row=i,
            )
    hit = first(~np.isfinite(flux2) & ~masked)
    if hit:
        k, i = hit
        raise InputError(
            f"flux is {flux2[k, i]} (not a finite number) in {where(k, i)}, which is not "
            "masked; mask the pixel or set its ivar to 0",
            path=path,
            column=flux_column,
            row=i,
        )
    if model:
        hit = first(flux2 < 0)
        if hit:
            k, i = hit
            raise InputError(
                f"negative flux ({flux2[k, i]:g} erg/s/cm2/A) in {where(k, i)}; a model "
                "spectrum must be non-negative",
                path=path,
                column=flux_column,
                row=i,
            )


# --------------------------------------------------------------------------- #
# SDSS
# --------------------------------------------------------------------------- #


def _unnamed_sdss(hdul: fits.HDUList) -> bool:
    """An SDSS spec file whose HDU 1 has no EXTNAME (DR16 spec-lite as some tools copy
    them): recognised by its ``flux``, ``loglam`` and ``ivar`` columns."""
    if len(hdul) < 2 or not isinstance(hdul[1], fits.BinTableHDU) or hdul[1].name:
        return False
    return {"flux", "loglam", "ivar"} <= {c.lower() for c in hdul[1].columns.names}


def _sdss_from_hdul(hdul: fits.HDUList, path: Path, options: ReadOptions) -> list[Spectrum]:
    hdu = hdul[1] if _unnamed_sdss(hdul) else _hdu(hdul, "COADD", path)
    data = _hdu_data(hdu, path)
    _table_columns(hdu, path)  # fails clearly if COADD is an image
    if data is None or len(data) == 0:
        raise InputError("HDU 'COADD' has no rows (empty spectrum)", path=path, column="COADD")
    loglam = _as_float(_fits_column(hdu, data, "loglam", path), path, "COADD.loglam")
    flux = _as_float(_fits_column(hdu, data, "flux", path), path, "COADD.flux")
    ivar = _as_float(_fits_column(hdu, data, "ivar", path), path, "COADD.ivar")
    and_mask = _fits_column(hdu, data, "and_mask", path, required=False)

    wave = 10.0**loglam
    _check_wavelength(wave, path, "COADD.loglam")
    mask = ivar == 0
    if and_mask is not None:
        mask |= sdss_bad_pixels(and_mask, options.sdss_bad_bits)
    _check_pixels(wave, flux, ivar, mask, path, flux_column="COADD.flux", ivar_column="COADD.ivar")
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
    names = _hdu_names(hdul)
    hdu = None
    for name in ("SPECOBJ", "SPALL"):
        if name in names:
            hdu = hdul[name]
            break
    if hdu is None and len(hdul) > 2:
        hdu = hdul[2]
    if not isinstance(hdu, fits.BinTableHDU | fits.TableHDU):
        return None
    data = _hdu_data(hdu, path)
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
    return _stem(path)


# --------------------------------------------------------------------------- #
# DESI
# --------------------------------------------------------------------------- #


def _desi_arms(names: list[str]) -> list[str]:
    return [m.group(1) for name in names if (m := re.fullmatch(r"([A-Z0-9]+)_FLUX", name))]


def _desi_from_hdul(hdul: fits.HDUList, path: Path) -> list[Spectrum]:
    fibermap = _hdu(hdul, "FIBERMAP", path)
    fm_data = _hdu_data(fibermap, path)
    _table_columns(fibermap, path)
    if fm_data is None or len(fm_data) == 0:
        raise InputError("HDU 'FIBERMAP' has no rows (no spectra)", path=path, column="FIBERMAP")
    targetid = _fits_column(fibermap, fm_data, "TARGETID", path)
    n_spec = len(targetid)
    labels = [f"spectrum {k} (TARGETID {t})" for k, t in enumerate(targetid)]

    arm_names = _desi_arms(_hdu_names(hdul))
    if not arm_names:
        raise InputError(
            "no spectrograph arm found: expected HDUs B_FLUX, R_FLUX and/or Z_FLUX",
            path=path,
            column="B_FLUX",
        )
    arms = []
    for arm in arm_names:
        wcol = f"{arm}_WAVELENGTH"
        wave = _as_float(_image(hdul, wcol, path), path, wcol)
        _check_wavelength(wave, path, wcol)
        flux = _as_float(_image(hdul, f"{arm}_FLUX", path), path, f"{arm}_FLUX")
        ivar = _as_float(_image(hdul, f"{arm}_IVAR", path), path, f"{arm}_IVAR")
        if f"{arm}_MASK" in _hdu_names(hdul):
            mask = _image(hdul, f"{arm}_MASK", path) != 0
        else:
            mask = np.zeros(flux.shape, dtype=bool)
        for name, array in ((f"{arm}_FLUX", flux), (f"{arm}_IVAR", ivar), (f"{arm}_MASK", mask)):
            _check_length(array, wave.size, path, name, wcol)
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
        _check_pixels(
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
        if (values := _fits_column(fibermap, fm_data, name, path, required=False)) is not None
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


# --------------------------------------------------------------------------- #
# Plain tables
# --------------------------------------------------------------------------- #


def _pick(columns: list[str], names: tuple[str, ...]) -> str | None:
    """The first of ``columns`` (any case) whose name is in ``names``, by preference."""
    lower = {c.strip().lower(): c for c in reversed(columns)}
    for name in names:
        if name in lower:
            return lower[name]
    return None


def _read_table_checked(path: Path, options: ReadOptions) -> list[Spectrum]:
    head = _head(path)
    if head.startswith(_FITS_MAGIC):
        with _open_fits(path) as hdul:
            return _fits_table(hdul, path, options)
    if head.startswith(_PARQUET_MAGIC):
        return _parquet_table(path, options)
    return _text_table(path, options)


def _table_spectrum(
    path: Path,
    columns: dict[str, np.ndarray],
    location: str,
    options: ReadOptions,
    units: dict[str, str] | None = None,
    flux_unit: str | None = None,
) -> list[Spectrum]:
    """Build and validate the spectrum from named columns of any table format.

    ``columns`` maps the file's column names to values, ``units`` some of them
    to the unit the file states; ``flux_unit`` is a file-wide flux unit (FITS
    ``BUNIT``); ``location`` prefixes column names in errors (e.g. the FITS HDU).
    """
    units = {k: v for k, v in (units or {}).items() if v and v.strip()}
    names = list(columns)
    wcol = _pick(names, WAVELENGTH_NAMES)
    fcol = _pick(names, FLUX_NAMES)
    for found, kind, accepted in (
        (wcol, "wavelength", WAVELENGTH_NAMES),
        (fcol, "flux", FLUX_NAMES),
    ):
        if found is None:
            raise InputError(
                f"missing {kind} column: none of {list(accepted)} (any case) among the "
                f"columns {names}",
                path=path,
                column=f"{location}{kind}",
            )
    n_rows = len(columns[wcol])
    if n_rows == 0:
        raise InputError("table has no data rows", path=path, column=location.rstrip(".") or None)
    wave = _as_float(columns[wcol], path, f"{location}{wcol}")
    wave = wavelength_to_angstrom(wave, units.get(wcol), path, f"{location}{wcol}")
    flux = _as_float(columns[fcol], path, f"{location}{fcol}")
    _check_wavelength(wave, path, f"{location}{wcol}")
    unit = units.get(fcol) or flux_unit or options.flux_unit
    scale = flux_scale(wave, unit, path, f"{location}{fcol}")
    ivar = None
    ivar_label = None
    if (icol := _pick(names, IVAR_NAMES)) is not None:
        ivar_label = f"{location}{icol}"
        ivar = _as_float(columns[icol], path, ivar_label)
        ivar = ivar * error_scale(
            wave, scale, units.get(icol), inverse_variance=True, path=path, column=ivar_label
        )
    elif (ecol := _pick(names, ERROR_NAMES)) is not None:
        ivar_label = f"{location}{ecol}"
        error = _as_float(columns[ecol], path, ivar_label)
        bad = np.flatnonzero(error < 0)
        if bad.size:
            raise InputError(
                f"negative uncertainty ({error[bad[0]]:g}) at row {bad[0]}",
                path=path,
                column=ivar_label,
                row=int(bad[0]),
            )
        error = error * error_scale(
            wave, scale, units.get(ecol), inverse_variance=False, path=path, column=ivar_label
        )
        # An error of 0 (or inf) carries no usable weight: ivar 0, pixel masked.
        with np.errstate(divide="ignore", invalid="ignore"):
            ivar = np.where((error > 0) & np.isfinite(error), 1.0 / error**2, 0.0)
        ivar[np.isnan(error)] = np.nan
    flux = flux * scale
    mask = None if ivar is None else ivar == 0
    _check_pixels(
        wave,
        flux,
        ivar,
        mask,
        path,
        flux_column=f"{location}{fcol}",
        ivar_column=ivar_label,
        model=options.model_spectra,
    )
    return [
        Spectrum(
            id=_stem(path),
            wavelength=wave,
            flux=flux,
            ivar=ivar,
            mask=mask,
            meta={"source": str(path)},
        )
    ]


def _fits_table(hdul: fits.HDUList, path: Path, options: ReadOptions) -> list[Spectrum]:
    """The first table HDU that has wavelength and flux columns (else the first table)."""
    tables = [h for h in hdul if isinstance(h, fits.BinTableHDU | fits.TableHDU)]
    if not tables:
        raise InputError(
            f"FITS file has no table HDU (HDUs {_hdu_names(hdul)}); expected an SDSS COADD, "
            "a DESI coadd or a table with wavelength and flux columns",
            path=path,
        )
    chosen = tables[0]
    for hdu in tables:
        names = hdu.columns.names
        if _pick(names, WAVELENGTH_NAMES) and _pick(names, FLUX_NAMES):
            chosen = hdu
            break
    data = _hdu_data(chosen, path)
    names = chosen.columns.names
    if data is None or len(data) == 0:
        columns = {name: np.zeros(0) for name in names}
    else:
        columns = {name: np.asarray(data[name]) for name in names}
    units = {c.name: c.unit for c in chosen.columns if c.unit}
    bunit = chosen.header.get("BUNIT") or hdul[0].header.get("BUNIT")
    return _table_spectrum(path, columns, f"{chosen.name or 'HDU1'}.", options, units, bunit)


def _parquet_table(path: Path, options: ReadOptions) -> list[Spectrum]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = io.BytesIO(_read_bytes(path)) if _is_gzip(path) else path
    try:
        table = pq.read_table(source)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InputError(
            f"not a readable Parquet file, corrupt or truncated ({exc})", path=path
        ) from exc
    columns = {}
    for name in table.column_names:
        column = table.column(name)
        try:
            columns[name] = column.to_numpy()
        except (pa.ArrowException, ValueError, TypeError):
            # Nested/odd types: leave them to the numeric check if picked.
            columns[name] = np.asarray(column.to_pylist(), dtype=object)
    units = {
        f.name: f.metadata[b"unit"].decode()
        for f in table.schema
        if f.metadata and b"unit" in f.metadata
    }
    # astropy's Table.write(format="parquet") keeps units in its YAML header
    astropy_yaml = (table.schema.metadata or {}).get(b"table_meta_yaml")
    if astropy_yaml:
        units = _ecsv_units(astropy_yaml.decode().splitlines(), path) | units
    return _table_spectrum(path, columns, "", options, units)


def _ecsv_units(lines: list[str], path: Path) -> dict[str, str]:
    """Column units from an ECSV / astropy YAML header (lines without the ``# ``)."""
    from astropy.table.meta import get_header_from_yaml

    try:
        header = get_header_from_yaml(lines)
    except Exception as exc:  # astropy raises several YAML error types
        raise InputError(f"the ECSV/YAML table header is not readable ({exc})", path=path) from None
    return {c["name"]: str(c["unit"]) for c in header.get("datatype", []) if c.get("unit")}


def _text_table(path: Path, options: ReadOptions) -> list[Spectrum]:
    raw = _read_bytes(path)
    if b"\x00" in raw[:65536]:
        raise InputError(
            f"not a FITS file or a recognised table (binary content); expected {_TABLE_FORMATS}",
            path=path,
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"not a FITS file or a recognised table (not UTF-8 text: {exc}); "
            f"expected {_TABLE_FORMATS}",
            path=path,
        ) from exc

    # Keep the last comment before the data: ASCII model files often name
    # their columns there ("# wavelength flux").
    last_comment: str | None = None
    comments: list[str] = []  # the header comments, for units
    lines: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            if not lines:
                last_comment = stripped.lstrip("#").strip()
                comments.append(line.lstrip()[1:].removeprefix(" "))
            continue
        lines.append(stripped.split("#", 1)[0].strip())
    if not lines:
        raise InputError("table has no data rows (only comments or blank lines)", path=path)

    comma = "," in lines[0]

    def split(line: str) -> list[str]:
        if comma:
            return [field.strip() for field in next(csv.reader([line]))]
        return line.split()

    first = split(lines[0])
    if not all(_is_number(token) for token in first):
        header, body = first, lines[1:]
    else:
        body = lines
        named = split(last_comment) if last_comment else []
        # Only trust the comment as a header if it names the two columns we
        # need: free-text comments ("# made by hand") must not rename them.
        if len(named) == len(first) and _pick(named, WAVELENGTH_NAMES) and _pick(named, FLUX_NAMES):
            header = named
        else:
            # Headerless: the first two columns are wavelength and flux.
            if len(first) < 2:
                raise InputError(
                    "missing flux column: a headerless table needs at least two columns "
                    "(wavelength, flux)",
                    path=path,
                )
            header = ["wavelength", "flux"] + [f"col{j}" for j in range(2, len(first))]
    if not body:
        raise InputError("table has no data rows (a header only)", path=path)

    rows = []
    for row, line in enumerate(body):
        fields = split(line)
        if len(fields) != len(header):
            raise InputError(
                f"data row {row} has {len(fields)} values but the table has "
                f"{len(header)} columns {header}",
                path=path,
                row=row,
            )
        rows.append(fields)
    columns = {name: np.array([r[j] for r in rows], dtype=object) for j, name in enumerate(header)}
    return _table_spectrum(path, columns, "", options, _comment_units(comments, header, path))


def _comment_units(comments: list[str], header: list[str], path: Path) -> dict[str, str]:
    """Units stated in an ECSV header or in ``# <column>_unit: <unit>`` comments."""
    if comments and comments[0].startswith("%ECSV"):
        return _ecsv_units(comments[1:], path)
    units: dict[str, str] = {}
    for comment in comments:
        m = _UNIT_COMMENT.match(comment.strip())
        if m is None:
            continue
        name = (m.group(1) or "flux").lower()
        # "flux_unit" and "wavelength_unit" name the roles; other words a column
        for role in (WAVELENGTH_NAMES, FLUX_NAMES, IVAR_NAMES, ERROR_NAMES):
            if name in role and (column := _pick(header, role)) is not None:
                name = column
                break
        else:
            name = next((c for c in header if c.lower() == name), name)
        units[name] = m.group(2).strip()
    return units


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True
