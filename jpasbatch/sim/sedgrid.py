"""Photometry of linear spectral bases on a redshift grid.

Every spectral family jpasbatch simulates is linear in a few basis spectra
(redrock PCA bases and archetype coefficients, kcorrect templates, QSO
eigenspectra), and synthetic photometry is linear in the spectrum. So the
band fluxes of any object are ``coeff @ G(z)``, where ``G(z)`` holds the
photometry of each basis spectrum at redshift z (with Inoue+2014 IGM
absorption). ``G`` is computed once on a fine z grid with the exact
per-object-redshift kernel and interpolated linearly in z: millions of objects
then cost one small contraction each instead of one spectrum integral each.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jpasbatch.physics.igm import igm_transmission
from jpasbatch.physics.photometry import SyntheticPhotometry


@dataclass
class BasisPhotometryGrid:
    """Band fluxes of ``K`` basis spectra on a redshift grid.

    Attributes
    ----------
    z_grid
        Redshifts, shape ``(Z,)``, increasing.
    fluxes
        Band-averaged f_lambda of each basis spectrum at each redshift, shape
        ``(Z, K, B)``; NaN where the basis spectrum does not cover a band.
    bands
        Band names, length ``B``.
    """

    z_grid: np.ndarray
    fluxes: np.ndarray
    bands: list[str]

    @classmethod
    def build(
        cls,
        wavelength: np.ndarray,
        basis: np.ndarray,
        z_grid: np.ndarray,
        photometry: SyntheticPhotometry | None = None,
        *,
        igm: bool = True,
        chunk: int = 64,
    ) -> BasisPhotometryGrid:
        """Compute the grid.

        Parameters
        ----------
        wavelength
            Rest-frame grid of the basis, Angstrom.
        basis
            Basis spectra (f_lambda), shape ``(K, L)``.
        z_grid
            Redshifts to tabulate.
        photometry
            The bands (default: J-PAS).
        igm
            Multiply each redshifted basis spectrum by the mean IGM transmission.
        chunk
            Redshifts per batch (bounds memory to ``chunk * K * L`` floats).
        """
        sp = photometry or SyntheticPhotometry()
        basis = np.atleast_2d(np.asarray(basis, dtype=float))
        z_grid = np.asarray(z_grid, dtype=float)
        k = basis.shape[0]
        out = np.empty((z_grid.size, k, len(sp.bands)))
        for s in range(0, z_grid.size, chunk):
            zs = z_grid[s : s + chunk]
            spectra = np.repeat(basis[None], zs.size, axis=0)  # (z, K, L)
            if igm:
                trans = np.stack([igm_transmission(wavelength * (1 + z), z) for z in zs])
                spectra = spectra * trans[:, None, :]
            res = sp(wavelength, spectra.reshape(-1, wavelength.size), z=np.repeat(zs, k))
            out[s : s + chunk] = res.flux.reshape(zs.size, k, -1)
        return cls(z_grid=z_grid, fluxes=out, bands=sp.bands)

    def __call__(self, z: np.ndarray, coeff: np.ndarray) -> np.ndarray:
        """Band fluxes ``(N, B)`` of objects with redshifts ``z`` (N,) and coefficients (N, K)."""
        z = np.asarray(z, dtype=float)
        if np.any(z < self.z_grid[0]) or np.any(z > self.z_grid[-1]):
            raise ValueError(
                f"redshifts outside the tabulated range [{self.z_grid[0]}, {self.z_grid[-1]}]"
            )
        i = np.clip(np.searchsorted(self.z_grid, z, side="right") - 1, 0, self.z_grid.size - 2)
        t = ((z - self.z_grid[i]) / (self.z_grid[i + 1] - self.z_grid[i]))[:, None, None]
        g = (1 - t) * self.fluxes[i] + t * self.fluxes[i + 1]  # (N, K, B)
        return np.einsum("nk,nkb->nb", np.asarray(coeff, dtype=float), g)
