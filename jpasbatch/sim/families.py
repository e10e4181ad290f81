"""The two spectral worlds: the emulated "observed" survey and the mocks.

* ``observed``: DESI redrock galaxy archetypes, redrock stellar archetypes, and
  redrock QSO eigenspectra (LOZ below z = 1.5, HIZ above) with random
  coefficient draws, all with Inoue+2014 IGM.
* ``simulated``: kcorrect galaxy templates, Pickles stars, and the SDSS QSO
  eigenspectra (redrock ``QSO-None``).

The two families differ the way simulations differ from a real survey, which is
what makes the sim-to-real gap real. Each world turns a population (class,
redshift, magnitude, subtype) into noiseless band fluxes normalised to the
object's rSDSS magnitude, plus the truth labels its templates define.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from jpasbatch.physics.photometry import SyntheticPhotometry, flux_to_ab
from jpasbatch.physics.templates import kcorrect_galaxies, pickles, redrock_basis
from jpasbatch.sim.sedgrid import BasisPhotometryGrid

WORLDS = ("observed", "simulated")
#: Rest-frame vacuum wavelengths of the lines whose equivalent widths are truth labels.
LINES = {"HALPHA": 6564.61, "HBETA": 4862.68, "OIII_5007": 5008.24, "NII_6584": 6585.27}
#: Representative effective temperatures per spectral class (K), for the STAR truth.
TEFF = {"O": 35000, "B": 15000, "A": 8500, "F": 6500, "G": 5600, "K": 4400, "M": 3200, "WD": 12000}
#: Scatter of the QSO PCA coefficients relative to the first component's norm.
QSO_COEFF_SCATTER = 0.15


def _cache_dir() -> Path:
    return Path(os.environ.get("JPASBATCH_CACHE", Path.home() / ".cache" / "jpasbatch"))


def cached_grid(
    wave: np.ndarray, basis: np.ndarray, z_grid: np.ndarray, igm: bool
) -> BasisPhotometryGrid:
    """A :class:`BasisPhotometryGrid`, computed once per machine and kept on disk.

    Keyed by the content of the basis and the grid, so a changed template or
    grid is never served stale.
    """
    key = hashlib.sha256()
    for arr in (wave, basis, z_grid):
        key.update(np.ascontiguousarray(arr, dtype=float).tobytes())
    key.update(str(igm).encode())
    path = _cache_dir() / f"sedgrid-{key.hexdigest()[:20]}.npz"
    if path.exists():
        data = np.load(path, allow_pickle=False)
        return BasisPhotometryGrid(data["z_grid"], data["fluxes"], list(data["bands"]))
    grid = BasisPhotometryGrid.build(wave, basis, z_grid, igm=igm)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, z_grid=grid.z_grid, fluxes=grid.fluxes, bands=np.array(grid.bands))
    os.replace(tmp, path)
    return grid


def _rebin(wave: np.ndarray, basis: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Block-average a finely sampled basis (0.1 A redrock) to a coarser step."""
    n = (wave.size // factor) * factor
    return wave[:n].reshape(-1, factor).mean(1), basis[:, :n].reshape(
        basis.shape[0], -1, factor
    ).mean(2)


def line_integrals(wave: np.ndarray, basis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per basis spectrum and line: flux above the continuum, and the continuum level.

    The line flux is integrated within +-5 A of the line; the continuum is the
    mean of two 40 A side bands. Both are linear in the spectrum, so for
    ``spectrum = coeff @ basis`` the equivalent width is
    ``(coeff @ flux) / (coeff @ cont)`` exactly (see :func:`equivalent_widths`).

    Returns
    -------
    flux, cont
        Arrays of shape ``(K, n_lines)``; NaN where the basis does not reach the line.
    """
    k = basis.shape[0]
    flux = np.full((k, len(LINES)), np.nan)
    cont = np.full((k, len(LINES)), np.nan)
    for j, lam in enumerate(LINES.values()):
        if lam + 60 > wave[-1] or lam - 60 < wave[0]:
            continue
        line = (wave > lam - 5) & (wave < lam + 5)
        side = ((wave > lam - 55) & (wave < lam - 15)) | ((wave > lam + 15) & (wave < lam + 55))
        cont[:, j] = basis[:, side].mean(axis=1)
        flux[:, j] = np.trapezoid(basis[:, line], wave[line], axis=1) - cont[:, j] * np.ptp(
            wave[line]
        )
    return flux, cont


def equivalent_widths(coeff: np.ndarray, integrals: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Rest-frame equivalent widths (A, emission positive), shape ``(N, n_lines)``."""
    flux, cont = integrals
    with np.errstate(invalid="ignore", divide="ignore"):
        return (coeff @ flux) / (coeff @ cont)


@dataclass
class _Linear:
    """A linear family: a basis, its photometry grid, and coefficient vectors to draw from."""

    wave: np.ndarray
    basis: np.ndarray
    grid: BasisPhotometryGrid

    def __post_init__(self) -> None:
        self.lines = line_integrals(self.wave, self.basis)


class World:
    """One spectral world (``observed`` or ``simulated``).

    Parameters
    ----------
    name
        ``"observed"`` or ``"simulated"``.
    fast
        Coarser redshift grids (for tests): ~4x faster to build, ~0.5% flux error.
    """

    def __init__(self, name: str, *, fast: bool = False) -> None:
        if name not in WORLDS:
            raise ValueError(f"world must be one of {WORLDS}, got {name!r}")
        self.name = name
        self.photometry = SyntheticPhotometry()
        self._r = self.photometry.bands.index("rSDSS")
        self._pivot = np.array([b.pivot_wavelength for b in self.photometry.system])
        step = 4 if fast else 1
        gz = np.arange(0.0, 1.6 + 1e-9, 0.004 * step)
        if name == "observed":
            w, b, extra = redrock_basis("galaxy-2016")
            w, b = _rebin(w, b, 10)
            self.galaxy = _Linear(w, b, cached_grid(w, b, gz, igm=False))
            self.galaxy_coeff = extra["ARCHETYPE_COEFF"]
            lw, lb, _ = redrock_basis("QSO-LOZ")
            hw, hb, _ = redrock_basis("QSO-HIZ")
            self.qso = [
                (
                    0.0,
                    1.5,
                    _Linear(
                        lw, lb, cached_grid(lw, lb, np.arange(0.1, 1.5 + 1e-9, 0.01 * step), True)
                    ),
                ),
                (
                    1.5,
                    6.0,
                    _Linear(
                        hw, hb, cached_grid(hw, hb, np.arange(1.5, 6.0 + 1e-9, 0.01 * step), True)
                    ),
                ),
            ]
            self.stars = self._redrock_stars()
        else:
            lib = kcorrect_galaxies()
            sel = (lib.wavelength > 900) & (lib.wavelength < 12000)
            # young (most mass remaining) first: _galaxy_coeff weights by position
            order = np.argsort(-lib.labels["mremain"].to_numpy())
            w, b = lib.wavelength[sel], lib.flux[order][:, sel]
            # per unit light at 5500 A, so that mixture weights are light fractions
            # (per unit mass the youngest template would outshine everything)
            b = b / b[:, (w > 5400) & (w < 5600)].mean(axis=1, keepdims=True)
            self.galaxy = _Linear(w, b, cached_grid(w, b, gz, igm=False))
            self.galaxy_coeff = None
            qw, qb, _ = redrock_basis("QSO-None")
            self.qso = [
                (
                    0.0,
                    6.0,
                    _Linear(
                        qw, qb, cached_grid(qw, qb, np.arange(0.1, 6.0 + 1e-9, 0.01 * step), True)
                    ),
                )
            ]
            self.stars = self._pickles_stars()

    # ------------------------------------------------------------------ stars
    def _redrock_stars(self) -> pd.DataFrame:
        rows = []
        for letter in ("B", "A", "F", "G", "K", "M", "WD"):
            w, b, extra = redrock_basis(f"STAR-{letter}")
            w, b = _rebin(w, b, 10)
            basis_flux = self.photometry(w, b).flux  # linear: archetype flux = coeff @ basis_flux
            flux = extra["ARCHETYPE_COEFF"] @ basis_flux
            rows.append(
                pd.DataFrame(
                    {"SPTYPE": letter, "TEMPLATE": np.arange(len(flux)), "FLUX": list(flux)}
                )
            )
        return pd.concat(rows, ignore_index=True)

    def _pickles_stars(self) -> pd.DataFrame:
        lib = pickles()
        flux = self.photometry(lib.wavelength, lib.flux).flux
        return pd.DataFrame(
            {"SPTYPE": lib.labels["sptype"], "TEMPLATE": np.arange(len(flux)), "FLUX": list(flux)}
        )

    # ------------------------------------------------------------------ objects
    def true_fluxes(
        self, pop: pd.DataFrame, rng: np.random.Generator
    ) -> tuple[np.ndarray, pd.DataFrame]:
        """Noiseless band fluxes (N, 60), normalised to ``MAG_R``, and truth labels.

        Parameters
        ----------
        pop
            Population rows with ``CLASS``, ``Z``, ``MAG_R``, ``SUBTYPE``.
        rng
            Random generator (template and coefficient draws).

        Returns
        -------
        flux, labels
            Fluxes in erg s-1 cm-2 A-1 and a frame with ``TEMPLATE``, ``TEFF`` and
            the line equivalent widths ``EW_<LINE>``.
        """
        n = len(pop)
        flux = np.full((n, len(self.photometry.bands)), np.nan)
        labels = pd.DataFrame(
            {"TEMPLATE": np.full(n, -1), "TEFF": np.full(n, np.nan)}
            | {f"EW_{k}": np.full(n, np.nan) for k in LINES}
        )
        cls = pop["CLASS"].to_numpy()
        z = pop["Z"].to_numpy(float)
        sub = pop["SUBTYPE"].to_numpy()
        stars = np.flatnonzero(cls == "STAR")
        self._draw_stars(stars, sub[stars], rng, flux, labels)
        gal = np.flatnonzero(cls == "GALAXY")
        if gal.size:
            coeff, template = self._galaxy_coeff(sub[gal], rng)
            flux[gal] = self.galaxy.grid(z[gal], coeff)
            labels.loc[gal, "TEMPLATE"] = template
            labels.loc[gal, [f"EW_{k}" for k in LINES]] = equivalent_widths(
                coeff, self.galaxy.lines
            )
        qso = np.flatnonzero(np.isin(cls, ["QSO_LOW", "QSO_HIGH"]))
        for lo, hi, fam in self.qso:
            sel = qso[(z[qso] >= lo) & (z[qso] < hi)]
            if sel.size:
                norms = np.linalg.norm(fam.basis, axis=1)
                coeff = np.c_[
                    np.ones(sel.size),
                    rng.normal(0, QSO_COEFF_SCATTER, (sel.size, norms.size - 1))
                    * norms[0]
                    / norms[1:],
                ]
                flux[sel] = fam.grid(
                    np.clip(z[sel], fam.grid.z_grid[0], fam.grid.z_grid[-1]), coeff
                )
                labels.loc[sel, [f"EW_{k}" for k in LINES]] = equivalent_widths(coeff, fam.lines)
        # scale each object to its magnitude in rSDSS
        target = (
            10 ** (-0.4 * (pop["MAG_R"].to_numpy(float) + 48.6))
            * 2.99792458e18
            / self._pivot[self._r] ** 2
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            flux *= (target / flux[:, self._r])[:, None]
        return flux, labels

    def _draw_stars(self, idx, subtype, rng, flux, labels) -> None:
        if idx.size == 0:
            return
        table = self.stars
        for letter in np.unique(subtype):
            sel = idx[subtype == letter]
            pool = table.index[table["SPTYPE"] == _nearest_type(letter, set(table["SPTYPE"]))]
            pick = rng.choice(pool, sel.size)
            flux[sel] = np.stack(table.loc[pick, "FLUX"].to_numpy())
            labels.loc[sel, "TEMPLATE"] = table.loc[pick, "TEMPLATE"].to_numpy()
            labels.loc[sel, "TEFF"] = TEFF.get(letter, np.nan)

    def _galaxy_coeff(
        self, subtype: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Coefficients per galaxy: an archetype (observed) or a Dirichlet mixture (simulated)."""
        n = subtype.size
        if self.galaxy_coeff is not None:
            pools = galaxy_type_pools(self.galaxy_coeff @ self.galaxy.basis, self.galaxy.wave)
            template = np.array([rng.choice(pools.get(s, pools["spiral"])) for s in subtype])
            return self.galaxy_coeff[template], template
        k = self.galaxy.basis.shape[0]
        coeff = np.stack([rng.dirichlet(kcorrect_alpha(s, k)) for s in subtype])
        return coeff, np.full(n, -1)

    def magnitudes(self, flux: np.ndarray) -> np.ndarray:
        """AB magnitudes of band fluxes."""
        return flux_to_ab(flux, self._pivot)


def galaxy_type_pools(spectra: np.ndarray, wave: np.ndarray) -> dict[str, np.ndarray]:
    """Archetype indices per galaxy type, ranked by the 4000 A break.

    The red-to-blue flux ratio across 4000 A splits the archetypes in thirds:
    star-bursts draw from the bluest third, spirals the middle, early types the reddest.
    """
    d4000 = spectra[:, (wave > 4000) & (wave < 4100)].mean(1) / spectra[
        :, (wave > 3850) & (wave < 3950)
    ].mean(1)
    thirds = np.array_split(np.argsort(d4000), 3)
    return {"starburst": thirds[0], "spiral": thirds[1], "early": thirds[2]}


def kcorrect_alpha(subtype: str, k: int) -> np.ndarray:
    """Dirichlet weights over ``k`` kcorrect templates ordered young to old, per galaxy type.

    Early types weight the old end, star-bursts the young end.
    """
    if subtype == "early":
        return np.geomspace(0.1, 5, k)
    if subtype == "starburst":
        return np.geomspace(5, 0.1, k)
    return np.ones(k)


def _nearest_type(letter: str, available: set[str]) -> str:
    order = ["O", "B", "A", "F", "G", "K", "M"]
    if letter in available:
        return letter
    if letter == "WD":  # no white dwarfs in Pickles: the hottest ones stand in
        return "A" if "A" in available else "B"
    i = order.index(letter)
    return min(available - {"WD"}, key=lambda s: abs(order.index(s) - i))


@cache
def world(name: str, fast: bool = False) -> World:
    """A cached :class:`World` (building one computes its photometry grids)."""
    return World(name, fast=fast)
