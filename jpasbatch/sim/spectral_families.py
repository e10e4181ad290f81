"""Spectral families for mocks: several independent template sets per class, randomised.

A real object belongs to none of the template sets a model is trained on, so the
mocks draw each object from one of several *families* (each a different origin:
an observed composite, a PCA basis, an archetype set, a stellar library) and
randomise its physics (dust, line strengths, host light, absorbers). Holding one
family out of training and testing on it is the project's proxy for meeting
the real sky (:mod:`jpasbatch.classify.transfer`).

Every spectrum is built in the rest frame on one log-lambda grid, then redshifted
through the J-PAS curves object by object (:class:`SyntheticPhotometry` with a
redshift per row), so effects that are not linear in template coefficients
(reddening, troughs, damped absorbers, the IGM) are exact.

=================  ======  =============================================================
family             class   spectra
=================  ======  =============================================================
star_pickles       STAR    Pickles (1998) library, 131 spectra incl. metal-rich/-weak
star_redrock       STAR    redrock B-M and white-dwarf archetypes (DESI), 3% CVs (PCA)
gal_kcorrect       GALAXY  kcorrect (Blanton & Roweis 2007) templates, Dirichlet mixtures
gal_redrock        GALAXY  redrock galaxy archetypes (DESI)
qso_sdss_pca       QSO     SDSS QSO eigenspectra (redrock ``QSO-None``), random coefficients
qso_redrock        QSO     redrock ``QSO-LOZ`` / ``QSO-HIZ`` eigenspectra
qso_composite      QSO     observed composites (Selsing+16, Vanden Berk+01, Francis+91)
                           modulated by the SDSS eigenspectra and a slope change
=================  ======  =============================================================

Randomised per object: stars CCM89 reddening, E(B-V) ~ Exp(0.04); galaxies
Calzetti reddening, E(B-V) ~ Exp(0.1), emission lines x LogNormal(0, 0.5); QSOs
SMC reddening, E(B-V) ~ Exp(0.05), host galaxy light (:func:`effects.draw_host_fraction`),
BAL troughs for 10% of z > 1.6, DLAs (:func:`effects.draw_dlas`), Inoue+14 IGM.
Template provenance and licences: ``jpasbatch/data/templates/*/PROVENANCE.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd

from jpasbatch.physics.igm import igm_transmission
from jpasbatch.physics.photometry import SyntheticPhotometry
from jpasbatch.physics.templates import _data_file, kcorrect_galaxies, pickles, redrock_basis
from jpasbatch.sim import effects
from jpasbatch.sim.families import TEFF, _nearest_type, galaxy_type_pools, kcorrect_alpha
from jpasbatch.sim.populations import _distances

#: Rest-frame grid: 400-12500 A in steps of dln(lambda) = 1e-3 (300 km/s, ~5 A at 5000 A,
#: fine for bands of ~145 A); 400 A reaches the bluest J-PAS band at z = 7.
GRID = np.exp(np.arange(np.log(400.0), np.log(12500.0), 1e-3))
CLASSES = ("STAR", "GALAXY", "QSO")
#: Scatter of PCA coefficients relative to the first component's norm (as the emulator's).
PCA_SCATTER = 0.15
EBV_MEAN = {"STAR": 0.04, "GALAXY": 0.1, "QSO": 0.05}
#: Galaxies' emission lines are scaled by LogNormal(0, LINE_SIGMA).
LINE_SIGMA = 0.5
BAL_FRACTION, BAL_Z_MIN = 0.10, 1.6
CV_FRACTION = 0.03
_CHUNK = 2000


def resample(wave: np.ndarray, flux: np.ndarray, grid: np.ndarray = GRID) -> np.ndarray:
    """Flux-conserving resampling of spectra ``(K, L)`` onto ``grid`` (bin averages).

    Outside the template's coverage the spectrum is held at the mean of its
    outermost 2% of pixels (J-PAS sees at most a few hundred A beyond some
    templates' ends at the edges of their redshift range).
    """
    flux = np.atleast_2d(np.asarray(flux, dtype=float))
    edges = np.r_[grid[0], np.sqrt(grid[1:] * grid[:-1]), grid[-1]]
    cum = np.zeros_like(flux)
    cum[:, 1:] = np.cumsum(0.5 * np.diff(wave) * (flux[:, 1:] + flux[:, :-1]), axis=1)
    e = np.clip(edges, wave[0], wave[-1])
    c = np.stack([np.interp(e, wave, row) for row in cum])
    width = np.diff(e)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.diff(c, axis=1) / width
    k = max(2, wave.size // 50)
    lo, hi = flux[:, :k].mean(1, keepdims=True), flux[:, -k:].mean(1, keepdims=True)
    out = np.where(grid < wave[0], lo, np.where(grid > wave[-1], hi, out))
    return np.where(width > 0, out, np.where(grid < wave[0], lo, hi))


# --------------------------------------------------------------------------- libraries
@cache
def _redrock(kind: str) -> tuple[np.ndarray, dict]:
    w, b, extra = redrock_basis(kind)
    return resample(w, b), extra


@cache
def _pickles() -> tuple[np.ndarray, pd.DataFrame]:
    lib = pickles()
    return resample(lib.wavelength, lib.flux), lib.labels


#: Continuum window for line scaling: 300 pixels (~35% in wavelength), wider than any line.
_CONTINUUM_PIXELS = 300


@cache
def _kcorrect() -> tuple[np.ndarray, np.ndarray]:
    """kcorrect templates per unit light at 5500 A, and their continua."""
    lib = kcorrect_galaxies()
    order = np.argsort(-lib.labels["mremain"].to_numpy())  # young first, as in the emulator
    b = resample(lib.wavelength, lib.flux[order])
    b = b / b[:, (GRID > 5400) & (GRID < 5600)].mean(1, keepdims=True)
    return b, effects.continuum(b, _CONTINUUM_PIXELS)


@cache
def _galaxy_archetypes() -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Redrock galaxy archetypes, their type pools and their continua."""
    basis, extra = _redrock("galaxy-2016")
    spec = extra["ARCHETYPE_COEFF"] @ basis
    return spec, galaxy_type_pools(spec, GRID), effects.continuum(spec, _CONTINUUM_PIXELS)


def _read_composite(name: str) -> tuple[np.ndarray, np.ndarray]:
    data = np.loadtxt(_data_file("templates", "qso_composites", name), comments="#")
    w, f = data[:, 0], data[:, 1]
    good = f > 0  # Selsing+16 stores masked pixels as 0
    return w[good], f[good]


def _splice(w: np.ndarray, f: np.ndarray, ext: tuple, lo: float, hi: float) -> tuple:
    """Extend (w, f) with ``ext`` scaled to match in [lo, hi], outside (w, f)'s coverage."""
    ew, ef = ext
    win = (w > lo) & (w < hi)
    ewin = (ew > lo) & (ew < hi)
    scale = np.median(f[win]) / np.median(ef[ewin])
    keep = (ew < w[0]) | (ew > w[-1])
    ww, ff = np.r_[ew[keep], w], np.r_[ef[keep] * scale, f]
    order = np.argsort(ww)
    return ww[order], ff[order]


@cache
def _composites() -> np.ndarray:
    """The observed composites on GRID, extended with Telfer+02 (UV) and Glikman+06 (IR)."""
    blue, red = _read_composite("Telfer2002.dat"), _read_composite("Glikman2006.dat")
    out = []
    for name in ("Selsing2015.dat", "VandenBerk2001.dat", "Francis1991.dat"):
        w, f = _read_composite(name)
        w, f = _splice(w, f, blue, w[0] + 10, w[0] + 150)
        w, f = _splice(w, f, red, 5600, 6200)
        spec = resample(w, f[None])[0]
        out.append(spec / spec[(GRID > 2950) & (GRID < 3050)].mean())
    return np.stack(out)


# --------------------------------------------------------------------------- families
@dataclass(frozen=True)
class Family:
    """One spectral family: the class it makes, a rest-frame spectrum builder, and
    where its templates come from (source and licence)."""

    name: str
    cls: str
    build: Callable[[pd.DataFrame, np.random.Generator], tuple[np.ndarray, ...]]
    description: str
    provenance: str


def _pca_coefficients(basis: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    norms = np.linalg.norm(basis, axis=1)
    scatter = rng.normal(0, PCA_SCATTER, (n, norms.size - 1)) * norms[0] / norms[1:]
    return np.c_[np.ones(n), scatter]


def _star_pickles(pop, rng):
    spec, labels = _pickles()
    types = labels["sptype"].to_numpy()
    out, tmpl = np.empty((len(pop), GRID.size)), np.empty(len(pop), int)
    sub = pop["SUBTYPE"].to_numpy()
    for letter in np.unique(sub):
        sel = np.flatnonzero(sub == letter)
        pool = np.flatnonzero(types == _nearest_type(letter, set(types)))
        tmpl[sel] = rng.choice(pool, sel.size)
    out[:] = spec[tmpl]
    return out, tmpl


def _star_redrock(pop, rng):
    sub = pop["SUBTYPE"].to_numpy()
    out, tmpl = np.empty((len(pop), GRID.size)), np.empty(len(pop), int)
    letters = ("B", "A", "F", "G", "K", "M", "WD")
    for letter in np.unique(sub):
        sel = np.flatnonzero(sub == letter)
        use = letter if letter in letters else _nearest_type(letter, set(letters) - {"WD"})
        basis, extra = _redrock(f"STAR-{use}")
        coeff = extra["ARCHETYPE_COEFF"]
        tmpl[sel] = rng.integers(0, coeff.shape[0], sel.size)
        out[sel] = coeff[tmpl[sel]] @ basis
    cv = np.flatnonzero(rng.random(len(pop)) < CV_FRACTION)
    if cv.size:  # cataclysmic variables: the CV eigenspectra, random coefficients
        basis, _ = _redrock("STAR-CV")
        out[cv] = np.clip(_pca_coefficients(basis, cv.size, rng) @ basis, 0, None)
        tmpl[cv] = -2
    return out, tmpl


def _gal_kcorrect(pop, rng):
    basis, cont = _kcorrect()
    sub = pop["SUBTYPE"].to_numpy()
    k = basis.shape[0]
    coeff = np.stack([rng.dirichlet(kcorrect_alpha(s, k)) for s in sub])
    # the continuum of a mixture as the mixture of continua (a running median per
    # object would cost ms each; the two differ only where templates' lines overlap)
    return coeff @ basis, np.full(len(pop), -1), coeff @ cont


def _gal_redrock(pop, rng):
    spec, pools, cont = _galaxy_archetypes()
    sub = pop["SUBTYPE"].to_numpy()
    tmpl = np.array([rng.choice(pools.get(s, pools["spiral"])) for s in sub])
    return spec[tmpl], tmpl, cont[tmpl]


def _qso_sdss_pca(pop, rng):
    basis, _ = _redrock("QSO-None")
    return _pca_coefficients(basis, len(pop), rng) @ basis, np.full(len(pop), -1)


def _qso_redrock(pop, rng):
    z = pop["Z"].to_numpy(float)
    out = np.empty((len(pop), GRID.size))
    for kind, sel in (("QSO-LOZ", z < 1.5), ("QSO-HIZ", z >= 1.5)):
        if sel.any():
            basis, _ = _redrock(kind)
            out[sel] = _pca_coefficients(basis, int(sel.sum()), rng) @ basis
    return out, np.where(z < 1.5, 0, 1)


def _qso_composite(pop, rng):
    comps = _composites()
    tmpl = rng.integers(0, comps.shape[0], len(pop))
    basis, _ = _redrock("QSO-None")
    coeff = _pca_coefficients(basis, len(pop), rng)
    coeff[:, 0] = 0.0
    # the eigenspectra's departures from their mean, as a relative modulation
    mean = np.maximum(basis[0], 0.05 * basis[0].max())
    modulation = np.clip(1 + coeff @ (basis / mean), 0.2, 5.0)
    slope = (GRID / 2500.0) ** rng.normal(0, 0.3, len(pop))[:, None]
    return comps[tmpl] * modulation * slope, tmpl


_REDROCK = "DESI redrock-templates, BSD-3-Clause (jpasbatch/data/templates/redrock)"
FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("star_pickles", "STAR", _star_pickles, "Pickles (1998) stellar library",
               "Pickles 1998 via speXtra, MIT (jpasbatch/data/templates/pickles)"),
        Family("star_redrock", "STAR", _star_redrock, "redrock stellar archetypes, WDs, CVs",
               _REDROCK),
        Family("gal_kcorrect", "GALAXY", _gal_kcorrect, "kcorrect template mixtures",
               "Blanton & Roweis 2007, the kcorrect package's data, BSD-3-Clause"),
        Family("gal_redrock", "GALAXY", _gal_redrock, "redrock galaxy archetypes", _REDROCK),
        Family("qso_sdss_pca", "QSO", _qso_sdss_pca, "SDSS QSO eigenspectra", _REDROCK),
        Family("qso_redrock", "QSO", _qso_redrock, "redrock QSO-LOZ/HIZ eigenspectra", _REDROCK),
        Family("qso_composite", "QSO", _qso_composite, "observed composites, modulated",
               "Selsing+16 et al., cite the papers (jpasbatch/data/templates/qso_composites)"),
    )
}  # fmt: skip


