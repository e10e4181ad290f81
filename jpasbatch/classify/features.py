"""Classifier inputs from J-PAS fluxes, as in miniJPAS quasar selection III.

* ``ann1``: the 59 relative fluxes f_j / f_r (rSDSS as reference).
* ``ann2``: the 59 colours m_j - m_r (0 where f_j <= 0, i.e. no magnitude)
  plus the rSDSS magnitude scaled to [0, 1] over the training set.

Missing measurements (NaN) enter as 0, the same "no information" value the paper
uses for undefined colours; or (``missing="mean"``) as the training mean of the
standardised feature; or (``missing="interpolate"``) as the flux interpolated in
wavelength from the bands on either side (held at the nearest band beyond the ends).
A relative flux of 0 is not "no information" but a deep drop-out: a real QSO whose
spectrum stops short of uJAVA was called a STAR with p > 0.99 for it. The training
mean is a galaxy's (most training objects are galaxies): real stars with a few bands
masked became galaxies. Narrow bands 100 A apart sample a smooth SED, so the
neighbours say most of what the missing band would. Rows without a positive rSDSS
flux have no reference and are returned as unusable (``ok`` False): the caller
rejects them. Each feature is then standardised with the training set's mean and
standard deviation: the raw relative fluxes span four decades from band to band, and
an 8-layer ReLU network trained on them unscaled needed ~3x more epochs to reach the
same validation F1 on the emulated mocks. The scaling constants live in
:class:`FeatureScaler`, saved with the model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from functools import cache
from typing import Literal

import numpy as np

from jpasbatch.catalog.schemas import BANDS

FeatureKind = Literal["ann1", "ann2"]
REFERENCE = BANDS.index("rSDSS")
#: Indices of the 59 bands that are not the reference.
OTHERS = np.array([j for j in range(len(BANDS)) if j != REFERENCE])


@dataclass(frozen=True)
class FeatureScaler:
    """What turns fluxes into features; fitted on the training set.

    Attributes
    ----------
    kind
        ``ann1`` or ``ann2``.
    r_min, r_max
        rSDSS magnitude range of the training set (``ann2``'s magnitude scaling).
    clip
        Bound on |f_j / f_r| (``ann1``): a faint r flux makes the ratios of noise
        arbitrarily large, and a single 1e4 input saturates every ReLU downstream.
    mean, std
        Per-feature standardisation (None: features as the paper defines them).
    missing
        What a missing (NaN) band becomes: ``zero`` (the paper's 0 before
        standardisation), ``mean`` (0 after it: the training mean) or
        ``interpolate`` (its neighbours' flux, linear in wavelength).
    """

    kind: FeatureKind = "ann1"
    r_min: float = 0.0
    r_max: float = 1.0
    clip: float = 50.0
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    missing: Literal["zero", "mean", "interpolate"] = "zero"

    @classmethod
    def fit(
        cls,
        flux: np.ndarray,
        kind: FeatureKind = "ann1",
        clip: float = 50.0,
        *,
        r_flux: np.ndarray | None = None,
        standardise: bool = True,
        missing: Literal["zero", "mean", "interpolate"] = "zero",
    ) -> FeatureScaler:
        """Scaling constants from training fluxes (N, 60).

        ``r_flux``: the rSDSS fluxes of the whole training set, when ``flux`` is
        only a sample of it (the [0, 1] scaling of ``ann2`` spans the whole set).
        """
        r = _mag(flux[:, REFERENCE] if r_flux is None else np.asarray(r_flux, float))
        r = r[np.isfinite(r)]
        if r.size == 0:
            raise ValueError("no training row has a positive rSDSS flux")
        raw = cls(kind=kind, r_min=float(r.min()), r_max=float(r.max()), clip=clip, missing=missing)
        if not standardise:
            return raw
        x, ok = raw.transform(flux)
        std = x[ok].std(axis=0)
        # a constant feature (e.g. a band no training object has) is left unscaled
        std = np.where(std > 1e-6, std, 1.0)
        return replace(raw, mean=tuple(x[ok].mean(axis=0).tolist()), std=tuple(std.tolist()))

    @property
    def n_features(self) -> int:
        return len(OTHERS) + (1 if self.kind == "ann2" else 0)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FeatureScaler:
        """The inverse of :meth:`to_dict`, also after a JSON round trip (lists back to tuples)."""
        seq = {k: None if d.get(k) is None else tuple(d[k]) for k in ("mean", "std")}
        return cls(**(d | seq))

    def transform(self, flux: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Features (N, 59 or 60) as float32 and the mask of usable rows."""
        flux = np.asarray(flux, dtype=np.float64)
        if self.missing == "interpolate":
            flux = interpolate_missing(flux)
        f_r = flux[:, REFERENCE]
        ok = np.isfinite(f_r) & (f_r > 0)
        safe_r = np.where(ok, f_r, 1.0)[:, None]
        f = flux[:, OTHERS]
        if self.kind == "ann1":
            x = np.clip(np.nan_to_num(f / safe_r, nan=0.0), -self.clip, self.clip)
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                colour = -2.5 * np.log10(f / safe_r)
            x = np.where(f > 0, colour, 0.0)
            scaled = (_mag(safe_r[:, 0]) - self.r_min) / (self.r_max - self.r_min)
            x = np.column_stack([x, scaled])
        if self.mean is not None:
            x = (x - np.asarray(self.mean)) / np.asarray(self.std)
            if self.missing == "mean":
                x[:, : f.shape[1]][np.isnan(f)] = 0.0
        x[~ok] = 0.0
        return x.astype(np.float32), ok


@cache
def _band_order() -> tuple[np.ndarray, np.ndarray]:
    from jpasbatch.physics.filters import jpas

    pivot = np.array([b.pivot_wavelength for b in jpas()])
    order = np.argsort(pivot)
    return order, pivot[order]


def interpolate_missing(flux: np.ndarray) -> np.ndarray:
    """Fluxes (N, 60) with each NaN band replaced by the linear interpolation in
    pivot wavelength of the row's finite bands (held constant beyond the ends).

    Rows with fewer than two finite bands are returned unchanged.
    """
    bad = np.isnan(flux)
    rows = np.flatnonzero(bad.any(axis=1))
    if rows.size == 0:
        return flux
    order, lam = _band_order()
    out = flux.copy()
    for i in rows:
        f = flux[i, order]
        ok = np.isfinite(f)
        if ok.sum() >= 2:
            out[i, order] = np.where(ok, f, np.interp(lam, lam[ok], f[ok]))
    return out


def _mag(f: np.ndarray) -> np.ndarray:
    # only differences and a min-max scaling are used, so the zero point is irrelevant
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(f > 0, -2.5 * np.log10(f), np.nan)
