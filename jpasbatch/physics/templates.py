"""Spectral template libraries: DESI redrock PCA bases, Pickles stars, kcorrect.

Every loader returns rest-frame spectra as a :class:`TemplateLibrary` (or, for
the raw redrock PCA bases, plain arrays). Sources and licences:

* ``jpasbatch/data/templates/redrock``: DESI redrock templates (BSD-3-Clause),
  PCA bases on rest-frame vacuum wavelengths, with archetype coefficients for
  stars and the 2016 galaxy set; see its ``PROVENANCE.md``.
* ``jpasbatch/data/templates/pickles``: the 131 Pickles (1998) stars, via speXtra (MIT).
* The ``kcorrect`` package (BSD-3-Clause, Blanton & Roweis 2007): its galaxy
  templates and the two BaSeL (Lejeune et al. 1997) model atmospheres it ships.

Readers of files are cached (``functools.lru_cache``) and return read-only
arrays, so that a caller cannot silently change what the next caller gets.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from importlib import resources, util
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from astropy.io import fits

from jpasbatch.core.errors import InputError

__all__ = [
    "ARCHETYPE_KINDS",
    "QSO_KINDS",
    "REDROCK_KINDS",
    "TemplateLibrary",
    "basel_stars",
    "bundled_demo_set",
    "kcorrect_galaxies",
    "parse_pickles_name",
    "pickles",
    "redrock_archetypes",
    "redrock_basis",
    "redrock_qso",
]

#: redrock template kind -> file name in ``data/templates/redrock``.
_REDROCK_FILES: dict[str, str] = {
    "QSO-LOZ": "rrtemplate-QSO-LOZ-v1.1.fits",
    "QSO-HIZ": "rrtemplate-QSO-HIZ-v1.1.fits",
    "QSO-None": "rrtemplate-QSO-None-v0.1.fits",
    **{f"STAR-{s}": f"rrtemplate-STAR-{s}-v0.1.fits" for s in ("A", "B", "F", "G", "K", "M")},
    "STAR-WD": "rrtemplate-STAR-WD-v0.1.fits",
    "STAR-CV": "rrtemplate-STAR-CV-v0.1.fits",
    "galaxy-2016": "rrtemplate-galaxy-2016.fits",
}
#: Every redrock kind :func:`redrock_basis` accepts.
REDROCK_KINDS: tuple[str, ...] = tuple(_REDROCK_FILES)
#: Kinds whose file carries ``ARCHETYPE_COEFF`` (see :func:`redrock_archetypes`).
ARCHETYPE_KINDS: tuple[str, ...] = (
    "STAR-A", "STAR-B", "STAR-F", "STAR-G", "STAR-K", "STAR-M", "STAR-WD", "galaxy-2016",
)  # fmt: skip
#: QSO PCA kinds (see :func:`redrock_qso`).
QSO_KINDS: tuple[str, ...] = ("QSO-LOZ", "QSO-HIZ", "QSO-None")

_REDROCK_META = {
    "source": "GitHub desihub/redrock-templates (see data/templates/redrock/PROVENANCE.md)",
    "licence": "BSD-3-Clause, (c) DESI Collaboration (LICENSE-redrock-templates.md)",
    "wavelength": "rest-frame vacuum Angstrom",
    "flux": "f_lambda, arbitrary normalisation (PCA reconstruction)",
}

# Pickles file stems: optional metallicity flag (r = metal-rich, w = metal-weak),
# spectral class letter, subclass digits (``12`` means the blend B1-2, ``2.5``
# is M2.5, ``10`` is M10), luminosity class in lower-case Roman numerals.
_PICKLES_RE = re.compile(r"^(?P<met>[rw]?)(?P<cls>[obafgkm])(?P<sub>\d+(?:\.\d+)?)(?P<lum>[iv]+)$")
_LUMINOSITY_CLASSES = ("i", "ii", "iii", "iv", "v")


@dataclass(frozen=True, eq=False)
class TemplateLibrary:
    """A set of rest-frame spectra on one wavelength grid.

    Attributes
    ----------
    name
        Short name of the set (``"pickles"``, ``"redrock-STAR-G"`` ...).
    wavelength
        Rest-frame wavelengths in Angstrom, shape ``(L,)``, strictly increasing.
        Vacuum for the redrock templates; the Pickles, kcorrect and BaSeL
        sources do not state air or vacuum, a difference (< 3 A in the optical)
        well below their 5-20 A resolution and the J-PAS band widths.
    flux
        Flux density f_lambda, shape ``(N, L)``; units in ``meta["flux"]``
        (arbitrary normalisation for PCA-derived spectra).
    labels
        One row per template (``N`` rows), e.g. spectral type, subtype, index.
    meta
        Provenance: source, files, licence, units.
    """

    name: str
    wavelength: np.ndarray
    flux: np.ndarray
    labels: pd.DataFrame
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        wave, flux = self.wavelength, self.flux
        if wave.ndim != 1 or np.any(np.diff(wave) <= 0):
            raise ValueError(f"{self.name}: wavelength must be 1-D and strictly increasing")
        if flux.ndim != 2 or flux.shape[1] != wave.size:
            raise ValueError(f"{self.name}: flux shape {flux.shape} does not match ({wave.size},)")
        if len(self.labels) != flux.shape[0]:
            raise ValueError(
                f"{self.name}: {len(self.labels)} label rows for {flux.shape[0]} spectra"
            )

    def __len__(self) -> int:
        return self.flux.shape[0]

    def subset(self, rows: Sequence[int] | np.ndarray) -> TemplateLibrary:
        """Return the templates at the given (0-based) positions, in that order."""
        rows = np.asarray(rows, dtype=int)
        return replace(
            self, flux=self.flux[rows], labels=self.labels.iloc[rows].reset_index(drop=True)
        )


# --------------------------------------------------------------------------- files


def _data_file(*parts: str) -> Path:
    """Path of a jpasbatch package data file, which must exist."""
    path = Path(str(resources.files("jpasbatch").joinpath("data", *parts)))
    if not path.is_file():
        raise InputError("package data file is missing (reinstall jpasbatch)", path=path)
    return path


def _kcorrect_file(*parts: str) -> Path:
    """Path of a data file of the installed ``kcorrect`` package, which must exist.

    The package is located without importing it: importing kcorrect pulls in
    matplotlib, and only its data files are needed here.
    """
    spec = util.find_spec("kcorrect")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("the kcorrect package is not installed (pip install kcorrect)")
    path = Path(next(iter(spec.submodule_search_locations)), "data", *parts)
    if not path.is_file():
        raise InputError("kcorrect data file is missing", path=path)
    return path


def _frozen(a: np.ndarray, dtype: type = float) -> np.ndarray:
    """A native-endian, read-only copy, safe to hand out from a cache."""
    out = np.array(a, dtype=dtype)
    out.flags.writeable = False
    return out


def _fresh(lib: TemplateLibrary) -> TemplateLibrary:
    """A copy of a cached library whose mutable parts (labels, meta) are new objects."""
    return replace(lib, labels=lib.labels.copy(), meta=dict(lib.meta))


# --------------------------------------------------------------------------- redrock


def _check_kind(kind: str, allowed: Sequence[str]) -> None:
    if kind not in allowed:
        raise ValueError(f"unknown template kind {kind!r}; choose one of {', '.join(allowed)}")


@functools.lru_cache(maxsize=len(_REDROCK_FILES))
def _read_redrock(kind: str) -> tuple[np.ndarray, np.ndarray, dict, dict]:
    path = _data_file("templates", "redrock", _REDROCK_FILES[kind])
    try:
        with fits.open(path) as hdul:
            hdr = hdul[0].header
            data = hdul[0].data
            if data is None or data.ndim != 2:
                raise InputError("BASIS_VECTORS is not a 2-D image", path=path, column="HDU0")
            # Copy now, while the file is open: astropy may memory-map the data.
            basis = np.array(data, dtype=float)
            n_wave = basis.shape[1]
            for key in ("CRVAL1", "CDELT1"):
                if key not in hdr:
                    raise InputError("missing wavelength keyword", path=path, column=key)
            # FITS WCS: pixel i (0-based) is at CRVAL1 + (i + 1 - CRPIX1) * CDELT1.
            pix = np.arange(n_wave) + 1.0 - float(hdr.get("CRPIX1", 1.0))
            grid = float(hdr["CRVAL1"]) + pix * float(hdr["CDELT1"])
            wave = 10.0**grid if hdr.get("LOGLAM", False) else grid
            extra = {
                h.name: _frozen(h.data)
                for h in hdul[1:]
                if h.name in ("ARCHETYPE_COEFF", "REDSHIFTS") and h.data is not None
            }
            header = {k: hdr.get(k) for k in ("RRTYPE", "RRSUBTYP", "RRVER", "INSPEC")}
    except InputError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"cannot read redrock template: {exc}", path=path) from exc
    if not np.all(np.isfinite(basis)):
        raise InputError("non-finite values in BASIS_VECTORS", path=path, column="HDU0")
    if np.any(np.diff(wave) <= 0):
        raise InputError("wavelength grid not increasing (CDELT1 <= 0)", path=path)
    coeff = extra.get("ARCHETYPE_COEFF")
    if coeff is not None and (coeff.ndim != 2 or coeff.shape[1] != basis.shape[0]):
        raise InputError(
            f"shape {coeff.shape} does not match {basis.shape[0]} basis vectors",
            path=path,
            column="ARCHETYPE_COEFF",
        )
    header["file"] = path.name
    return _frozen(wave), _frozen(basis), extra, header


def redrock_basis(kind: str) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Read a redrock PCA basis exactly as stored in its file.

    Parameters
    ----------
    kind
        One of :data:`REDROCK_KINDS`: ``"QSO-LOZ"``, ``"QSO-HIZ"``, ``"QSO-None"``,
        ``"STAR-A"``, ``"STAR-B"``, ``"STAR-F"``, ``"STAR-G"``, ``"STAR-K"``,
        ``"STAR-M"``, ``"STAR-WD"``, ``"STAR-CV"``, ``"galaxy-2016"``.

    Returns
    -------
    wavelength : numpy.ndarray
        Rest-frame vacuum Angstrom, shape ``(L,)``, from ``CRVAL1``/``CDELT1``
        (``LOGLAM=1``: a log10 grid, so ``10**(CRVAL1 + i * CDELT1)``).
    basis : numpy.ndarray
        ``BASIS_VECTORS``, shape ``(n_basis, L)``, as float64.
    extra : dict of numpy.ndarray
        The extra HDUs: ``ARCHETYPE_COEFF`` ``(n_archetype, n_basis)`` for
        stars A-WD and galaxy-2016, ``REDSHIFTS`` for QSO-LOZ/HIZ, else empty.

    All arrays are read-only (they are cached); copy them to modify.

    Raises
    ------
    InputError
        If the file is missing or malformed (the message names the file).
    """
    _check_kind(kind, REDROCK_KINDS)
    wave, basis, extra, _ = _read_redrock(kind)
    return wave, basis, dict(extra)


