"""The J-PAS photometric system and the extra broad bands the models use.

The 60 J-PAS curves are the as-built total-system throughputs (filter x CCD x
optics x atmosphere) of the SVO Filter Profile Service, shipped as package data
(see ``jpasbatch/data/README.md``). Band names, archive order, central
wavelengths, widths and extinction coefficients follow the CEFCA archive table
``minijpas.Filter``. Extra bands from other surveys (DECam, BASS/MzLS, WISE,
SDSS) come from speclite's bundled curves.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from jpasbatch.core.errors import InputError

#: Band kinds. uJAVA and J1007 are the two wider bands at the blue and red ends
#: of the narrow-band set (Bonoli et al. 2021), the SDSS-like bands are broad.
KINDS = ("narrow", "medium", "broad")

#: Trays T1 and T2 as listed in the OJALA paper (footnote 3). Only these two are
#: given there; every other band has ``tray=None``. The paper lists 13 filters
#: for T1 and 14 for T2.
TRAYS: dict[str, tuple[str, ...]] = {
    "T1": (
        "J0410", "J0450", "J0490", "J0530", "J0540", "J0550", "J0560",
        "J0570", "J0580", "J0590", "J0600", "J0610", "J0620",
    ),
    "T2": (
        "J0390", "J0430", "J0470", "J0510", "J0630", "J0640", "J0650",
        "J0660", "J0670", "J0680", "J0690", "J0700", "J0710", "J0720",
    ),
}  # fmt: skip

#: Archive band name -> SVO file stem, where they differ.
_SVO_NAMES = {"uJAVA": "uJava", "uJPAS": "u"}

#: Extra survey bands: jpasbatch name -> speclite name.
EXTRA_BANDS: dict[str, str] = {
    "DECAM_G": "decam2014-g",
    "DECAM_R": "decam2014-r",
    "DECAM_Z": "decam2014-z",
    "BASS_G": "BASS-g",
    "BASS_R": "BASS-r",
    "MZLS_Z": "MzLS-z",
    "WISE_W1": "wise2010-W1",
    "WISE_W2": "wise2010-W2",
    "SDSS_U": "sdss2010-u",
    "SDSS_G": "sdss2010-g",
    "SDSS_R": "sdss2010-r",
    "SDSS_I": "sdss2010-i",
    "SDSS_Z": "sdss2010-z",
}


@dataclass(frozen=True, eq=False)
class Band:
    """One photometric band.

    Attributes
    ----------
    name
        Band name as the CEFCA archive writes it (``J0378``), or a jpasbatch name
        for other surveys (``DECAM_G``).
    survey
        ``"J-PAS"`` or the other survey's name.
    kind
        ``"narrow"``, ``"medium"`` or ``"broad"``.
    wavelength, response
        The transmission curve: wavelengths in Angstrom (strictly increasing) and
        total throughput, zero at both ends.
    central_wavelength, fwhm
        In Angstrom; the archive's values for J-PAS bands, measured on the curve
        for the others.
    filter_id
        1-based position in the archive's 60-band arrays (J-PAS only).
    tray
        Observing tray (``"T1"``, ``"T2"``) where known, else ``None``.
    extinction_coeff
        A_band / E(B-V) from the archive (J-PAS only), else ``None``.
    """

    name: str
    survey: str
    kind: str
    wavelength: np.ndarray
    response: np.ndarray
    central_wavelength: float
    fwhm: float
    filter_id: int | None = None
    tray: str | None = None
    extinction_coeff: float | None = None

    @property
    def pivot_wavelength(self) -> float:
        """Pivot wavelength sqrt(int R l dl / int R / l dl) in Angstrom.

        Both integrals are exact for the piecewise-linear curve, so the pivot is
        consistent with :mod:`jpasbatch.physics.photometry` even for coarse curves (WISE).
        """
        lam, r = self.wavelength, self.response
        h, slope = np.diff(lam), np.diff(r) / np.diff(lam)
        r0, l0 = r[:-1], lam[:-1]
        int_rl = np.sum(r0 * l0 * h + (r0 + slope * l0) * h**2 / 2 + slope * h**3 / 3)
        int_r_over_l = np.sum((r0 - slope * l0) * np.log(lam[1:] / l0) + slope * h)
        return float(np.sqrt(int_rl / int_r_over_l))

    @property
    def support(self) -> tuple[float, float]:
        """The wavelength range over which the response is non-zero."""
        nz = np.flatnonzero(self.response > 0)
        return float(self.wavelength[nz[0]]), float(self.wavelength[nz[-1]])

    def __repr__(self) -> str:
        return f"Band({self.name!r}, {self.kind}, {self.central_wavelength:.0f} A)"


class PhotometricSystem(Sequence[Band]):
    """An ordered set of bands, selectable by name, kind, tray or survey.

    Parameters
    ----------
    bands
        The bands, in the order outputs will use.
    """

    def __init__(self, bands: Iterable[Band]) -> None:
        self._bands = tuple(bands)
        names = [b.name for b in self._bands]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate band names in {names}")
        self._index = {n: i for i, n in enumerate(names)}

    def __len__(self) -> int:
        return len(self._bands)

    def __getitem__(self, key):  # type: ignore[override]
        if isinstance(key, str):
            try:
                return self._bands[self._index[key]]
            except KeyError:
                raise KeyError(f"no band {key!r}; known bands: {', '.join(self.names)}") from None
        if isinstance(key, slice):
            return PhotometricSystem(self._bands[key])
        return self._bands[key]

    def __add__(self, other: PhotometricSystem) -> PhotometricSystem:
        return PhotometricSystem(self._bands + tuple(other))

    def __repr__(self) -> str:
        return f"PhotometricSystem({len(self)} bands: {', '.join(self.names)})"

    @property
    def names(self) -> list[str]:
        """Band names in order."""
        return [b.name for b in self._bands]

    def select(
        self,
        names: Iterable[str] | None = None,
        *,
        kind: str | Iterable[str] | None = None,
        tray: str | Iterable[str] | None = None,
        survey: str | Iterable[str] | None = None,
    ) -> PhotometricSystem:
        """Return the bands matching every given criterion, in this system's order.

        Parameters
        ----------
        names
            Band names to keep; an unknown name raises ``KeyError``.
        kind, tray, survey
            One value or several; a band is kept if its attribute is among them.

        Returns
        -------
        PhotometricSystem
        """
        keep = list(self._bands)
        if names is not None:
            wanted = list(names)
            unknown = [n for n in wanted if n not in self._index]
            if unknown:
                raise KeyError(f"unknown band(s) {unknown}; known bands: {', '.join(self.names)}")
            keep = [b for b in keep if b.name in wanted]
        for attr, value, allowed in (
            ("kind", kind, KINDS),
            ("tray", tray, tuple(TRAYS)),
            ("survey", survey, None),
        ):
            if value is None:
                continue
            values = {value} if isinstance(value, str) else set(value)
            if allowed is not None and not values <= set(allowed):
                raise ValueError(f"{attr} must be among {allowed}, got {sorted(values)}")
            keep = [b for b in keep if getattr(b, attr) in values]
        return PhotometricSystem(keep)

    def table(self) -> pd.DataFrame:
        """One row per band: name, survey, kind, tray, id, wavelengths, widths, k."""
        return pd.DataFrame(
            {
                "name": [b.name for b in self],
                "survey": [b.survey for b in self],
                "kind": [b.kind for b in self],
                "tray": [b.tray or "" for b in self],
                "filter_id": [b.filter_id or 0 for b in self],
                "central_wavelength": [b.central_wavelength for b in self],
                "pivot_wavelength": [round(b.pivot_wavelength, 1) for b in self],
                "fwhm": [b.fwhm for b in self],
                "extinction_coeff": [
                    np.nan if b.extinction_coeff is None else b.extinction_coeff for b in self
                ],
            }
        )

    def to_speclite(self, group_name: str = "jpasbatch"):
        """The same curves as a speclite ``FilterSequence`` (for cross-checks).

        speclite band names cannot contain ``-``, so names are used unchanged.
        """
        import speclite.filters

        return speclite.filters.FilterSequence(
            [
                speclite.filters.FilterResponse(
                    b.wavelength, b.response, meta={"group_name": group_name, "band_name": b.name}
                )
                for b in self
            ]
        )


def _data_path(*parts: str) -> Path:
    return Path(str(resources.files("jpasbatch").joinpath("data", *parts)))


def read_archive_csv(path: str | Path) -> pd.DataFrame:
    """Read a CEFCA archive CSV dump (first line: the ADQL query as a ``#`` comment)."""
    path = Path(path)
    try:
        return pd.read_csv(path, comment=None, skiprows=1 if _starts_with_hash(path) else 0)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"cannot read archive CSV: {exc}", path=path) from exc


