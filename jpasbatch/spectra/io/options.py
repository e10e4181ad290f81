"""How spectra files are read (:class:`ReadOptions`), and the surveys' flux unit."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jpasbatch.spectra.masks import SDSS_BAD_BITS, sdss_bitmask
from jpasbatch.spectra.units import (
    DEFAULT_FLUX_UNIT,
    parse_unit,
)

#: SDSS and DESI store flux in units of 1e-17 erg s-1 cm-2 A-1.
SURVEY_FLUX_UNIT = 1e-17


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