def class_of(cls: np.ndarray) -> np.ndarray:
    """STAR / GALAXY / QSO from the four-class labels."""
    cls = np.asarray(cls).astype(str)
    return np.where(np.char.startswith(cls, "QSO"), "QSO", cls)


def check_families(names: Sequence[str]) -> tuple[str, ...]:
    """Validate a family list: known names, at least one family per class."""
    unknown = sorted(set(names) - set(FAMILIES))
    if unknown:
        raise ValueError(f"unknown spectral families {unknown}; known: {sorted(FAMILIES)}")
    missing = [c for c in CLASSES if not any(FAMILIES[n].cls == c for n in names)]
    if missing:
        raise ValueError(f"families {list(names)} leave no family for class(es) {missing}")
    return tuple(dict.fromkeys(names))


# --------------------------------------------------------------------------- synthesis
@dataclass
class Effects:
    """Per-object draws of the randomised physics (NaN / False where not applied)."""

    ebv: np.ndarray
    line_factor: np.ndarray
    host_fraction: np.ndarray
    bal: np.ndarray
    dla_log_nhi: np.ndarray


def rest_spectra(
    family: str, pop: pd.DataFrame, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, Effects]:
    """Rest-frame spectra on :data:`GRID` of ``pop``'s objects from one family, randomised.

    Returns
    -------
    spectra, template, effects
        ``(N, len(GRID))`` f_lambda (arbitrary scale) after dust, host light and
        absorbers (the IGM is applied in :func:`band_fluxes`); the template index
        (-1 for mixtures, -2 for CVs); the draws.
    """
    fam = FAMILIES[family]
    n = len(pop)
    spec, tmpl, *cont = fam.build(pop, rng)
    fx = Effects(
        ebv=effects.draw_ebv(n, EBV_MEAN[fam.cls], rng),
        line_factor=np.full(n, np.nan),
        host_fraction=np.full(n, np.nan),
        bal=np.zeros(n, bool),
        dla_log_nhi=np.full(n, np.nan),
    )
    if fam.cls == "STAR":
        return effects.redden(spec, effects.ccm89(GRID), fx.ebv), tmpl, fx
    if fam.cls == "GALAXY":
        fx.line_factor = np.exp(rng.normal(0, LINE_SIGMA, n))
        spec = effects.scale_lines(spec, cont[0], fx.line_factor)
        return effects.redden(spec, effects.calzetti00(GRID), fx.ebv), tmpl, fx
    z = pop["Z"].to_numpy(float)
    spec = effects.redden(np.clip(spec, 0, None), effects.smc_pei92(GRID), fx.ebv)
    # host light under the QSO: a galaxy archetype, a fraction of the light at 5100 A
    dm, _ = _distances(z)
    fx.host_fraction = effects.draw_host_fraction(pop["MAG_R"].to_numpy(float) - dm, rng)
    gal = _galaxy_archetypes()[0]
    host = gal[rng.integers(0, gal.shape[0], n)]
    at = (GRID > 5050) & (GRID < 5150)
    f = fx.host_fraction
    scale = f / (1 - f) * spec[:, at].mean(1) / host[:, at].mean(1)
    spec = spec + scale[:, None] * host
    bal, v0, v1, depth = effects.draw_bals(n, BAL_FRACTION, rng)
    fx.bal = bal & (z > BAL_Z_MIN)
    if fx.bal.any():
        b = fx.bal
        spec[b] *= effects.bal_transmission(GRID, v0[b], v1[b], depth[b])
    has, z_abs, nhi = effects.draw_dlas(z, rng)
    for i in np.flatnonzero(has):
        spec[i] *= effects.dla_transmission(GRID, z[i], z_abs[i], nhi[i])
    fx.dla_log_nhi = nhi
    return spec, tmpl, fx


