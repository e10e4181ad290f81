"""The emulated survey's footprint and observing conditions, from the miniJPAS archive.

Each emulated pointing takes the per-band conditions of one real miniJPAS tile
(``minijpas.TileImage.csv``): 5-sigma depth in a 3 arcsec aperture
(``DEPTH3ARC5S``), seeing (``FWHMG``) and zero-point error (``ERRZPT``). A
survey larger than the four AEGIS pointings repeats them at new positions, so
tiles differ from each other the way the real ones do.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np

from jpasbatch.physics.filters import TRAYS, jpas, read_archive_csv

#: Side of a miniJPAS (JPAS-Pathfinder) pointing, degrees: 0.27 deg2 each.
TILE_SIDE_DEG = 0.52


@dataclass(frozen=True)
class Tile:
    """One emulated pointing.

    Attributes
    ----------
    tile_id
        Id written to the catalogue's ``TILE_ID``.
    ref_tile_id
        The real miniJPAS tile whose conditions it uses.
    ra, dec
        Centre, degrees.
    depth
        5-sigma AB depth in a 3 arcsec aperture per band, shape (60,).
    seeing
        FWHM in arcsec per band, shape (60,).
    zp_error
        Zero-point uncertainty in mag per band, shape (60,).
    """

    tile_id: int
    ref_tile_id: int
    ra: float
    dec: float
    depth: np.ndarray
    seeing: np.ndarray
    zp_error: np.ndarray

    @property
    def area_deg2(self) -> float:
        """Area on the sky."""
        return TILE_SIDE_DEG**2

    def random_positions(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Uniform positions on the sphere within the tile's square."""
        half = TILE_SIDE_DEG / 2
        lo, hi = np.sin(np.radians([self.dec - half, self.dec + half]))
        dec = np.degrees(np.arcsin(rng.uniform(lo, hi, n)))
        ra = self.ra + rng.uniform(-half, half, n) / np.cos(np.radians(self.dec))
        return ra % 360.0, dec


def _tile_table_path() -> Path:
    return Path(str(resources.files("jpasbatch") / "data" / "minijpas" / "minijpas.TileImage.csv"))


@cache
def reference_tiles() -> tuple[Tile, ...]:
    """The four AEGIS pointings of miniJPAS with their per-band conditions."""
    table = read_archive_csv(_tile_table_path())
    tiles = []
    for ref, rows in table.groupby("REF_TILE_ID"):
        rows = rows.sort_values("FILTER_ID")
        if list(rows["FILTER_ID"]) != list(range(1, 61)):
            raise ValueError(f"tile {ref} lacks some of the 60 filters")
        tiles.append(
            Tile(
                tile_id=int(ref),
                ref_tile_id=int(ref),
                ra=float(rows["RA"].iloc[0]),
                dec=float(rows["DEC"].iloc[0]),
                depth=rows["DEPTH3ARC5S"].to_numpy(float),
                seeing=rows["FWHMG"].to_numpy(float),
                zp_error=rows["ERRZPT"].to_numpy(float),
            )
        )
    return tuple(tiles)


def footprint(area_deg2: float) -> list[Tile]:
    """Enough pointings for ``area_deg2``: the real four first, then copies moved along RA.

    The last pointing is used only in part when the area is not a whole
    number of pointings (see :func:`tile_areas`).
    """
    refs = reference_tiles()
    n = max(1, int(np.ceil(area_deg2 / TILE_SIDE_DEG**2 - 1e-9)))
    tiles = []
    for k in range(n):
        ref = refs[k % len(refs)]
        shift = (k // len(refs)) * 2.0  # a new strip of four pointings every 2 deg in RA
        tiles.append(
            Tile(
                tile_id=ref.tile_id + 10_000 * (k // len(refs)),
                ref_tile_id=ref.ref_tile_id,
                ra=(ref.ra + shift) % 360.0,
                dec=ref.dec,
                depth=ref.depth,
                seeing=ref.seeing,
                zp_error=ref.zp_error,
            )
        )
    return tiles


def tile_areas(area_deg2: float) -> np.ndarray:
    """Area simulated in each pointing of :func:`footprint` (the last may be partial)."""
    n = len(footprint(area_deg2))
    areas = np.full(n, TILE_SIDE_DEG**2)
    areas[-1] = area_deg2 - TILE_SIDE_DEG**2 * (n - 1)
    return areas


def tray_index() -> np.ndarray:
    """Tray of each band as an integer: 1 for T1, 2 for T2, 0 where not known."""
    names = jpas().names
    out = np.zeros(len(names), dtype=int)
    for k, tray in enumerate(TRAYS, start=1):
        out[[names.index(b) for b in TRAYS[tray]]] = k
    return out
