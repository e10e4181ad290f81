"""Which pixel-mask bits of each survey mean "do not use this pixel".

SDSS/BOSS ``and_mask`` bits are the ``SPPIXMASK`` bits of the SDSS bitmask
documentation (``idlutils/data/sdss/sdssMaskbits.par``). Some are *bad* (the
flux or ``ivar`` of the pixel cannot be trusted); the others are informational:
``BRIGHTSKY`` in particular is set wherever the sky is brighter than the object,
which is the whole red OH-line forest of every faint object, while flux and
``ivar`` there are valid. Counting it as bad loses a third of the red bands of
real BOSS spectra, so only the named bad bits mask a pixel (and ``ivar == 0``,
which is how the pipeline marks a pixel without data).

DESI coadd ``MASK`` values are all bad (``mask != 0``), as redrock treats them.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from jpasbatch.core.errors import InputError

#: SDSS ``SPPIXMASK``: bit name -> bit number (bits 0-15 per fibre, 16-31 per pixel).
SPPIXMASK: dict[str, int] = {
    "NOPLUG": 0,
    "BADTRACE": 1,
    "BADFLAT": 2,
    "BADARC": 3,
    "MANYBADCOLUMNS": 4,
    "MANYREJECTED": 5,
    "LARGESHIFT": 6,
    "BADSKYFIBER": 7,
    "NEARWHOPPER": 8,
    "WHOPPER": 9,
    "SMEARIMAGE": 10,
    "SMEARHIGHSN": 11,
    "SMEARMEDSN": 12,
    "NEARBADPIXEL": 16,
    "LOWFLAT": 17,
    "FULLREJECT": 18,
    "PARTIALREJECT": 19,
    "SCATTEREDLIGHT": 20,
    "CROSSTALK": 21,
    "NOSKY": 22,
    "BRIGHTSKY": 23,
    "NODATA": 24,
    "COMBINEREJ": 25,
    "BADFLUXFACTOR": 26,
    "BADSKYCHI": 27,
    "REDMONSTER": 28,
}

#: The bits that make an SDSS pixel bad by default. Left out, as informational:
#: NEARBADPIXEL, LOWFLAT, PARTIALREJECT, SCATTEREDLIGHT, CROSSTALK, NOSKY (its
#: pixels have ivar = 0 anyway) and BRIGHTSKY.
SDSS_BAD_BITS: tuple[str, ...] = (
    "NOPLUG", "BADTRACE", "BADFLAT", "BADARC", "MANYBADCOLUMNS", "MANYREJECTED",
    "LARGESHIFT", "BADSKYFIBER", "NEARWHOPPER", "WHOPPER", "SMEARIMAGE", "SMEARHIGHSN",
    "SMEARMEDSN", "FULLREJECT", "NODATA", "COMBINEREJ", "BADFLUXFACTOR", "BADSKYCHI",
    "REDMONSTER",
)  # fmt: skip


def sdss_bitmask(names: Iterable[str]) -> int:
    """The integer mask of the named ``SPPIXMASK`` bits.

    Raises
    ------
    InputError
        If a name is not an ``SPPIXMASK`` bit (the message lists them).
    """
    value = 0
    for name in names:
        key = name.strip().upper()
        if key not in SPPIXMASK:
            raise InputError(
                f"{name!r} is not an SDSS SPPIXMASK bit; known bits: {', '.join(SPPIXMASK)}",
                column="sdss_bad_bits",
            )
        value |= 1 << SPPIXMASK[key]
    return value


def sdss_bad_pixels(and_mask: np.ndarray, bad_bits: Iterable[str] = SDSS_BAD_BITS) -> np.ndarray:
    """``True`` where ``and_mask`` has one of ``bad_bits`` set."""
    return (np.asarray(and_mask).astype(np.int64) & sdss_bitmask(bad_bits)) != 0
