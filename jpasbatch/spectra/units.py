"""Units of plain spectrum tables: read what the file says, convert to the readers' units.

Readers return wavelengths in Angstrom and f_lambda in erg s-1 cm-2 A-1. A
table may say its units in FITS ``TUNIT``/``BUNIT``, Arrow/Parquet field
metadata (``unit``), an ECSV header or a text comment (``# flux_unit: ...``);
otherwise the caller's default applies (``--flux-unit``). Any spectral flux
density :mod:`astropy.units` converts is accepted: f_lambda in any scale
(``1e-17 erg / (s cm2 Angstrom)``, ``W / (m2 nm)``), f_nu (``Jy``, ``erg / (s cm2
Hz)``) or photon flux. A unit that is not one is refused, naming file and column:
silently taking "counts" or magnitudes as erg/s/cm2/A is how a spectrum comes
out 40 magnitudes off.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import astropy.units as u
import numpy as np

from jpasbatch.core.errors import InputError

#: The readers' flux unit.
FLAM = u.erg / u.s / u.cm**2 / u.AA
#: The default unit of tables that state none (``--flux-unit``).
DEFAULT_FLUX_UNIT = "erg / (s cm2 Angstrom)"


def parse_unit(text: str, path: Path, column: str) -> u.UnitBase:
    """``text`` as an astropy unit, or InputError naming file and column."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy warns before it fails on FITS-style names
        for fmt in ("generic", "fits", "cds"):
            try:
                return u.Unit(text.strip(), format=fmt)
            except ValueError:
                continue
    raise InputError(f"unit {text!r} is not understood (astropy.units)", path=path, column=column)


def wavelength_to_angstrom(
    values: np.ndarray, unit: str | None, path: Path, column: str
) -> np.ndarray:
    """Wavelengths in Angstrom; ``unit`` None means Angstrom already."""
    if unit is None or not unit.strip():
        return values
    parsed = parse_unit(unit, path, column)
    try:
        return values * parsed.to(u.AA)
    except u.UnitConversionError:
        raise InputError(
            f"unit {unit!r} is not a wavelength (a length such as Angstrom, nm, um)",
            path=path,
            column=column,
        ) from None


def flux_scale(wave: np.ndarray, unit: str | u.UnitBase, path: Path, column: str) -> np.ndarray:
    """Per-pixel factor taking fluxes in ``unit`` to erg s-1 cm-2 A-1 at ``wave`` (Angstrom).

    f_lambda units give one constant factor; f_nu and photon fluxes a factor that
    depends on the wavelength (``astropy.units.spectral_density``). Fluxes are
    linear in these units, so the factor also scales the errors (and ``ivar`` by
    its inverse square).
    """
    parsed = parse_unit(unit, path, column) if isinstance(unit, str) else unit
    try:
        scale = (1.0 * parsed).to(FLAM, equivalencies=u.spectral_density(wave * u.AA))
    except u.UnitConversionError:
        raise InputError(
            f"unit {str(unit)!r} is not a spectral flux density (f_lambda such as "
            "'1e-17 erg / (s cm2 Angstrom)', or f_nu such as 'Jy'); give the flux in one, "
            "or --flux-unit for a file that states no unit",
            path=path,
            column=column,
        ) from None
    return np.broadcast_to(np.asarray(scale.value, dtype=float), wave.shape)


def error_scale(
    wave: np.ndarray,
    flux_factor: np.ndarray,
    unit: str | None,
    *,
    inverse_variance: bool,
    path: Path,
    column: str,
) -> np.ndarray:
    """Per-pixel factor for an error (or ivar) column, to the readers' units.

    An error column without its own unit is in the flux unit; an ivar column
    without one in the flux unit to the power -2.
    """
    if unit is None or not unit.strip():
        return flux_factor**-2 if inverse_variance else flux_factor
    parsed = parse_unit(unit, path, column)
    if inverse_variance:
        # ivar [U^-2]: U is then the unit of the error
        return flux_scale(wave, parsed ** (-0.5), path, column) ** -2
    return flux_scale(wave, unit, path, column)
