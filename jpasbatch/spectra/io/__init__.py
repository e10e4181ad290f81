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

Modules: :mod:`~jpasbatch.spectra.io.sniff` (which format, :func:`read_spectra`),
:mod:`~jpasbatch.spectra.io.sdss`, :mod:`~jpasbatch.spectra.io.desi`,
:mod:`~jpasbatch.spectra.io.tables` (one per format), and their helpers
:mod:`~jpasbatch.spectra.io.files`, :mod:`~jpasbatch.spectra.io.fits`,
:mod:`~jpasbatch.spectra.io.validate`, :mod:`~jpasbatch.spectra.io.options`.
"""

from jpasbatch.spectra.io.desi import read_desi
from jpasbatch.spectra.io.options import ReadOptions
from jpasbatch.spectra.io.sdss import read_sdss
from jpasbatch.spectra.io.sniff import iter_spectra, read_spectra
from jpasbatch.spectra.io.tables import read_table

__all__ = [
    "ReadOptions",
    "iter_spectra",
    "read_desi",
    "read_sdss",
    "read_spectra",
    "read_table",
]
