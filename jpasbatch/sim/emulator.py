"""The survey emulator: an "observed" J-PAS catalogue with a hidden truth table.

One task per pointing, each with its own seed derived from the job seed and the
pointing's index, so the output is bit-identical whatever the number of
workers. Per pointing: sample the population, draw spectra from the
``observed`` world, lose the light an extended source puts outside the 3 arcsec
aperture at that band's seeing, add the pointing's zero-point offsets (shared by
all its objects, and partly by the bands of one tray), observe with the
pointing's depths, flag point-like sources, blends and masked regions, and pick
a bright-biased, class-dependent spectroscopic cross-match subset.

Writes, per pointing, ``catalogue/tile-<id>.parquet`` in the CEFCA archive
layout (read back by :mod:`jpasbatch.catalog.readers` like real data) and
``truth/tile-<id>.parquet`` (class, redshift, magnitude, physical labels, the
noiseless fluxes and the cross-match flag), and ``external/tile-<id>.parquet``
(schema ``EXTERNAL``: the Legacy Surveys g r z / WISE W1 W2 fluxes and the
morphological type a cross-match with those surveys would add, see
:mod:`jpasbatch.sim.external`; drawn from a random stream of its own, so the
catalogue and truth are the same with or without it).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, field_validator

from jpasbatch.catalog.readers import write_archive_like
from jpasbatch.catalog.schemas import BANDS, EXTERNAL, OBSERVED
from jpasbatch.core import atomic
from jpasbatch.core.provenance import provenance
from jpasbatch.distribute.dask import map_tasks
from jpasbatch.physics.noise import observe
from jpasbatch.sim.families import LINES, world
from jpasbatch.sim.populations import PopulationParams, sample_population
from jpasbatch.sim.spectral_families import FamilyMix, check_families
from jpasbatch.sim.survey import TILE_SIDE_DEG, Tile, footprint, tile_areas, tray_index

#: Radius of the archive's 3 arcsec aperture.
APERTURE_RADIUS = 1.5
SUMMARY = "simulate_summary.json"


class SimulateConfig(BaseModel):
    """Parameters of the survey emulator.

    Attributes
    ----------
    area_deg2
        Sky area; 1 deg2 is about the miniJPAS AEGIS field.
    seed
        Job seed; each pointing derives its own from it.
    r_max
        Faintest rSDSS magnitude simulated.
    tray_zp_scatter
        Zero-point scatter shared by the bands of one tray in one pointing (mag).
    flag_fraction, mask_fraction
        Fractions of objects with FLAGS != 0 (blends) and MASK_FLAGS != 0.
    missing_band_fraction
        Fraction of single band measurements lost (NaN), as in the archive.
    vignetting, local_depth_scatter
        Depth loss at a pointing's corners, and the scale of the object-specific
        depth loss from the local background, in mag (see :func:`local_depth`).
    fast
        Coarser redshift grids for the spectra (tests).
    families
        Draw the survey's objects from these spectral families
        (:mod:`jpasbatch.sim.spectral_families`, randomised) instead of the
        ``observed`` world: a survey of a family the models never trained on.
        The truth then has ``FAMILY`` and no line equivalent widths.
    """

    model_config = ConfigDict(extra="forbid")

    area_deg2: float = Field(1.0, gt=0)
    seed: int = 0
    r_max: float = 24.0
    tray_zp_scatter: float = Field(0.02, ge=0)
    flag_fraction: float = Field(0.04, ge=0, le=1)
    mask_fraction: float = Field(0.02, ge=0, le=1)
    missing_band_fraction: float = Field(0.005, ge=0, le=1)
    vignetting: float = Field(0.3, ge=0)
    local_depth_scatter: float = Field(0.15, ge=0)
    fast: bool = False
    families: list[str] | None = None

    @field_validator("families")
    @classmethod
    def _known_families(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else list(check_families(v))


def aperture_fraction(half_light: np.ndarray, seeing: np.ndarray) -> np.ndarray:
    """Aperture-corrected flux over total flux, for a source of given half-light radius.

    Source and PSF are approximated as Gaussians: the 3 arcsec aperture catches
    ``1 - exp(-R^2 / 2 s^2)`` of the light, and the archive's aperture
    correction divides by what it catches of a point source, so point sources
    come out whole and extended ones lose light, by an amount that changes from
    band to band with the seeing.
    """
    s_psf = seeing / 2.3548
    s_src = np.sqrt(s_psf**2 + (np.asarray(half_light)[..., None] / 1.1774) ** 2)
    caught = 1 - np.exp(-(APERTURE_RADIUS**2) / (2 * s_src**2))
    return caught / (1 - np.exp(-(APERTURE_RADIUS**2) / (2 * s_psf**2)))


def local_depth(
    tile: Tile, ra: np.ndarray, dec: np.ndarray, rng: np.random.Generator, config: SimulateConfig
) -> np.ndarray:
    """Per-object 5-sigma depths (N, 60): the tile's, shallower off-centre and locally.

    The archive's ``DEPTH3ARC5S`` is a tile average. Vignetting and the dither
    pattern make the edges of a pointing shallower (``vignetting`` mag at the
    corners, quadratic in radius), and the local background (halos of bright
    stars, scattered light) adds an object-specific offset shared by all bands
    (``local_depth_scatter`` mag). A mock error model that knows only the tile
    depths cannot reproduce this; copying the errors of similar observed
    objects can.
    """
    half = TILE_SIDE_DEG / 2
    x = (ra - tile.ra) * np.cos(np.radians(tile.dec)) / half
    y = (dec - tile.dec) / half
    radial = config.vignetting * (x**2 + y**2) / 2
    local = np.abs(rng.normal(0, config.local_depth_scatter, ra.size))
    return tile.depth[None, :] - (radial + local)[:, None]


def class_star(half_light: np.ndarray, mag_r: np.ndarray, seeing_r: float, rng) -> np.ndarray:
    """A SExtractor-like stellarity: near 1 for point sources, blurred at faint magnitudes."""
    # the transition sits at a half-light radius of a quarter of the seeing FWHM
    # (~0.2 arcsec at miniJPAS seeing), where a source is barely wider than the PSF
    size = np.asarray(half_light) / seeing_r
    clean = 1 / (1 + np.exp((size - 0.25) / 0.04))
    blur = 0.03 + 0.25 * 10 ** (0.4 * (np.asarray(mag_r) - 23.5))
    return np.clip(clean + rng.normal(0, blur), 0, 1).astype(np.float32)


def xmatch_probability(cls: np.ndarray, mag_r: np.ndarray) -> np.ndarray:
    """Probability of a spectroscopic redshift, like SDSS/DESI target selection.

    Bright-biased and class-dependent: QSOs are targeted deepest (to r ~ 22.5),
    galaxies to r ~ 20.5, stars sparsely.
    """
    limit = np.select([cls == "STAR", cls == "GALAXY"], [19.0, 20.5], 22.5)
    ceiling = np.select([cls == "STAR", cls == "GALAXY"], [0.15, 0.7], 0.8)
    return ceiling / (1 + np.exp((mag_r - limit) / 0.3))


def simulate_tile(
    tile: Tile, area: float, config: SimulateConfig, index: int
) -> tuple[pa.Table, pd.DataFrame]:
    """Catalogue (OBSERVED schema) and truth table of one pointing.

    Parameters
    ----------
    tile
        The pointing and its conditions.
    area
        Area simulated in it, deg2.
    config
        Emulator parameters.
    index
        Position of the pointing in the footprint (seeds it).
    """
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, index]))
    pop = sample_population(area, rng, PopulationParams(r_max=config.r_max)).reset_index(drop=True)
    n = len(pop)
    ra, dec = tile.random_positions(n, rng)
    if config.families is None:
        true_flux, labels = world("observed", config.fast).true_fluxes(pop, rng)
    else:
        true_flux, labels = FamilyMix(config.families).true_fluxes(pop, rng)
        labels = labels.assign(**{f"EW_{k}": np.nan for k in LINES})
    half_light = pop["HALF_LIGHT_ARCSEC"].to_numpy(float)
    aper_flux = true_flux * aperture_fraction(half_light, tile.seeing)

    # zero points: one offset per band and pointing, plus one per tray
    trays = tray_index()
    tray_offset = rng.normal(0, config.tray_zp_scatter, trays.max() + 1)
    tray_offset[0] = 0.0
    zp = rng.normal(0, tile.zp_error) + tray_offset[trays]
    missing = rng.random(aper_flux.shape) < config.missing_band_fraction
    depth = local_depth(tile, ra, dec, rng, config)
    flux, relerr, _ = observe(aper_flux, depth, rng, zp_offsets_mag=zp, missing=missing)

    r = BANDS.index("rSDSS")
    number = np.arange(1, n + 1)
    flags = np.where(rng.random(n) < config.flag_fraction, 2, 0).astype(np.int32)
    mask_flags = np.where(rng.random(n) < config.mask_fraction, 1, 0).astype(np.int32)
    columns = {
        "OBJECT_ID": tile.tile_id * 1_000_000 + number,
        "TILE_ID": np.full(n, tile.tile_id, np.int32),
        "NUMBER": number.astype(np.int32),
        "ALPHA_J2000": ra,
        "DELTA_J2000": dec,
        "FLAGS": flags,
        "MASK_FLAGS": mask_flags,
        "CLASS_STAR": class_star(half_light, pop["MAG_R"].to_numpy(), tile.seeing[r], rng),
    }
    columns |= {f"FLUX_{b}": flux[:, k].astype(np.float32) for k, b in enumerate(BANDS)}
    columns |= {f"FLUX_RELERR_{b}": relerr[:, k].astype(np.float32) for k, b in enumerate(BANDS)}
    catalogue = pa.table(columns, schema=OBSERVED)

    truth = pd.concat([pop, labels], axis=1)
    truth.insert(0, "OBJECT_ID", columns["OBJECT_ID"])
    truth["IN_XMATCH"] = rng.random(n) < xmatch_probability(
        pop["CLASS"].to_numpy(), pop["MAG_R"].to_numpy()
    )
    true_cols = pd.DataFrame(
        true_flux.astype(np.float32), columns=[f"TRUE_FLUX_{b}" for b in BANDS]
    )
    return catalogue, pd.concat([truth, true_cols], axis=1)


def external_table(truth: pd.DataFrame, config: SimulateConfig, index: int) -> pa.Table:
    """The external photometry of one pointing (schema ``EXTERNAL``), from its truth table."""
    from jpasbatch.sim.external import external_from_truth

    rng = np.random.default_rng(np.random.SeedSequence([config.seed, index, 1]))
    return pa.Table.from_pandas(
        external_from_truth(truth, "observed", rng), schema=EXTERNAL, preserve_index=False
    )


def _run_tile(tile: Tile, area: float, config: SimulateConfig, index: int, out: str) -> dict:
    """Simulate and write one pointing (skipped when its files exist: resume)."""
    out_dir = Path(out)
    cat_path = out_dir / "catalogue" / f"tile-{tile.tile_id}.parquet"
    truth_path = out_dir / "truth" / f"tile-{tile.tile_id}.parquet"
    ext_path = out_dir / "external" / f"tile-{tile.tile_id}.parquet"
    if not (cat_path.exists() and truth_path.exists() and ext_path.exists()):
        catalogue, truth = simulate_tile(tile, area, config, index)
        external = external_table(truth, config, index)
        for path, write in (
            (truth_path, lambda p: truth.to_parquet(p, index=False)),
            (ext_path, lambda p: pq.write_table(external, p)),
            (cat_path, lambda p: write_archive_like(p, catalogue, layout="array", fmt="parquet")),
        ):
            with atomic.replacing(path) as tmp:
                write(tmp)
    truth = pq.read_table(truth_path, columns=["CLASS", "IN_XMATCH"]).to_pandas()
    return {
        "tile": tile.tile_id,
        "rows": len(truth),
        "classes": truth["CLASS"].value_counts().to_dict(),
        "xmatch": int(truth["IN_XMATCH"].sum()),
    }


def simulate(
    out: str | Path,
    config: SimulateConfig | None = None,
    *,
    client=None,
    address: str | None = None,
    n_workers: int | None = None,
) -> dict:
    """Run the emulator over the whole footprint on Dask; returns the summary.

    Pointings already written (an interrupted run) are not simulated again.
    """
    config = config or SimulateConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tiles = footprint(config.area_deg2)
    areas = tile_areas(config.area_deg2)
    calls = [
        (t, float(a), config, i, str(out))
        for i, (t, a) in enumerate(zip(tiles, areas, strict=True))
    ]
    results = map_tasks(_run_tile, calls, what="simulate", client=client, address=address,
                        n_workers=n_workers)  # fmt: skip
    classes: dict[str, int] = {}
    for r in results:
        for k, v in r["classes"].items():
            classes[k] = classes.get(k, 0) + v
    summary = {
        "rows": sum(r["rows"] for r in results),
        "classes": classes,
        "xmatch": sum(r["xmatch"] for r in results),
        "tiles": [r["tile"] for r in results],
        "catalogue": str(out / "catalogue"),
        "truth": str(out / "truth"),
        "external": str(out / "external"),
        "provenance": provenance(parameters=config.model_dump()),
    }
    (out / SUMMARY).write_text(json.dumps(summary, indent=1))
    return summary
