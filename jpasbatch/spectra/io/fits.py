"""FITS helpers of the readers: open (gzipped or not), find an HDU, read a column, clearly."""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from astropy.io import fits

from jpasbatch.core.errors import InputError
from jpasbatch.spectra.io.files import FITS_MAGIC, TABLE_FORMATS, content_size, read_head


@contextmanager
def open_fits(path: Path) -> Iterator[fits.HDUList]:
    """Open a FITS file, turning every kind of corruption into InputError.

    All headers are parsed up front and the file size is compared with the
    size the headers promise, because astropy only *warns* about (or silently
    ignores) a truncated file and fails much later with an unrelated message.
    """
    if not read_head(path).startswith(FITS_MAGIC):
        raise InputError(
            "not a FITS file (it does not start with a SIMPLE card); "
            f"expected an SDSS/DESI FITS spectrum or a {TABLE_FORMATS}",
            path=path,
        )
    size = content_size(path)
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


def hdu_names(hdul: fits.HDUList) -> list[str]:
    return [hdu.name.upper() for hdu in hdul]


def find_hdu(hdul: fits.HDUList, name: str, path: Path) -> fits.hdu.base.ExtensionHDU:
    """HDU ``name``, or InputError listing the HDUs that are there."""
    if name not in hdu_names(hdul):
        raise InputError(
            f"missing HDU {name!r}; the file has HDUs {hdu_names(hdul)} "
            "(wrong file type, or truncated?)",
            path=path,
            column=name,
        )
    return hdul[name]


def hdu_data(hdu, path: Path):
    """The data of an HDU; read errors of a damaged file become InputError."""
    try:
        return hdu.data
    except (OSError, ValueError, EOFError, TypeError, zlib.error) as exc:
        raise InputError(
            f"cannot read the data of HDU {hdu.name!r}, the file is corrupt ({exc})",
            path=path,
            column=hdu.name,
        ) from exc


def table_columns(hdu, path: Path) -> dict[str, str]:
    """Map lower-case column name -> actual name of a table HDU."""
    if not isinstance(hdu, fits.BinTableHDU | fits.TableHDU):
        raise InputError(f"HDU {hdu.name!r} is not a table", path=path, column=hdu.name)
    return {name.lower(): name for name in hdu.columns.names}


def fits_column(hdu, data, name: str, path: Path, *, required: bool = True) -> np.ndarray | None:
    """Column ``name`` (case-insensitive) of table HDU ``hdu`` as a numpy array."""
    columns = table_columns(hdu, path)
    if name.lower() not in columns:
        if not required:
            return None
        raise InputError(
            f"missing column {name!r} in HDU {hdu.name!r}; it has {list(columns.values())}",
            path=path,
            column=f"{hdu.name}.{name}",
        )
    return np.asarray(data[columns[name.lower()]])


def read_image(hdul: fits.HDUList, name: str, path: Path) -> np.ndarray:
    return np.asarray(hdu_data(find_hdu(hdul, name, path), path))