@cache
def _photometry() -> SyntheticPhotometry:
    return SyntheticPhotometry()


def band_fluxes(spectra: np.ndarray, z: np.ndarray, igm: bool) -> np.ndarray:
    """J-PAS band f_lambda ``(N, 60)`` of rest-frame spectra at redshifts ``z``.

    With ``igm``, the Inoue+14 mean transmission is applied, computed on a
    redshift grid of 0.005 (its change over 0.005 in z is far below the photometry's).
    """
    spectra = np.array(spectra, dtype=float)
    if igm:
        zq = np.round(np.asarray(z) / 0.005) * 0.005
        for zu in np.unique(zq[zq > 1.5]):
            sel = zq == zu
            spectra[sel] *= igm_transmission(GRID * (1 + zu), zu)[None, :]
    return _photometry()(GRID, spectra, z=np.asarray(z, dtype=float)).flux


class FamilyMix:
    """Mock objects drawn from a set of spectral families (uniformly within each class).

    Parameters
    ----------
    families
        Names from :data:`FAMILIES`; at least one per class.

    Examples
    --------
    >>> mix = FamilyMix(["star_pickles", "gal_redrock", "qso_composite"])
    >>> flux, labels = mix.true_fluxes(pop, rng)  # doctest: +SKIP
    """

    def __init__(self, families: Sequence[str]) -> None:
        self.families = check_families(families)
        sp = _photometry()
        self._r = sp.bands.index("rSDSS")
        self._pivot_r = sp.system[self._r].pivot_wavelength

    def assign(self, cls: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A family name per object, uniform among this mix's families of its class."""
        merged = class_of(cls)
        out = np.empty(merged.size, dtype=object)
        for c in CLASSES:
            names = [n for n in self.families if FAMILIES[n].cls == c]
            sel = merged == c
            out[sel] = np.array(names, dtype=object)[rng.integers(0, len(names), sel.sum())]
        return out

    def true_fluxes(
        self, pop: pd.DataFrame, rng: np.random.Generator
    ) -> tuple[np.ndarray, pd.DataFrame]:
        """Noiseless band fluxes (N, 60) normalised to ``MAG_R``, and per-object labels.

        Labels: ``FAMILY``, ``TEMPLATE``, ``TEFF`` (stars), ``EBV``, ``LINE_FACTOR``,
        ``HOST_FRACTION``, ``BAL``, ``DLA_LOG_NHI``.
        """
        n = len(pop)
        family = self.assign(pop["CLASS"].to_numpy(), rng)
        flux = np.full((n, len(_photometry().bands)), np.nan)
        labels = pd.DataFrame(
            {
                "FAMILY": family.astype(str),
                "TEMPLATE": np.full(n, -1),
                "TEFF": np.full(n, np.nan),
                "EBV": np.full(n, np.nan),
                "LINE_FACTOR": np.full(n, np.nan),
                "HOST_FRACTION": np.full(n, np.nan),
                "BAL": np.zeros(n, bool),
                "DLA_LOG_NHI": np.full(n, np.nan),
            }
        )
        z = pop["Z"].to_numpy(float)
        for name in self.families:
            idx = np.flatnonzero(family == name)
            for s in range(0, idx.size, _CHUNK):
                rows = idx[s : s + _CHUNK]
                spec, tmpl, fx = rest_spectra(name, pop.iloc[rows], rng)
                flux[rows] = band_fluxes(spec, z[rows], igm=FAMILIES[name].cls == "QSO")
                labels.loc[rows, "TEMPLATE"] = tmpl
                labels.loc[rows, "EBV"] = fx.ebv
                labels.loc[rows, "LINE_FACTOR"] = fx.line_factor
                labels.loc[rows, "HOST_FRACTION"] = fx.host_fraction
                labels.loc[rows, "BAL"] = fx.bal
                labels.loc[rows, "DLA_LOG_NHI"] = fx.dla_log_nhi
        stars = class_of(pop["CLASS"].to_numpy()) == "STAR"
        labels.loc[stars, "TEFF"] = [TEFF.get(s, np.nan) for s in pop["SUBTYPE"].to_numpy()[stars]]
        target = 10 ** (-0.4 * (pop["MAG_R"].to_numpy(float) + 48.6)) * 2.99792458e18
        target /= self._pivot_r**2
        with np.errstate(invalid="ignore", divide="ignore"):
            flux *= (target / flux[:, self._r])[:, None]
        return flux, labels
