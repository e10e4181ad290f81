"""Tokens: every measurement and label of an object as one (value, error) pair.

The vocabulary (:func:`vocabulary`) is fixed: the 60 J-PAS bands, the five
external broad bands (Legacy Surveys g r z, WISE W1 W2), the stellarity
``CLASS_STAR``, the morphological type ``MORPH_TYPE``, the class, the redshift
and the physical labels. Values are normalised as OJALA does (Sect. 2.3):

* narrow and medium J-PAS bands: the flux relative to iSDSS, ``f_j / f_i``, so
  they carry the spectral shape only; the error is that of the ratio;
* broad bands (J-PAS uJPAS g r i and the external ones): AB magnitudes, in the
  asinh form (Lupton et al. 1999) softened at the band's 1-sigma depth so that
  a non-detection is still a measurement (identical to AB above S/N ~ 10);
* ``CLASS_STAR`` as is; ``Z`` as is (its loss is on ``dz / (1 + z)``);
  ``TEFF`` and the equivalent widths as log10 (EW floored at 0.1 A: absorption
  and no emission are the same "no line" for a photometric model);
* ``CLASS`` and ``MORPH_TYPE`` as class indices (categorical tokens).

Then each real-valued token is standardised with robust statistics of the
training set (:class:`TokenNorm`), its error with the same scale.
Absent measurements are simply absent tokens (``present`` false).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import pyarrow as pa

from jpasbatch.catalog.schemas import (
    BANDS,
    CLASSES,
    EXTERNAL_BANDS,
    MORPH_TYPES,
    PHYSICAL_LABELS,
)
from jpasbatch.physics.filters import extra_bands, jpas
from jpasbatch.physics.photometry import C_ANGSTROM

#: The reference band of the narrow-band ratios.
REFERENCE_BAND = "iSDSS"
#: Asinh softening of the broad-band magnitudes: the 1-sigma flux, as an AB magnitude.
SOFTENING_MAG = {"uJPAS": 24.5, "gSDSS": 25.0, "rSDSS": 25.0, "iSDSS": 25.0} | {
    "DECAM_G": 25.75,
    "DECAM_R": 25.15,
    "DECAM_Z": 24.25,
    "WISE_W1": 21.75,
    "WISE_W2": 21.05,
}
#: Nominal error of a CLASS_STAR value (the archive gives none).
CLASS_STAR_ERR = 0.05
#: Floor of the equivalent widths before the log (Angstrom).
EW_FLOOR = 0.1
_LN10 = np.log(10.0)
_AB_ZERO = 10 ** (-48.6 / 2.5)  # f_nu of AB magnitude 0 (erg s-1 cm-2 Hz-1)


@dataclass(frozen=True)
class Token:
    """One token type.

    Attributes
    ----------
    name
        Column-derived name: a band name, ``CLASS_STAR``, ``MORPH_TYPE``,
        ``CLASS``, ``Z`` or a physical label.
    kind
        ``ratio`` (narrow/medium band), ``mag`` (broad band), ``scalar``
        (real-valued label or measurement) or ``class`` (categorical).
    group
        ``band``, ``morph`` (observational, not photometry) or ``label``.
    wavelength
        Central wavelength in Angstrom (bands), else NaN.
    classes
        Category names of a ``class`` token.
    """

    name: str
    kind: str
    group: str
    wavelength: float = float("nan")
    classes: tuple[str, ...] = ()

    @property
    def broad(self) -> bool:
        return self.kind == "mag"

    @property
    def observational(self) -> bool:
        return self.group != "label"


@cache
def vocabulary() -> tuple[Token, ...]:
    """The fixed token vocabulary, in model order."""
    toks = []
    for b in jpas():
        kind = "mag" if b.kind == "broad" else "ratio"
        toks.append(Token(b.name, kind, "band", float(b.central_wavelength)))
    for b in extra_bands(EXTERNAL_BANDS):
        toks.append(Token(b.name, "mag", "band", float(b.central_wavelength)))
    toks.append(Token("CLASS_STAR", "scalar", "morph"))
    toks.append(Token("MORPH_TYPE", "class", "morph", classes=MORPH_TYPES))
    toks.append(Token("CLASS", "class", "label", classes=CLASSES))
    toks.append(Token("Z", "scalar", "label"))
    for name in PHYSICAL_LABELS:
        toks.append(Token(name, "scalar", "label"))
    return tuple(toks)


def token_index(name: str) -> int:
    """Position of a token in :func:`vocabulary`."""
    return names().index(name)


@cache
def names() -> tuple[str, ...]:
    return tuple(t.name for t in vocabulary())


#: Context groups usable in :func:`resolve_context` besides single token names.
def context_groups() -> dict[str, tuple[str, ...]]:
    vocab = vocabulary()
    obs = tuple(t.name for t in vocab if t.observational)
    return {
        "all": obs,
        "jpas": tuple(BANDS),
        "narrow": tuple(t.name for t in vocab if t.kind == "ratio"),
        "T1": tuple(jpas().select(tray="T1").names),
        "T2": tuple(jpas().select(tray="T2").names),
        # OJALA's "BB": the Legacy Surveys / WISE bands; the J-PAS detection band
        # iSDSS always comes with them (every catalogue object has it)
        "broad": (*EXTERNAL_BANDS, REFERENCE_BAND),
        "external": EXTERNAL_BANDS,
        "morph": ("CLASS_STAR", "MORPH_TYPE"),
        "labels": tuple(t.name for t in vocab if not t.observational),
    }


def resolve_context(context: str | list[str] | tuple[str, ...]) -> list[str]:
    """Token names of a context: ``"all"``, groups and names joined by ``+`` or a list.

    Groups: see :func:`context_groups` (``all``, ``jpas``, ``narrow``, ``T1``,
    ``T2``, ``broad``, ``external``, ``morph``, ``labels``).
    """
    items = context.split("+") if isinstance(context, str) else list(context)
    groups = context_groups()
    out: list[str] = []
    for item in (i.strip() for i in items):
        if item in groups:
            out += groups[item]
        elif item in names():
            out.append(item)
        else:
            raise ValueError(
                f"unknown context item {item!r}: use token names or {', '.join(groups)}"
            )
    return list(dict.fromkeys(out))


@dataclass
class TokenArrays:
    """Raw (un-standardised) token values of N objects.

    Attributes
    ----------
    values, errors
        ``(N, V)`` float32; class tokens hold the class index, errors 0.
    present
        ``(N, V)`` bool: the measurement or label exists.
    """

    values: np.ndarray
    errors: np.ndarray
    present: np.ndarray

    def __len__(self) -> int:
        return len(self.values)

    def take(self, idx) -> TokenArrays:
        return TokenArrays(self.values[idx], self.errors[idx], self.present[idx])


def _column(table: pa.Table, name: str, dtype=np.float64) -> np.ndarray | None:
    if name not in table.column_names:
        return None
    col = table[name]
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        return col.to_numpy(zero_copy_only=False)
    return col.to_numpy(zero_copy_only=False).astype(dtype)


@cache
def _pivots() -> dict[str, float]:
    bands = list(jpas()) + list(extra_bands(EXTERNAL_BANDS))
    return {b.name: b.pivot_wavelength for b in bands}


def asinh_mag(flux: np.ndarray, sigma: np.ndarray, band: str) -> tuple[np.ndarray, np.ndarray]:
    """Asinh AB magnitude and its error of f_lambda fluxes in ``band``."""
    to_nu = _pivots()[band] ** 2 / C_ANGSTROM / _AB_ZERO  # f_lambda -> maggies
    x, s = flux * to_nu, sigma * to_nu
    b = 10 ** (-0.4 * SOFTENING_MAG[band])
    mag = -2.5 / _LN10 * (np.arcsinh(x / (2 * b)) + np.log(b))
    err = 2.5 / _LN10 * s / np.sqrt(x**2 + 4 * b**2)
    return mag, err


def encode_table(table: pa.Table) -> TokenArrays:
    """Raw tokens of a table (OBSERVED, MOCK or MOCK_EXT columns; absent columns: absent tokens).

    Rows whose iSDSS flux is missing or not positive have no narrow-band tokens.
    """
    vocab = vocabulary()
    n = table.num_rows
    values = np.zeros((n, len(vocab)), np.float32)
    errors = np.zeros((n, len(vocab)), np.float32)
    present = np.zeros((n, len(vocab)), bool)
    f_ref = _column(table, f"FLUX_{REFERENCE_BAND}")
    e_ref = _column(table, f"FLUX_RELERR_{REFERENCE_BAND}")
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for k, tok in enumerate(vocab):
            v = e = None
            if tok.group == "band":
                f = _column(table, f"FLUX_{tok.name}")
                rel = _column(table, f"FLUX_RELERR_{tok.name}")
                if f is None or rel is None:
                    continue
                sigma = np.abs(f) * rel
                if tok.kind == "ratio":
                    if f_ref is None:
                        continue
                    ok_ref = np.isfinite(f_ref) & (f_ref > 0)
                    v = f / np.where(ok_ref, f_ref, np.nan)
                    e = np.hypot(sigma / f_ref, v * e_ref)
                else:
                    v, e = asinh_mag(f, sigma, tok.name)
            elif tok.name == "CLASS_STAR":
                v = _column(table, "CLASS_STAR")
                e = None if v is None else np.full(n, CLASS_STAR_ERR)
            elif tok.kind == "class":
                raw = _column(table, tok.name)
                if raw is None:
                    continue
                v = np.full(n, np.nan)
                for i, c in enumerate(tok.classes):
                    v[raw == c] = i
                e = np.zeros(n)
            elif tok.name == "Z":
                v = _column(table, "Z")
                e = None if v is None else np.zeros(n)
            elif tok.name == "TEFF":
                t = _column(table, "TEFF")
                v = None if t is None else np.log10(t)
                e = np.zeros(n)
            elif tok.name.startswith("EW_"):
                w = _column(table, tok.name)
                v = None if w is None else np.log10(np.maximum(w, EW_FLOOR))
                v = None if w is None else np.where(np.isfinite(w), v, np.nan)
                e = np.zeros(n)
            if v is None:
                continue
            ok = np.isfinite(v) & np.isfinite(e)
            values[:, k] = np.where(ok, v, 0.0)
            errors[:, k] = np.where(ok, e, 0.0)
            present[:, k] = ok
    return TokenArrays(values, errors, present)


@dataclass
class TokenNorm:
    """Per-token standardisation ``(v - loc) / scale``; class tokens are left alone.

    ``Z`` keeps loc 0, scale 1: its likelihood is written on ``dz / (1 + z)``.
    """

    loc: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, tokens: TokenArrays) -> TokenNorm:
        vocab = vocabulary()
        loc = np.zeros(len(vocab), np.float32)
        scale = np.ones(len(vocab), np.float32)
        for k, tok in enumerate(vocab):
            v = tokens.values[tokens.present[:, k], k]
            if tok.kind == "class" or tok.name == "Z" or v.size < 2:
                continue
            med = np.median(v)
            mad = 1.4826 * np.median(np.abs(v - med))
            loc[k], scale[k] = med, max(mad, 1e-3)
        return cls(loc, scale)

    def to_dict(self) -> dict:
        return {"loc": self.loc.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> TokenNorm:
        return cls(np.asarray(d["loc"], np.float32), np.asarray(d["scale"], np.float32))

    def apply(self, tokens: TokenArrays) -> TokenArrays:
        """Standardised values (clipped to +-20 scales) and errors."""
        v = np.clip((tokens.values - self.loc) / self.scale, -20, 20)
        e = tokens.errors / self.scale
        is_class = np.array([t.kind == "class" for t in vocabulary()])
        v = np.where(is_class, tokens.values, v).astype(np.float32)
        e = np.where(is_class, 0.0, np.minimum(e, 1e3)).astype(np.float32)
        return TokenArrays(v, e, tokens.present)


def token_frequencies(present: np.ndarray) -> np.ndarray:
    """Fraction of objects with each token."""
    return present.mean(axis=0)
