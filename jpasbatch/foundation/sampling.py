"""Inverse-density object sampling (OJALA Appendix B).

Each training object is drawn with probability proportional to the inverse of
the local density of its class in a class-specific space, and STAR, GALAXY and
QSO each hold 1/3 of the mass:

* **stars**: (log Teff, g - r, r - i) where Teff is known, colours alone otherwise
  (our Teff labels are per spectral class, so the colours break the ties);
* **galaxies**: ``w_phys x w_z``: the line space (log EW Halpha, log EW Hbeta,
  log EW [OIII]), non-positive widths replaced by a draw around 0.25 A as
  OJALA does, times the inverse density in redshift (a flat z distribution);
  colours where no line label exists;
* **QSOs**: redshift only (a flat z distribution).

Densities are k-nearest-neighbour estimates with OJALA's smoothing guard
(:func:`jpasbatch.mocks.augment.inverse_density_weights`, ``eps`` in units of
the median density).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from jpasbatch.mocks.augment import inverse_density_weights

_COLOUR_BANDS = ("gSDSS", "rSDSS", "iSDSS")


def _colours(table: pa.Table) -> np.ndarray:
    f = [table[f"FLUX_{b}"].to_numpy(zero_copy_only=False).astype(float) for b in _COLOUR_BANDS]
    with np.errstate(invalid="ignore", divide="ignore"):
        m = [-2.5 * np.log10(np.clip(x, 1e-30, None)) for x in f]
    out = np.c_[m[0] - m[1], m[1] - m[2]]
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0).clip(-5, 5)


def _col(table: pa.Table, name: str, n: int) -> np.ndarray:
    if name not in table.column_names:
        return np.full(n, np.nan)
    return table[name].to_numpy(zero_copy_only=False).astype(float)


def sampling_weights(table: pa.Table, rng: np.random.Generator, eps: float = 0.1) -> np.ndarray:
    """Per-row sampling probabilities (sum 1) of a labelled table (see the module docstring)."""
    n = table.num_rows
    cls = table["CLASS"].to_numpy(zero_copy_only=False).astype(str)
    merged = np.where(np.char.startswith(cls, "QSO"), "QSO", cls)
    z = np.nan_to_num(_col(table, "Z", n))
    colours = _colours(table)
    w = np.zeros(n)
    groups = [g for g in ("STAR", "GALAXY", "QSO") if (merged == g).any()]
    for g in groups:
        idx = np.flatnonzero(merged == g)
        if g == "STAR":
            teff = _col(table, "TEFF", n)[idx]
            x = colours[idx]
            if np.isfinite(teff).all():
                x = np.c_[np.log10(teff), x]
            wg = _inverse(x, eps)
        elif g == "GALAXY":
            lines = np.stack([_col(table, f"EW_{k}", n)[idx] for k in ("HALPHA", "HBETA")], 1)
            lines = np.c_[lines, _col(table, "EW_OIII_5007", n)[idx]]
            has = np.isfinite(lines).all(axis=1)
            low = lines <= 0
            lines[low] = np.abs(rng.normal(0.25, 0.05, low.sum()))
            x_phys = np.where(has[:, None], np.log10(np.where(has[:, None], lines, 1.0)), 0.0)
            w_phys = np.empty(len(idx))
            for sel, x in ((has, x_phys), (~has, colours[idx])):
                if sel.any():
                    w_phys[sel] = _inverse(x[sel], eps) * sel.sum()
            wg = w_phys * _inverse(z[idx, None], eps)
        else:
            wg = _inverse(z[idx, None], eps)
        w[idx] = wg / wg.sum() / len(groups)
    return w


def _inverse(x: np.ndarray, eps: float) -> np.ndarray:
    """Inverse kNN density weights of one population (sum 1); uniform when too small."""
    if len(x) < 3:
        return np.full(len(x), 1.0 / max(len(x), 1))
    # ties (identical points) would have infinite density: jitter them far below any scale
    jitter = np.random.default_rng(0).normal(0, 1e-6, x.shape)
    return inverse_density_weights(x + jitter, np.zeros(len(x)), eps=eps)
