"""Reader options on the command line, shared by every command that reads spectra files."""

from __future__ import annotations

import argparse

from jpasbatch.spectra.io.options import ReadOptions
from jpasbatch.spectra.masks import SDSS_BAD_BITS
from jpasbatch.spectra.units import DEFAULT_FLUX_UNIT


def add_read_options(p: argparse.ArgumentParser) -> None:
    """Reader options shared by the commands that read spectra files."""
    p.add_argument(
        "--flux-unit",
        default=DEFAULT_FLUX_UNIT,
        help="flux unit of plain tables that state none (astropy syntax, f_lambda or f_nu, "
        f"e.g. '1e-17 erg/(s cm2 Angstrom)' or 'Jy'; default '{DEFAULT_FLUX_UNIT}'); a unit "
        "the file states (FITS TUNIT/BUNIT, Parquet field metadata, ECSV, a '# flux_unit:' "
        "comment) wins",
    )
    p.add_argument(
        "--model-spectra",
        action="store_true",
        help="plain tables are noiseless model spectra: refuse negative fluxes (by default "
        "a table is an observed spectrum whose negative pixels are noise)",
    )
    p.add_argument(
        "--sdss-bad-bits",
        default=",".join(SDSS_BAD_BITS),
        help="SDSS and_mask bits that mask a pixel (comma-separated SPPIXMASK names; "
        "default: all but the informational ones such as BRIGHTSKY)",
    )


def read_options(args: argparse.Namespace) -> ReadOptions:
    """The :class:`~jpasbatch.spectra.io.ReadOptions` of :func:`_add_read_options`."""
    bits = tuple(b.strip() for b in args.sdss_bad_bits.split(",") if b.strip())
    return ReadOptions(
        sdss_bad_bits=bits, flux_unit=args.flux_unit, model_spectra=args.model_spectra
    )