def _starts_with_hash(path: Path) -> bool:
    with open(path, encoding="utf-8") as fh:
        return fh.readline().startswith("#")


def _closed_curve(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a 2-column curve and close it with zero throughput 1 A beyond each end."""
    try:
        data = np.loadtxt(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read transmission curve: {exc}", path=path) from exc
    lam, resp = data[:, 0], np.clip(data[:, 1], 0.0, None)
    if np.any(np.diff(lam) <= 0):
        raise InputError("wavelengths not strictly increasing", path=path, column="wavelength")
    # The SVO curves stop at 1e-4 rather than 0; a closed curve is what speclite
    # (and any integral over the support) expects. The added area is < 1e-6.
    if resp[0] > 0:
        lam, resp = np.r_[lam[0] - 1.0, lam], np.r_[0.0, resp]
    if resp[-1] > 0:
        lam, resp = np.r_[lam, lam[-1] + 1.0], np.r_[resp, 0.0]
    return lam, resp


def _kind(name: str) -> str:
    if name in ("uJAVA", "J1007"):
        return "medium"
    if name.startswith("J0"):
        return "narrow"
    return "broad"


@functools.cache
def jpas() -> PhotometricSystem:
    """The 60 J-PAS bands in CEFCA archive order (FILTER_ID 1..60).

    Returns
    -------
    PhotometricSystem
        uJAVA, J0378 ... J0910, J1007, uJPAS, gSDSS, rSDSS, iSDSS.
    """
    table = read_archive_csv(_data_path("minijpas", "minijpas.Filter.csv"))
    tray_of = {n: t for t, names in TRAYS.items() for n in names}
    bands = []
    for row in table.sort_values("FILTER_ID").itertuples(index=False):
        name = str(row.name)
        lam, resp = _closed_curve(
            _data_path("filters", f"OAJ_JPAS.{_SVO_NAMES.get(name, name)}.dat")
        )
        bands.append(
            Band(
                name=name,
                survey="J-PAS",
                kind=_kind(name),
                wavelength=lam,
                response=resp,
                central_wavelength=float(row.wavelength),
                fwhm=float(row.width),
                filter_id=int(row.FILTER_ID),
                tray=tray_of.get(name),
                extinction_coeff=float(row.kx),
            )
        )
    return PhotometricSystem(bands)


def _fwhm(lam: np.ndarray, resp: np.ndarray) -> float:
    above = lam[resp >= 0.5 * resp.max()]
    return float(above[-1] - above[0])


@functools.cache
def extra_bands(names: tuple[str, ...] = tuple(EXTRA_BANDS)) -> PhotometricSystem:
    """Broad bands of other surveys from speclite's curves.

    Parameters
    ----------
    names
        jpasbatch names of :data:`EXTRA_BANDS` (default: all).
    """
    import speclite.filters

    unknown = [n for n in names if n not in EXTRA_BANDS]
    if unknown:
        raise KeyError(f"unknown extra band(s) {unknown}; known: {', '.join(EXTRA_BANDS)}")
    bands = []
    for name in names:
        f = speclite.filters.load_filter(EXTRA_BANDS[name])
        lam = np.asarray(f.wavelength, dtype=float)
        resp = np.asarray(f.response, dtype=float)
        bands.append(
            Band(
                name=name,
                survey=name.split("_")[0],
                kind="broad",
                wavelength=lam,
                response=resp,
                central_wavelength=round(
                    float(np.trapezoid(resp * lam, lam) / np.trapezoid(resp, lam)), 1
                ),
                fwhm=_fwhm(lam, resp),
            )
        )
    return PhotometricSystem(bands)


def get_system(spec: str | Iterable[str] | None = None) -> PhotometricSystem:
    """Resolve a band specification into a system.

    Parameters
    ----------
    spec
        ``None`` or ``"jpas"`` for the 60 J-PAS bands; ``"all"`` for J-PAS plus
        the extra bands; a kind (``"narrow"``), a tray (``"T1"``), or a
        comma-separated / iterable list mixing band names, kinds and trays.
    """
    full = jpas() + extra_bands()
    if spec is None or spec == "jpas":
        return jpas()
    if spec == "all":
        return full
    items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    chosen: list[str] = []
    for item in items:
        if item in KINDS:
            chosen += jpas().select(kind=item).names
        elif item in TRAYS:
            chosen += jpas().select(tray=item).names
        else:
            chosen.append(full[item].name)
    # keep the order of the full system, drop repeats
    return full.select(list(dict.fromkeys(chosen)))
