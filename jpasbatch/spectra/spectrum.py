"""The in-memory container every spectrum reader returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Spectrum:
    """One spectrum on its own wavelength grid.

    Attributes
    ----------
    id
        Identifier taken from the file (e.g. ``PLATE-MJD-FIBER`` or ``TARGETID``).
    wavelength
        Strictly increasing wavelengths, shape ``(L,)``, in Angstrom (vacuum,
        observer frame unless the source says otherwise).
    flux
        Flux density f_lambda, shape ``(L,)``, in erg s-1 cm-2 A-1.
    ivar
        Inverse variance of ``flux`` in (erg s-1 cm-2 A-1)^-2, or ``None``.
    mask
        Boolean bad-pixel mask, ``True`` where a pixel must not be used, or ``None``.
    meta
        Anything else the file says about the object (redshift, class, source file).
    """

    id: str
    wavelength: np.ndarray
    flux: np.ndarray
    ivar: np.ndarray | None = None
    mask: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    @property
    def good(self) -> np.ndarray:
        """Boolean array, ``True`` for pixels that may be used."""
        good = np.isfinite(self.flux)
        if self.mask is not None:
            good &= ~self.mask
        if self.ivar is not None:
            good &= self.ivar > 0
        return good
