"""One reader for every format: the file's content, not its name, decides (:func:`read_spectra`)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from jpasbatch.spectra.io.desi import desi_arms, desi_from_hdul
from jpasbatch.spectra.io.files import FITS_MAGIC, PathLike, check_file, read_head
from jpasbatch.spectra.io.fits import hdu_names, open_fits
from jpasbatch.spectra.io.options import ReadOptions
from jpasbatch.spectra.io.sdss import sdss_from_hdul, unnamed_sdss
from jpasbatch.spectra.io.tables import fits_table, read_table_checked
from jpasbatch.spectra.spectrum import Spectrum


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
    path = check_file(path)
    options = options or ReadOptions()
    if read_head(path).startswith(FITS_MAGIC):
        with open_fits(path) as hdul:
            names = hdu_names(hdul)
            if "COADD" in names or unnamed_sdss(hdul):
                return sdss_from_hdul(hdul, path, options)
            # A file with only one of FIBERMAP / *_FLUX is a damaged DESI coadd:
            # the DESI reader names what is missing better than a table reader.
            if "FIBERMAP" in names or desi_arms(names):
                return desi_from_hdul(hdul, path)
            return fits_table(hdul, path, options)
    return read_table_checked(path, options)


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
