"""Model grids for the template fit: redrock templates integrated through the bands.

For each class the grid holds ``model[class]``, shape ``(n_z, n_templates, n_bands)``:
the band-averaged f_lambda of every template (or PCA basis vector) at every grid
redshift, so that a fit is linear algebra on band fluxes only.

* ``STAR``: the redrock stellar archetypes (``ARCHETYPE_COEFF @ BASIS_VECTORS``) of
  STAR-A ... STAR-M and STAR-WD, plus the mean eigenspectrum of STAR-CV (which
  has no archetypes), at z = 0. The 31,000 archetypes are thinned by
  farthest-point sampling of their normalised band fluxes (``n_star_max`` per
  subtype): photometry with a few-percent error floor cannot tell apart the
  thousands of near-identical archetypes, and each one costs fit time.
* ``GALAXY``: ``galaxy-2016`` is a 5-vector PCA basis (its 750 archetypes are
  coefficient sets of that basis), fitted as a free linear combination on
  z = 0-1.7.
* ``QSO``: ``QSO-LOZ`` (trained on z < 1.7 DR16Q quasars, rest 1329-9634 A) below
  ``QSO_SWITCH_Z`` and ``QSO-HIZ`` (z > 1.3, rest 444-4499 A) above it, on
  z = 0-6. The switch is where HIZ first covers the reddest J-PAS band (10998 A
  / 4499 A - 1 = 1.445) while LOZ still covers all but ~120 A of uJAVA. Both have
  4 vectors, so one array holds the class. The HIZ header says the Lyman-alpha
  forest was *removed* from its training spectra between Ly-beta and Ly-alpha
  only ("applied to pixels in RF [1025.72,1215.67] AA using Kamble 2020 model"),
  and its mean spectrum at 1050-1150 A sits at the continuum (no forest dip)
  while it drops below the Lyman limit. So the Inoue+2014 mean IGM transmission
  (:func:`jpasbatch.physics.igm.igm_transmission`) is applied at every grid redshift
  redward of rest 1025.72 A only: bluer pixels still carry the training set's
  mean absorption, and absorbing them again lowered the real-sky score (SDSS
  DR16 QSOs: 93.3% vs 92.3% with |dz|/(1+z) < 0.15, and 91.8% with no IGM).
  Galaxies (model spectra) get the full transmission (it matters only near z = 1.7).

Templates are extended by their edge values (constant f_lambda) to cover every
band: only the LOZ red end below z = 0.14, the galaxy red end below z = 0.10 and
~120 A of uJAVA for LOZ near the switch are affected.

Grids are cached as ``.npz`` under ``$JPASBATCH_CACHE/templatefit`` (default
``~/.cache/jpasbatch/templatefit``), named by a checksum of the band curves, the
template files and the grid parameters.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jpasbatch.catalog.schemas import BANDS
from jpasbatch.physics.filters import PhotometricSystem, jpas
from jpasbatch.physics.igm import igm_transmission
from jpasbatch.physics.photometry import SyntheticPhotometry
from jpasbatch.physics.templates import redrock_basis

__all__ = [
    "GRID_VERSION",
    "HIZ_IGM_FROM",
    "QSO_SWITCH_Z",
    "STAR_KINDS",
    "TemplateGrids",
    "load_grids",
    "z_grid",
]

#: Bumped whenever the way grids are built changes (it is part of the cache key).
GRID_VERSION = 2
#: QSO-LOZ below this redshift, QSO-HIZ from it (see the module docstring).
QSO_SWITCH_Z = 1.45
#: Stellar redrock kinds fitted as archetypes (STAR-CV is added as its mean vector).
STAR_KINDS = ("STAR-A", "STAR-B", "STAR-F", "STAR-G", "STAR-K", "STAR-M", "STAR-WD")
#: Pixels averaged per bin of each template file before integration: 2 A for
#: the 0.1 A star and galaxy grids, ~1-3 A for the log grids, far below the
#: ~145 A J-PAS band widths (averaging only smooths below 2 A).
_REBIN = {"star": 20, "galaxy": 20, "qso": 4}
#: Rest wavelength redward of which the HIZ training flux was forest-corrected.
HIZ_IGM_FROM = 1025.72


@dataclass(frozen=True, eq=False)
class TemplateGrids:
    """Band fluxes of the templates on redshift grids.

    Attributes
    ----------
    bands
        Band names, length ``B``.
    z
        Class -> redshift grid ``(n_z,)`` (``[0.0]`` for ``STAR``).
    model
        Class -> band-averaged f_lambda ``(n_z, n_templates, B)`` (arbitrary scale).
    star_subtype
        Subtype (``A`` ... ``WD``, ``CV``) of each star archetype.
    key
        The checksum naming the cache file.
    path
        The cache file, or None when built without cache.
    """

    bands: tuple[str, ...]
    z: dict[str, np.ndarray]
    model: dict[str, np.ndarray]
    star_subtype: np.ndarray
    key: str
    path: Path | None = field(default=None)


def z_grid(z_max: float, dlog: float, z_min: float = 0.0) -> np.ndarray:
    """Redshifts from ``z_min`` to ``z_max`` in constant steps of ``log(1 + z)``.

    A step ``dlog`` is ``dz / (1 + z)``; 0.002 is ~1/50 of a J-PAS narrow band
    (145 A at 6000 A is d(log lambda) = 0.024).
    """
    n = int(np.floor(np.log((1 + z_max) / (1 + z_min)) / dlog + 1e-9)) + 1
    return (1 + z_min) * np.exp(dlog * np.arange(n)) - 1


def _cache_dir(cache_dir: str | Path | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    root = os.environ.get("JPASBATCH_CACHE")
    return Path(root) / "templatefit" if root else Path.home() / ".cache/jpasbatch/templatefit"


def _binned(kind: str, factor: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """A redrock basis averaged over ``factor`` pixels, extended flat to 100-30000 A."""
    wave, basis, extra = redrock_basis(kind)
    n = wave.size // factor
    wave = wave[: n * factor].reshape(n, factor).mean(axis=1)
    basis = basis[:, : n * factor].reshape(basis.shape[0], n, factor).mean(axis=2)
    # Constant extrapolation: the photometry integrates the linear interpolant,
    # so one node at each far end with the edge value makes f_lambda flat there.
    wave = np.r_[100.0, wave, 30000.0]
    basis = np.concatenate([basis[:, :1], basis, basis[:, -1:]], axis=1)
    return wave, basis, extra


def _band_fluxes(
    sp: SyntheticPhotometry,
    wave: np.ndarray,
    basis: np.ndarray,
    z: np.ndarray,
    igm: bool,
    igm_from: float = 0.0,
) -> np.ndarray:
    """Band-averaged f_lambda of each basis vector at each z: ``(n_z, k, B)``.

    With ``igm``, the spectra are multiplied by the mean IGM transmission at
    rest wavelengths >= ``igm_from``.
    """
    k = basis.shape[0]
    out = np.empty((z.size, k, len(sp.bands)))
    step = max(1, 4096 // k)  # redshifts per call: bounds the (step * k, L) spectra
    for s in range(0, z.size, step):
        zz = z[s : s + step]
        spec = np.broadcast_to(basis, (zz.size, *basis.shape))
        if igm:
            # transmission along the observed wavelengths of each redshift
            trans = np.stack([igm_transmission(wave * (1 + zi), zi) for zi in zz])
            trans[:, wave < igm_from] = 1.0
            spec = spec * trans[:, None, :]
        spec = spec.reshape(-1, wave.size)
        num, _ = sp.numerators(wave, spec, np.repeat(zz, k))
        out[s : s + step] = (num / sp.norm_flam).reshape(zz.size, k, -1)
    return out


def _thin(phot: np.ndarray, n_max: int) -> np.ndarray:
    """Indices of at most ``n_max`` rows chosen by farthest-point sampling.

    Distance is Euclidean between log band fluxes normalised to mean 0, i.e. the
    rms colour difference; start from the row nearest the median colour.
    """
    if phot.shape[0] <= n_max:
        return np.arange(phot.shape[0])
    x = np.log10(np.clip(phot / np.abs(phot).mean(axis=1, keepdims=True), 1e-3, None))
    x -= x.mean(axis=1, keepdims=True)
    first = int(np.argmin(((x - np.median(x, axis=0)) ** 2).sum(axis=1)))
    chosen = [first]
    dist = ((x - x[first]) ** 2).sum(axis=1)
    for _ in range(n_max - 1):
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, ((x - x[nxt]) ** 2).sum(axis=1))
    return np.sort(np.asarray(chosen))


def _stars(sp: SyntheticPhotometry, n_max: int) -> tuple[np.ndarray, np.ndarray]:
    models, subtype = [], []
    for kind in STAR_KINDS:
        wave, basis, extra = _binned(kind, _REBIN["star"])
        # archetype photometry = coeff @ basis photometry (linear), never the
        # 0.1 A spectra themselves (20,000 WDs would take 13 GB)
        phot = extra["ARCHETYPE_COEFF"] @ _band_fluxes(sp, wave, basis, np.zeros(1), False)[0]
        keep = _thin(phot, n_max)
        models.append(phot[keep])
        subtype += [kind.removeprefix("STAR-")] * keep.size
    wave, basis, _ = _binned("STAR-CV", _REBIN["star"])
    models.append(_band_fluxes(sp, wave, basis[:1], np.zeros(1), False)[0])
    subtype.append("CV")
    return np.concatenate(models)[None], np.asarray(subtype)


def _photometry(bands: Sequence[str]) -> SyntheticPhotometry:
    """Synthetic photometry through ``bands`` in the given order."""
    system = jpas()
    return SyntheticPhotometry(PhotometricSystem([system[b] for b in bands]))


def _checksum(sp: SyntheticPhotometry, params: dict) -> str:
    h = hashlib.sha256(repr(sorted(params.items())).encode())
    for band in sp.system:
        h.update(band.name.encode())
        h.update(np.ascontiguousarray(band.wavelength, dtype=float).tobytes())
        h.update(np.ascontiguousarray(band.response, dtype=float).tobytes())
    for kind in (*STAR_KINDS, "STAR-CV", "galaxy-2016", "QSO-LOZ", "QSO-HIZ"):
        wave, basis, extra = redrock_basis(kind)
        for a in (wave, basis, *(extra[k] for k in sorted(extra))):
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:20]


def build_grids(
    bands: Sequence[str] = BANDS,
    *,
    galaxy_z: tuple[float, float] = (1.7, 0.002),
    qso_z: tuple[float, float] = (6.0, 0.0025),
    n_star_max: int = 200,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    """Build the grids (no cache): ``(z, model, star_subtype)``; see :func:`load_grids`."""
    sp = _photometry(bands)
    z = {
        "STAR": np.zeros(1),
        "GALAXY": z_grid(*galaxy_z),
        "QSO": z_grid(*qso_z),
    }
    star, subtype = _stars(sp, n_star_max)
    wave, basis, _ = _binned("galaxy-2016", _REBIN["galaxy"])
    galaxy = _band_fluxes(sp, wave, basis, z["GALAXY"], True)
    low = z["QSO"] < QSO_SWITCH_Z
    qso = np.empty((z["QSO"].size, 4, len(sp.bands)))
    for kind, sel, start in (("QSO-LOZ", low, 0.0), ("QSO-HIZ", ~low, HIZ_IGM_FROM)):
        wave, basis, _ = _binned(kind, _REBIN["qso"])
        qso[sel] = _band_fluxes(sp, wave, basis, z["QSO"][sel], True, start)
    return z, {"STAR": star, "GALAXY": galaxy, "QSO": qso}, subtype


def load_grids(
    bands: Sequence[str] = BANDS,
    *,
    coarse: bool = False,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    galaxy_z: tuple[float, float] | None = None,
    qso_z: tuple[float, float] | None = None,
    n_star_max: int | None = None,
) -> TemplateGrids:
    """Model grids for ``bands``, read from the cache or built (seconds) and cached.

    Parameters
    ----------
    bands
        J-PAS band names, in the order of the flux columns to fit.
    coarse
        Steps 5x coarser and 40 archetypes per star subtype: for tests.
    cache_dir
        Folder of the cache files (default ``$JPASBATCH_CACHE/templatefit`` or
        ``~/.cache/jpasbatch/templatefit``).
    use_cache
        Read and write the cache file; False builds in memory only.
    galaxy_z, qso_z
        ``(z_max, dlog)``: grid end and step in log(1+z) (defaults: galaxy
        (1.7, 0.002), QSO (6.0, 0.0025), or 5x the steps when ``coarse``).
    n_star_max
        Archetypes kept per stellar subtype (default 200, or 40 when ``coarse``).

    Returns
    -------
    TemplateGrids
    """
    params = {
        "bands": tuple(bands),
        "galaxy_z": galaxy_z or ((1.7, 0.01) if coarse else (1.7, 0.002)),
        "qso_z": qso_z or ((6.0, 0.0125) if coarse else (6.0, 0.0025)),
        "n_star_max": n_star_max or (40 if coarse else 200),
        "version": GRID_VERSION,
        "rebin": tuple(sorted(_REBIN.items())),
        "qso_switch": QSO_SWITCH_Z,
    }
    sp = _photometry(bands)
    key = _checksum(sp, params)
    path = _cache_dir(cache_dir) / f"grids-{key}.npz" if use_cache else None
    if path is not None and path.is_file():
        with np.load(path, allow_pickle=False) as f:
            z = {c: f[f"z_{c}"] for c in ("STAR", "GALAXY", "QSO")}
            model = {c: f[f"model_{c}"] for c in ("STAR", "GALAXY", "QSO")}
            subtype = f["star_subtype"]
    else:
        z, model, subtype = build_grids(
            bands,
            galaxy_z=params["galaxy_z"],
            qso_z=params["qso_z"],
            n_star_max=params["n_star_max"],
        )
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            # write then rename, so a concurrent reader never sees half a file
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
            np.savez(
                tmp,
                star_subtype=subtype,
                **{f"z_{c}": v for c, v in z.items()},
                **{f"model_{c}": v for c, v in model.items()},
            )
            os.replace(tmp, path)
    for arr in (*z.values(), *model.values()):
        arr.flags.writeable = False
    return TemplateGrids(tuple(bands), z, model, np.asarray(subtype), key, path)