def _block_mean(a: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor`` consecutive pixels along the last axis, dropping the remainder."""
    n = a.shape[-1] // factor
    return a[..., : n * factor].reshape(*a.shape[:-1], n, factor).mean(axis=-1)


def _binned_basis(kind: str, rebin: int) -> tuple[np.ndarray, np.ndarray, dict, dict]:
    if not (isinstance(rebin, int | np.integer) and rebin >= 1):
        raise ValueError(f"rebin must be a positive integer, got {rebin!r}")
    wave, basis, extra, header = _read_redrock(kind)
    if rebin > 1:
        # Binning is linear, so binning the few basis vectors before the product
        # gives exactly the binned spectra at a fraction of the memory.
        wave, basis = _block_mean(wave, rebin), _block_mean(basis, rebin)
    return wave, basis, extra, header


def redrock_archetypes(
    kind: str, rows: Sequence[int] | np.ndarray | None = None, *, rebin: int = 1
) -> TemplateLibrary:
    """Reconstruct redrock archetype spectra as ``ARCHETYPE_COEFF @ BASIS_VECTORS``.

    Parameters
    ----------
    kind
        One of :data:`ARCHETYPE_KINDS` (``"STAR-A"`` ... ``"STAR-WD"``, ``"galaxy-2016"``).
    rows
        Archetype indices to build (default: all). The star files are large:
        all 20000 ``STAR-WD`` archetypes on the 0.1 A grid take 13 GB, so select
        rows or use ``rebin``.
    rebin
        Average this many consecutive pixels of the 0.1 A grid (e.g. 20 for 2 A
        pixels, ample for J-PAS bands of ~145 A).

    Returns
    -------
    TemplateLibrary
        Rest-frame vacuum wavelengths, f_lambda with the normalisation of the
        DESI basis templates (arbitrary). Labels: ``objtype`` (``STAR`` or
        ``GALAXY``), ``subtype`` (``A`` ... ``WD``, empty for galaxies) and
        ``index`` (row of ``ARCHETYPE_COEFF``).
    """
    _check_kind(kind, ARCHETYPE_KINDS)
    wave, basis, extra, header = _binned_basis(kind, rebin)
    coeff = extra["ARCHETYPE_COEFF"]
    index = np.arange(coeff.shape[0]) if rows is None else np.asarray(rows, dtype=int)
    if index.ndim != 1 or np.any((index < 0) | (index >= coeff.shape[0])):
        raise ValueError(f"rows must be 1-D indices in [0, {coeff.shape[0]})")
    labels = pd.DataFrame(
        {
            "objtype": str(header["RRTYPE"]).strip(),
            "subtype": str(header["RRSUBTYP"] or "").strip(),
            "index": index,
        }
    )
    meta = {**_REDROCK_META, "file": header["file"], "rebin": rebin}
    return TemplateLibrary(f"redrock-{kind}", wave, coeff[index] @ basis, labels, meta)


def redrock_qso(kind: str, coeffs: np.ndarray, *, rebin: int = 1) -> TemplateLibrary:
    """Build QSO spectra from redrock PCA coefficients.

    Parameters
    ----------
    kind
        One of :data:`QSO_KINDS`: ``"QSO-LOZ"``, ``"QSO-HIZ"``, ``"QSO-None"``.
    coeffs
        PCA coefficients, shape ``(N, n_basis)`` (or ``(n_basis,)`` for one
        spectrum); ``n_basis`` is 4 for every QSO kind.
    rebin
        Average this many consecutive pixels of the log-lambda grid.

    Returns
    -------
    TemplateLibrary
        ``coeffs @ BASIS_VECTORS`` on the rest-frame vacuum grid; labels
        ``objtype``, ``subtype`` (the kind), ``index`` and ``coeff_0`` ...
    """
    _check_kind(kind, QSO_KINDS)
    wave, basis, _, header = _binned_basis(kind, rebin)
    c = np.atleast_2d(np.asarray(coeffs, dtype=float))
    if c.ndim != 2 or c.shape[1] != basis.shape[0]:
        raise InputError(
            f"coeffs must have shape (N, {basis.shape[0]}), got {np.shape(coeffs)}",
            column="coeffs",
        )
    labels = pd.DataFrame({"objtype": "QSO", "subtype": kind, "index": np.arange(c.shape[0])})
    for i in range(c.shape[1]):
        labels[f"coeff_{i}"] = c[:, i]
    meta = {**_REDROCK_META, "file": header["file"], "rebin": rebin}
    return TemplateLibrary(f"redrock-{kind}", wave, c @ basis, labels, meta)


# --------------------------------------------------------------------------- Pickles


def parse_pickles_name(name: str) -> dict:
    """Parse a Pickles file stem into spectral-type labels.

    Parameters
    ----------
    name
        File stem such as ``"g2v"``, ``"b12iii"``, ``"m2.5v"`` or ``"rk0v"``.

    Returns
    -------
    dict
        ``name``; ``sptype`` (upper-case class letter); ``subclass`` (float, the
        middle of a blend such as B1-2 -> 1.5); ``subclass_min`` and
        ``subclass_max``; ``lumclass`` (upper-case Roman numeral);
        ``metallicity`` (``"solar"``, ``"rich"`` for ``r*`` or ``"weak"`` for ``w*``).

    Raises
    ------
    ValueError
        If the name does not follow the Pickles pattern.
    """
    m = _PICKLES_RE.match(name)
    if m is None or m["lum"] not in _LUMINOSITY_CLASSES:
        raise ValueError(f"not a Pickles spectrum name: {name!r}")
    sub = m["sub"]
    # Two digits in increasing order are a blend of two subclasses (b12 = B1-2,
    # k01 = K0-1); otherwise the digits are the subclass itself (m10 = M10).
    if len(sub) == 2 and int(sub[0]) < int(sub[1]):
        lo, hi = float(sub[0]), float(sub[1])
    else:
        lo = hi = float(sub)
    return {
        "name": name,
        "sptype": m["cls"].upper(),
        "subclass": (lo + hi) / 2,
        "subclass_min": lo,
        "subclass_max": hi,
        "lumclass": m["lum"].upper(),
        "metallicity": {"": "solar", "r": "rich", "w": "weak"}[m["met"]],
    }


@functools.lru_cache(maxsize=1)
def _pickles() -> TemplateLibrary:
    index_path = _data_file("templates", "pickles", "index.yml")
    try:
        with open(index_path, encoding="utf-8") as fh:
            items = list(yaml.safe_load(fh)["items"])
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise InputError(f"cannot read the Pickles index: {exc}", path=index_path) from exc
    wave = None
    fluxes, rows = [], []
    for name in items:
        path = _data_file("templates", "pickles", f"{name}.fits")
        try:
            with fits.open(path) as hdul:
                w = np.array(hdul[1].data["WAVELENGTH"], dtype=float)
                f = np.array(hdul[1].data["FLUX"], dtype=float)
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise InputError(f"cannot read Pickles spectrum: {exc}", path=path) from exc
        if wave is None:
            wave = w
        elif w.shape != wave.shape or np.any(w != wave):
            raise InputError("wavelength grid differs from the other Pickles files", path=path)
        if not np.all(np.isfinite(f)):
            raise InputError("non-finite flux", path=path, column="FLUX")
        try:
            rows.append(parse_pickles_name(name))
        except ValueError as exc:
            raise InputError(str(exc), path=index_path, column="items") from exc
        fluxes.append(f)
    if wave is None or np.any(np.diff(wave) <= 0):
        raise InputError("no spectra, or wavelengths not increasing", path=index_path)
    meta = {
        "source": "GitHub AstarVienna/speXtra database/libraries/pickles",
        "reference": "Pickles, A. J. 1998, PASP 110, 863",
        "licence": "MIT (speXtra, LICENSE-speXtra.txt)",
        "files": [f"{n}.fits" for n in items],
        "wavelength": "Angstrom, 5 A step",
        "flux": "f_lambda, normalised to 1 near 5556 A (file unit erg/s/cm2/A)",
    }
    return TemplateLibrary(
        "pickles", _frozen(wave), _frozen(np.stack(fluxes)), pd.DataFrame(rows), meta
    )


def pickles() -> TemplateLibrary:
    """The 131 Pickles (1998) stellar spectra, 1150-25000 A at 5 A steps.

    Returns
    -------
    TemplateLibrary
        f_lambda as tabulated (normalised to unity near 5556 A, so a relative
        flux despite the erg/s/cm2/A unit in the files). Labels from the file
        names (see :func:`parse_pickles_name`): ``name``, ``sptype``,
        ``subclass``, ``subclass_min``, ``subclass_max``, ``lumclass``,
        ``metallicity``. Order as listed in ``index.yml``.
    """
    return _fresh(_pickles())


# --------------------------------------------------------------------------- kcorrect

_KCORRECT_SETS = {"default": "kcorrect-default-v4.fits", "lrg1": "kcorrect-lrg1-v4.fits"}


@functools.lru_cache(maxsize=len(_KCORRECT_SETS))
def _kcorrect_galaxies(which: str) -> TemplateLibrary:
    path = _kcorrect_file("templates", _KCORRECT_SETS[which])
    try:
        with fits.open(path) as hdul:
            table = hdul["FLUX"].data
            wave = np.array(table["wave"][0], dtype=float)
            flux = np.array(table["flux"][0], dtype=float).reshape(-1, wave.size)
            labels = pd.DataFrame({"index": np.arange(flux.shape[0])})
            for ext in ("INTSFH", "MREMAIN", "METS", "M50", "M300", "M1000"):
                if ext in hdul:
                    labels[ext.lower()] = np.array(hdul[ext].data, dtype=float)
    except (OSError, KeyError, ValueError, TypeError, IndexError) as exc:
        raise InputError(f"cannot read kcorrect templates: {exc}", path=path) from exc
    if np.any(np.diff(wave) <= 0) or not np.all(np.isfinite(flux)):
        raise InputError("wavelengths not increasing or non-finite flux", path=path)
    meta = {
        "source": f"PyPI kcorrect, data/templates/{path.name}",
        "reference": "Blanton & Roweis 2007, AJ 133, 734",
        "licence": "BSD-3-Clause (kcorrect)",
        "file": str(path),
        "wavelength": "rest-frame Angstrom",
        "flux": "erg/s/cm2/A at 10 pc per solar mass formed (intsfh)",
    }
    return TemplateLibrary(f"kcorrect-{which}", _frozen(wave), _frozen(flux), labels, meta)


def kcorrect_galaxies(which: str = "default") -> TemplateLibrary:
    """Galaxy templates shipped with the ``kcorrect`` package (v4 sets).

    Parameters
    ----------
    which
        ``"default"`` (``kcorrect-default-v4.fits``: the 5 templates kcorrect fits
        by default) or ``"lrg1"`` (``kcorrect-lrg1-v4.fits``: 1 luminous red
        galaxy template).

    Returns
    -------
    TemplateLibrary
        10000 log-spaced wavelengths from 600 A to 3.2e6 A (rest frame, Angstrom,
        as stored); f_lambda in erg/s/cm2/A, the flux the population would have at
        10 pc per solar mass formed (the file's units; kcorrect's ``SED`` class
        documents them; zero beyond 1.6e6 A). Labels: ``index``, and the
        per-template ``intsfh`` (mass formed, Msun), ``mremain`` (mass left in stars
        and remnants), ``mets`` (metallicity), ``m300`` and ``m1000`` (mass formed
        in the last 0.3 and 1 Gyr).
    """
    if which not in _KCORRECT_SETS:
        raise ValueError(f"which must be one of {tuple(_KCORRECT_SETS)}, got {which!r}")
    return _fresh(_kcorrect_galaxies(which))


#: BaSeL models shipped with kcorrect: name -> file in kcorrect/data/basel.
_BASEL_FILES = {"sun": "lcbsun.ori", "vega": "lcbvega.ori"}
_BASEL_NWAVE = 1221  # fixed by the BaSeL format (ReadMe of Lejeune et al. 1997)
_C_ANGSTROM = 2.99792458e18  # speed of light in Angstrom / s


@functools.lru_cache(maxsize=1)
def _basel_stars() -> TemplateLibrary:
    waves, fluxes, rows = [], [], []
    for name, fname in _BASEL_FILES.items():
        path = _kcorrect_file("basel", fname)
        try:
            words = np.array(path.read_text().split(), dtype=float)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read BaSeL model: {exc}", path=path) from exc
        # Layout: 1221 wavelengths [nm], then per model 6 numbers (model number,
        # Teff, log g, [M/H], v_turb, mixing length) and 1221 values of H_nu.
        if words.size != 2 * _BASEL_NWAVE + 6:
            raise InputError(
                f"expected one model of {_BASEL_NWAVE} points, got {words.size} numbers",
                path=path,
            )
        lam = words[:_BASEL_NWAVE] * 10.0  # nm -> Angstrom
        h_nu = words[_BASEL_NWAVE + 6 :]
        # H_nu is the Eddington flux moment in erg/s/cm2/Hz; the surface flux is
        # F_nu = 4 pi H_nu, and F_lambda = F_nu c / lambda^2 (as kcorrect does).
        # The ReadMe's factor 0.4 (= 4 x 0.1) gives the "astrophysical" flux F/pi.
        fluxes.append(4.0 * np.pi * h_nu * _C_ANGSTROM / lam**2)
        waves.append(lam)
        modelno, teff, logg, mh, vturb, xh = words[_BASEL_NWAVE : _BASEL_NWAVE + 6]
        rows.append(
            {
                "name": name,
                "modelno": int(modelno),
                "teff": teff,
                "logg": logg,
                "mh": mh,
                "vturb": vturb,
                "xh": xh,
            }
        )
    if any(np.any(w != waves[0]) for w in waves) or np.any(np.diff(waves[0]) <= 0):
        raise InputError("BaSeL wavelength grids differ or are not increasing", path=path)
    meta = {
        "source": "PyPI kcorrect, data/basel (Lejeune, Cuisinier & Buser 1997, A&AS 125, 229)",
        "licence": "BSD-3-Clause (kcorrect); BaSeL models public (CDS J/A+AS/125/229)",
        "files": list(_BASEL_FILES.values()),
        "wavelength": "Angstrom (file: nm)",
        "flux": "surface flux f_lambda = 4 pi H_nu c / lambda^2, erg/s/cm2/A",
    }
    return TemplateLibrary(
        "basel", _frozen(waves[0]), _frozen(np.stack(fluxes)), pd.DataFrame(rows), meta
    )


def basel_stars() -> TemplateLibrary:
    """The BaSeL 2.0 model atmospheres shipped with ``kcorrect``: the Sun and Vega.

    kcorrect ships only ``lcbsun.ori`` (Kurucz Sun, Teff 5777 K, log g 4.44) and
    ``lcbvega.ori`` (Vega, 9400 K, log g 3.90, [M/H] -0.5), which it uses for
    solar magnitudes and Vega-AB offsets; its ``models.dat`` lists the
    parameters of all 8315 BaSeL models but their spectra are not included.

    Returns
    -------
    TemplateLibrary
        1221 wavelengths from 91 A to 1.6e6 A; f_lambda is the stellar *surface*
        flux in erg/s/cm2/A (``4 pi H_nu c / lambda^2``, so its integral is
        sigma Teff^4); scale by (R / d)^2 for an observed flux. Labels: ``name``,
        ``modelno``, ``teff``, ``logg``, ``mh``, ``vturb``, ``xh``.
    """
    return _fresh(_basel_stars())


# --------------------------------------------------------------------------- demo set

#: Common grid of the demo set: the Pickles 5 A grid extended down to 450 A so
#: that QSO spectra keep their Lyman-alpha forest and Lyman limit.
_DEMO_WAVE = np.arange(450.0, 25000.0 + 1.0, 5.0)
_DEMO_STARS = ("o5v", "b3v", "a0v", "f5v", "g2v", "k0iii", "k5v", "m2v", "m5v")
_DEMO_N_GALAXIES = 8


def _rebin(wave: np.ndarray, flux: np.ndarray, new_wave: np.ndarray) -> np.ndarray:
    """Flux-conserving average of ``flux`` over bins centred on ``new_wave``.

    The running integral of the (trapezoid-interpolated) spectrum is
    interpolated at the bin edges, so a bin's value is the mean f_lambda over it.
    Bins not wholly inside ``wave`` get NaN.
    """
    mid = 0.5 * (new_wave[1:] + new_wave[:-1])
    edges = np.concatenate([[2 * new_wave[0] - mid[0]], mid, [2 * new_wave[-1] - mid[-1]]])
    steps = 0.5 * (flux[..., 1:] + flux[..., :-1]) * np.diff(wave)
    cum = np.concatenate([np.zeros((*flux.shape[:-1], 1)), np.cumsum(steps, axis=-1)], axis=-1)
    out = np.stack([np.interp(edges, wave, c) for c in np.atleast_2d(cum)])
    out = np.diff(out, axis=-1) / np.diff(edges)
    outside = (edges[:-1] < wave[0]) | (edges[1:] > wave[-1])
    out[:, outside] = np.nan
    return out.reshape(*flux.shape[:-1], new_wave.size)


def _mean_in(wave: np.ndarray, flux: np.ndarray, lo: float, hi: float) -> np.ndarray:
    sel = (wave >= lo) & (wave <= hi)
    return flux[..., sel].mean(axis=-1)


@functools.lru_cache(maxsize=1)
def _demo_set() -> TemplateLibrary:
    wave = _DEMO_WAVE
    fluxes, rows = [], []

    # Stars: Pickles spectra sit on the same 5 A nodes, so interpolation is exact.
    star_lib = _pickles()
    by_name = {n: i for i, n in enumerate(star_lib.labels["name"])}
    for name in _DEMO_STARS:
        f = np.interp(wave, star_lib.wavelength, star_lib.flux[by_name[name]], np.nan, np.nan)
        fluxes.append(f)
        lab = star_lib.labels.iloc[by_name[name]]
        rows.append(
            {
                "id": f"star-pickles-{name}",
                "objtype": "STAR",
                "subtype": f"{lab.sptype}{lab.subclass:g}{lab.lumclass}",
                "source": "pickles",
                "source_index": by_name[name],
            }
        )

    # Galaxies: archetypes spanning the range of the 4000 A break strength
    # (D4000n: mean flux 4000-4100 A over 3850-3950 A), from star-forming to passive.
    rr_wave, basis, extra, _ = _read_redrock("galaxy-2016")
    gal = extra["ARCHETYPE_COEFF"] @ _rebin(rr_wave, basis, wave)
    d4000 = _mean_in(wave, gal, 4000, 4100) / _mean_in(wave, gal, 3850, 3950)
    order = np.argsort(d4000)
    picks = order[np.linspace(0, order.size - 1, _DEMO_N_GALAXIES).round().astype(int)]
    for i in picks:
        fluxes.append(gal[i] / _mean_in(wave, gal[i], 5450, 5650))
        rows.append(
            {
                "id": f"galaxy-redrock2016-{i:03d}",
                "objtype": "GALAXY",
                "subtype": f"D4000n={d4000[i]:.2f}",
                "source": "redrock galaxy-2016",
                "source_index": int(i),
            }
        )

    # QSOs: the first eigenspectrum (coefficients 1, 0, 0, 0) of each QSO basis,
    # normalised in the 1450 A continuum window that all three cover.
    for kind in QSO_KINDS:
        rr_wave, basis, _, _ = _read_redrock(kind)
        f = _rebin(rr_wave, basis[0], wave)
        fluxes.append(f / _mean_in(wave, f, 1425, 1475))
        rows.append(
            {
                "id": f"qso-redrock-{kind.removeprefix('QSO-')}",
                "objtype": "QSO",
                "subtype": kind,
                "source": f"redrock {kind}",
                "source_index": 0,
            }
        )

    flux = np.stack(fluxes)
    labels = pd.DataFrame(rows)
    finite = np.isfinite(flux)
    labels["wave_min"] = [wave[m].min() for m in finite]
    labels["wave_max"] = [wave[m].max() for m in finite]
    meta = {
        "source": "jpasbatch demo: Pickles stars, redrock galaxy-2016 archetypes, redrock QSO PCA",
        "licence": "MIT (Pickles via speXtra); BSD-3-Clause (redrock templates)",
        "wavelength": "rest-frame Angstrom, 5 A bins",
        "flux": "f_lambda, relative: stars as Pickles (1 at 5556 A), galaxies 1 at "
        "5450-5650 A, QSOs 1 at 1425-1475 A; NaN outside each source's coverage",
    }
    return TemplateLibrary("demo", _frozen(wave), _frozen(flux), labels, meta)


def bundled_demo_set() -> TemplateLibrary:
    """A small mixed set of 20 rest-frame spectra for demonstrations and tests.

    Nine Pickles stars (O5 V to M5 V), eight redrock ``galaxy-2016`` archetypes
    picked to span the 4000 A break strength, and the first eigenspectrum of each
    redrock QSO basis (``QSO-LOZ``, ``QSO-HIZ``, ``QSO-None``), on one 5 A grid
    from 450 to 25000 A. Redrock spectra are averaged into the 5 A bins
    (flux-conserving).

    Returns
    -------
    TemplateLibrary
        Labels: ``id`` (unique, e.g. ``star-pickles-g2v``), ``objtype`` (``STAR``,
        ``GALAXY``, ``QSO``), ``subtype``, ``source``, ``source_index``, and
        ``wave_min``/``wave_max``, the covered range. Flux is NaN outside it
        (the galaxies stop at 10000 A, QSO-HIZ at 4500 A), so photometry of an
        uncovered band comes out NaN rather than silently wrong.
    """
    return _fresh(_demo_set())
