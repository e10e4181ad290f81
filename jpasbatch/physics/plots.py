"""Figures a person would rather look at than read.

Figures are built on ``matplotlib.figure.Figure`` directly rather than pyplot:
no global backend state, so plotting is safe inside Dask or Ray workers and on
machines without a display.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from jpasbatch.physics.filters import PhotometricSystem

_KIND_STYLE = {"narrow": "-", "medium": "--", "broad": ":"}

#: One colour per class, for every figure of every report, so a class looks the
#: same everywhere: the four classes of the photometric classifier and the three
#: of the spectral classifier and the foundation model (``QSO``, both QSO classes
#: together, has a colour of its own). Read-only; use :func:`class_colour`.
CLASS_COLOURS: Mapping[str, str] = MappingProxyType(
    {
        "STAR": "tab:blue",
        "GALAXY": "tab:green",
        "QSO_LOW": "tab:orange",
        "QSO_HIGH": "tab:red",
        "QSO": "tab:purple",
    }
)

#: Colours for classes without a name of :data:`CLASS_COLOURS` (e.g. ``"0"``,
#: ``"1"`` for a K-class model with unnamed classes), by class index.
_OTHER_COLOURS = ("tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray")

#: Axis labels of the two r magnitudes: the survey's measurement (the VAC's and
#: the observed catalogue's ``MAG_R``) and the simulation's truth (the mocks' and
#: the emulator truth's ``MAG_R``). Survey figures use the observed one; the
#: true one only where truth is the point.
OBSERVED_R = "observed r (rSDSS, mag)"
TRUE_R = "true r (rSDSS, mag)"


def class_colour(name: str, index: int = 0) -> str:
    """The colour of class ``name``; unnamed classes by their ``index``."""
    if name in CLASS_COLOURS:
        return CLASS_COLOURS[name]
    return _OTHER_COLOURS[index % len(_OTHER_COLOURS)]


def plot_filters(system: PhotometricSystem, path: str | Path) -> Path:
    """Draw every transmission curve, coloured by wavelength, styled by kind."""
    fig = Figure(figsize=(11, 4))
    ax = fig.subplots()
    cmap = colormaps["turbo"]
    lo = min(b.wavelength[0] for b in system)
    hi = max(b.wavelength[-1] for b in system)
    for band in system:
        colour = cmap((band.pivot_wavelength - lo) / (hi - lo))
        ax.plot(band.wavelength, band.response, _KIND_STYLE[band.kind], color=colour, lw=1)
        if band.kind != "narrow":
            peak = int(np.argmax(band.response))
            ax.annotate(band.name, (band.wavelength[peak], band.response[peak]), fontsize=7)
    ax.set_xlabel("wavelength [Å]")
    ax.set_ylabel("total throughput")
    ax.set_title(f"{len(system)} bands (solid: narrow, dashed: medium, dotted: broad)")
    ax.set_ylim(0, None)
    return _save(fig, path)


def plot_photospectra(
    wavelength: np.ndarray,
    flux: np.ndarray,
    labels: list[str],
    pivots: np.ndarray,
    band_flux: np.ndarray,
    path: str | Path,
) -> Path:
    """Spectra (observer frame) with their synthetic J-PAS fluxes on top, one panel each."""
    n = len(labels)
    fig = Figure(figsize=(10, 2.2 * n))
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)
    for ax, f, label, bf in zip(axes[:, 0], flux, labels, band_flux, strict=True):
        ax.plot(wavelength, f, color="0.6", lw=0.6, label="spectrum")
        ax.plot(pivots, bf, "o", ms=3, color="C3", label="J-PAS synthetic")
        ax.set_title(label, fontsize=9, loc="left")
        ax.set_ylabel("f$_\\lambda$")
    axes[0, 0].legend(fontsize=8)
    axes[-1, 0].set_xlabel("observed wavelength [Å]")
    axes[-1, 0].set_xlim(3000, 11000)
    return _save(fig, path)


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path
