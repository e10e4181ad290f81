"""Mock catalogues from the ``simulated`` spectral world, partition by partition on Dask.

Per partition (its own seed from the job seed and its index, so the output is
bit-identical whatever the number of workers): sample objects from the
population priors at natural abundance, compute their noiseless J-PAS fluxes
from the simulated world's templates, split them train / validation / test
(stratified by class, so the test split keeps realistic abundances), optionally
replace the training rows by hybrids (x ``hybrid_factor``), give every row
errors with the chosen model (``depth``: the miniJPAS tiles' depths plus shot
noise; ``similarity``: the errors of the most similar observed object in the
same 0.1-mag iSDSS bin), and compute inverse-density sampling weights (each of
STAR / GALAXY / QSO holds 1/3 of a partition's training weight).

Written through the catalogue layer as a row-partitioned dataset (schema
``MOCK``) with ``_properties.json``; finished partitions are not redone.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, field_validator

from jpasbatch.catalog.cuts import photometry_arrays
from jpasbatch.catalog.rowpart import write_partition, write_properties
from jpasbatch.catalog.schemas import BANDS, FAMILY_FIELD, MOCK, MOCK_EXT, PHYSICAL_LABELS
from jpasbatch.core.provenance import provenance
from jpasbatch.distribute.dask import map_tasks
from jpasbatch.mocks.augment import (
    balanced_split,
    drop_bands,
    hybridise,
    inverse_density_weights,
)
from jpasbatch.mocks.similarity import FluxEmbedder, assign_errors
from jpasbatch.physics.filters import jpas
from jpasbatch.physics.noise import observe
from jpasbatch.sim.families import world
from jpasbatch.sim.populations import PopulationParams, expected_counts, sample_population
from jpasbatch.sim.spectral_families import FamilyMix, check_families
from jpasbatch.sim.survey import reference_tiles

#: Band indices by pivot wavelength, and the features' reference band (never dropped).
_BAND_ORDER = np.argsort([b.pivot_wavelength for b in jpas()])
_R_BAND = BANDS.index("rSDSS")


class MocksConfig(BaseModel):
    """Parameters of a mock catalogue.

    Attributes
    ----------
    n_objects
        Objects drawn (before hybridisation), at natural abundance to ``r_max``.
    seed
        Job seed; partition ``k`` uses ``SeedSequence([seed, k])``.
    r_max
        Faintest rSDSS magnitude.
    error_model
        ``similarity`` (needs an observed catalogue) or ``depth``.
    hybridise
        Replace the training rows by ``hybrid_factor`` hybrids each (b = ``hybrid_b``),
        mixed within ``hybrid_bins`` equal-count r-magnitude bins per partition.
    qso_boost
        QSOs are drawn ``qso_boost`` times more often than on the sky: they are
        ~1% of objects to r = 24, too few for a classifier to learn from. The
        validation and test rows carry abundance weights (``WEIGHT`` = 1 /
        ``qso_boost`` for QSOs, 1 otherwise) so that metrics, early stopping and
        prior corrections can be computed at natural abundance.
    partition_rows
        Objects per partition (before hybridisation).
    embed_epochs
        Training epochs of the similarity-search embedder.
    extras
        Also write the optional ``MOCK_EXT`` columns the foundation model uses:
        ``CLASS_STAR`` (the emulator's stellarity model at a miniJPAS seeing), the
        external bands and ``MORPH_TYPE`` (:mod:`jpasbatch.sim.external`, depth
        errors), and the physical labels ``TEFF`` / ``EW_<LINE>``. Drawn from a
        random stream of their own, so the ``MOCK`` columns are the same either way.
    fast
        Coarse redshift grids (tests).
    families
        Spectral families to draw from (:data:`jpasbatch.sim.spectral_families.FAMILIES`,
        at least one per class; each object picks one of its class's uniformly,
        with randomised dust, lines, hosts and absorbers), written as the
        ``FAMILY`` column. None: the emulator's ``simulated`` world (one template
        set per class, no randomisation).
    missing_bands
        Share of training rows that lose some bands (NaN), the way real spectra
        stop short of the bluest or reddest J-PAS bands
        (:func:`jpasbatch.mocks.augment.drop_bands`).
    zero_point_mag, psf_scatter_mag
        With ``families``: domain randomisation of the photometry, per object and
        band: a Gaussian zero-point offset of this r.m.s. (mag) for every object,
        and a PSF/aperture offset for extended objects (galaxies) - real J-PAS
        bands are observed on different nights under different seeing.
    """

    model_config = ConfigDict(extra="forbid")

    n_objects: int = Field(100_000, gt=0)
    seed: int = 0
    r_max: float = 24.0
    error_model: Literal["similarity", "depth"] = "similarity"
    hybridise: bool = False
    hybrid_factor: int = Field(5, ge=1)
    hybrid_b: float = Field(0.1, gt=0)
    hybrid_bins: int = Field(15, ge=1)
    qso_boost: float = Field(1.0, ge=1)
    partition_rows: int = Field(50_000, gt=0)
    embed_epochs: int = Field(10, ge=1)
    extras: bool = False
    fast: bool = False
    families: list[str] | None = None
    missing_bands: float = Field(0.0, ge=0, le=1)
    zero_point_mag: float = Field(0.0, ge=0)
    psf_scatter_mag: float = Field(0.0, ge=0)

    @field_validator("families")
    @classmethod
    def _known_families(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else list(check_families(v))

    def schema(self) -> pa.Schema:
        """The output schema: ``MOCK`` or ``MOCK_EXT``, plus ``FAMILY`` with families."""
        schema = MOCK_EXT if self.extras else MOCK
        return schema if self.families is None else schema.append(FAMILY_FIELD)


def read_observed(path: str | Path, *, with_ids: bool = False):
    """Fluxes and relative errors (N, 60) of an ingested catalogue (HATS folder or Parquet).

    With ``with_ids``, also the ``OBJECT_ID`` of each row.
    """
    path = Path(path)
    source = path / "dataset" if (path / "dataset").is_dir() else path
    columns = [f"FLUX_{b}" for b in BANDS] + [f"FLUX_RELERR_{b}" for b in BANDS]
    table = ds.dataset(source, format="parquet").to_table(columns=["OBJECT_ID", *columns])
    flux, relerr = photometry_arrays(table)
    return (flux, relerr, table["OBJECT_ID"].to_numpy()) if with_ids else (flux, relerr)


def sample_objects(
    n: int, rng: np.random.Generator, r_max: float, qso_boost: float = 1.0
) -> pd.DataFrame:
    """Exactly ``n`` objects at natural abundance, QSOs x ``qso_boost`` (a shuffled draw)."""
    params = PopulationParams(r_max=r_max)
    params = dataclasses.replace(params, qso_scale=params.qso_scale * qso_boost)
    density = sum(expected_counts(1.0, params).values())
    pop = sample_population(1.15 * n / density, rng, params)
    while len(pop) < n:  # rare: a Poisson draw short of n
        pop = pd.concat([pop, sample_population(0.2 * n / density, rng, params)])
    return pop.sample(n=n, random_state=rng).reset_index(drop=True)


def _errors(
    flux: np.ndarray, config: MocksConfig, rng, observed, embedder
) -> tuple[np.ndarray, np.ndarray]:
    if config.error_model == "similarity":
        obs_flux, obs_relerr = observed
        # a mock needs a positive i flux to find its bin; the few that lack one
        # (templates not covering iSDSS) get the depth model instead
        ok = np.isfinite(flux[:, BANDS.index("iSDSS")]) & (flux[:, BANDS.index("iSDSS")] > 0)
        out_f, out_e = np.full_like(flux, np.nan), np.full_like(flux, np.nan)
        out_f[ok], out_e[ok], _ = assign_errors(flux[ok], obs_flux, obs_relerr, embedder, rng)
        if (~ok).any():
            out_f[~ok], out_e[~ok] = _depth_errors(flux[~ok], rng)
        return out_f, out_e
    return _depth_errors(flux, rng)


def _depth_errors(flux: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    tiles = reference_tiles()
    depth = np.stack([t.depth for t in tiles])[rng.integers(0, len(tiles), flux.shape[0])]
    obs, relerr, _ = observe(flux, depth, rng)
    return obs, relerr


def _weights(flux: np.ndarray, classes: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Inverse-density weights in class-specific spaces; STAR, GALAXY, QSO 1/3 each."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mag = -2.5 * np.log10(np.clip(flux, 1e-30, None))
    g, r, i = (mag[:, BANDS.index(b)] for b in ("gSDSS", "rSDSS", "iSDSS"))
    merged = np.where(np.char.startswith(classes.astype(str), "QSO"), "QSO", classes.astype(str))
    feats = np.full((len(flux), 3), np.nan)
    star, gal, qso = merged == "STAR", merged == "GALAXY", merged == "QSO"
    feats[star] = np.c_[g - r, r - i, r][star]  # stars: colour-magnitude
    feats[gal] = np.c_[z, r, g - r][gal]  # galaxies: redshift, magnitude, colour
    feats[qso, :2] = np.c_[z, r][qso]  # QSOs: redshift-magnitude
    # OJALA's smoothing guard: pure 1/rho gave one star 13% of its class's weight
    # (an effective sample of 1% of the rows); eps = 0.1 caps an object at 10x the
    # weight of a median-density one
    return inverse_density_weights(feats, merged, eps=0.1)


def make_partition(index: int, config: MocksConfig, observed=None, embedder=None) -> pa.Table:
    """Rows of mock partition ``index`` (MOCK schema), deterministic for (seed, index)."""
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, index]))
    n = min(config.partition_rows, config.n_objects - index * config.partition_rows)
    pop = sample_objects(n, rng, config.r_max, config.qso_boost)
    flux, labels = true_fluxes(pop, config, rng)
    classes = pop["CLASS"].to_numpy().astype(object)
    z, r_mag = pop["Z"].to_numpy(float), pop["MAG_R"].to_numpy(float)
    ids = (config.seed * 1_000_000_000 + index * 10_000_000 + np.arange(n)).astype(np.int64)
    split = balanced_split(classes, rng).astype(object)
    extra = _extra_columns(pop, flux, labels, config, index) if config.extras else None
    family = None if config.families is None else labels["FAMILY"].to_numpy().astype(object)
    if config.hybridise:
        train = split == "train"
        fh, ch, rh = hybridise(
            flux[train],
            classes[train],
            r_mag[train],
            rng,
            factor=config.hybrid_factor,
            b=config.hybrid_b,
            # mix only objects of similar brightness: the paper's ~20,000-object bins
            # cut its 300,000 training objects into ~15 magnitude bins; a partition
            # is smaller, so its bins are a fifteenth of it (a 16-mag star in a
            # 23-mag galaxy's mix would outshine it)
            bin_size=max(1, -(-int(train.sum()) // config.hybrid_bins)),
        )
        k = config.hybrid_factor
        flux = np.concatenate([fh, flux[~train]])
        classes = np.concatenate([ch, classes[~train]])
        z = np.concatenate(
            [np.tile(z[train], k), z[~train]]
        )  # the hybrid keeps its base object's z
        r_mag = np.concatenate([rh, r_mag[~train]])
        ids = np.concatenate(
            [np.tile(ids[train], k) + np.repeat(np.arange(k), train.sum()) * 1_000_000, ids[~train]]
        )
        split = np.concatenate([np.full(len(ch), "train", object), split[~train]])
        if family is not None:
            family = np.concatenate([np.tile(family[train], k), family[~train]])
        if extra is not None:  # a hybrid keeps its base object's extra columns
            extra = {
                k: np.concatenate([np.tile(v[train], config.hybrid_factor), v[~train]])
                for k, v in extra.items()
            }
    obs_flux, relerr = _errors(flux, config, rng, observed, embedder)
    train = split == "train"
    if config.missing_bands:
        drop_rng = np.random.default_rng(np.random.SeedSequence([config.seed, index, 2]))
        sub_f, sub_e = obs_flux[train], relerr[train]
        drop_bands(sub_f, sub_e, config.missing_bands, drop_rng, _BAND_ORDER, _R_BAND)
        obs_flux[train], relerr[train] = sub_f, sub_e
    weight = np.zeros(len(flux))
    # each partition holds 1/n_parts of the mass, so every class sums to 1/3 overall
    n_parts = -(-config.n_objects // config.partition_rows)
    weight[train] = _weights(flux[train], classes[train], z[train]) / n_parts
    qso = np.char.startswith(classes.astype(str), "QSO")
    weight[~train] = np.where(qso[~train], 1.0 / config.qso_boost, 1.0)
    columns = {"OBJECT_ID": ids}
    columns |= {f"FLUX_{b}": obs_flux[:, j].astype(np.float32) for j, b in enumerate(BANDS)}
    columns |= {f"FLUX_RELERR_{b}": relerr[:, j].astype(np.float32) for j, b in enumerate(BANDS)}
    columns |= {
        "CLASS": classes.astype(str),
        "Z": z,
        "MAG_R": r_mag.astype(np.float32),
        "WEIGHT": weight,
        "SPLIT": split.astype(str),
    }
    if extra is not None:
        columns |= extra
    if family is not None:
        columns["FAMILY"] = family.astype(str)
    return pa.table(columns, schema=config.schema())


def true_fluxes(
    pop: pd.DataFrame, config: MocksConfig, rng: np.random.Generator
) -> tuple[np.ndarray, pd.DataFrame]:
    """Noiseless fluxes and labels: the families' (randomised), or the simulated world's.

    The photometric randomisation (zero points, PSF) is applied here too: it is
    part of the object's "true" appearance that the error model then observes.
    """
    if config.families is None:
        return world("simulated", config.fast).true_fluxes(pop, rng)
    flux, labels = FamilyMix(config.families).true_fluxes(pop, rng)
    n, nb = flux.shape
    dmag = rng.normal(0, config.zero_point_mag, (n, nb)) if config.zero_point_mag else 0.0
    if config.psf_scatter_mag:
        extended = (pop["CLASS"].to_numpy() == "GALAXY")[:, None]
        dmag = dmag + extended * rng.normal(0, config.psf_scatter_mag, (n, nb))
    return flux * 10 ** (-0.4 * dmag), labels


def _extra_columns(
    pop: pd.DataFrame, flux: np.ndarray, labels: pd.DataFrame, config: MocksConfig, index: int
) -> dict[str, np.ndarray]:
    """The optional ``MOCK_EXT`` columns of one partition's objects (before hybridisation)."""
    from jpasbatch.sim.emulator import class_star
    from jpasbatch.sim.external import external_columns

    # a stream of its own: the MOCK columns do not change when extras are on
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, index, 1]))
    tiles = reference_tiles()
    seeing_r = np.array([t.seeing[BANDS.index("rSDSS")] for t in tiles])
    seeing = seeing_r[rng.integers(0, len(tiles), len(pop))]
    half_light = pop["HALF_LIGHT_ARCSEC"].to_numpy(float)
    mag_r = pop["MAG_R"].to_numpy(float)
    cols = {"CLASS_STAR": class_star(half_light, mag_r, seeing, rng)}
    cols |= external_columns(
        flux,
        pop["CLASS"].to_numpy(),
        pop["Z"].to_numpy(float),
        mag_r,
        pop["SUBTYPE"].to_numpy(),
        half_light,
        labels["TEFF"].to_numpy(float),
        "simulated",
        rng,
    )
    cls = pop["CLASS"].to_numpy()
    for name in PHYSICAL_LABELS:
        # the spectral families carry no line widths: absent labels are missing (NaN)
        v = labels[name].to_numpy(float).copy() if name in labels else np.full(len(pop), np.nan)
        # OJALA's label sets: Teff for stars, line equivalent widths for galaxies
        v[cls != ("STAR" if name == "TEFF" else "GALAXY")] = np.nan
        cols[name] = v
    return cols


def make_mocks(
    out: str | Path,
    config: MocksConfig | None = None,
    *,
    observed: str | Path | None = None,
    client=None,
    address: str | None = None,
    n_workers: int | None = None,
) -> dict:
    """Build a mock catalogue in ``out`` on Dask; returns its properties.

    Parameters
    ----------
    out
        Dataset folder (``part-NNNNN.parquet`` + ``_properties.json``).
    config
        Mock parameters.
    observed
        The ingested observed catalogue; required by the ``similarity`` model.
    client, address, n_workers
        The Dask cluster (see :func:`jpasbatch.distribute.dask.dask_client`).
    """
    config = config or MocksConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    obs, embedder = None, None
    if config.error_model == "similarity":
        if observed is None:
            raise ValueError(
                "the similarity error model needs an observed catalogue (observed=...)"
            )
        obs = read_observed(observed)
        embedder = FluxEmbedder().fit(obs[0], epochs=config.embed_epochs, seed=config.seed)
        embedder.save(out / "_embedder")
    n_parts = -(-config.n_objects // config.partition_rows)
    # the observed catalogue and its embedder go to each worker once, not per partition
    rows = map_tasks(_write_partition, [(k, config, str(out)) for k in range(n_parts)],
                     what="mocks", shared=[obs, embedder], client=client, address=address,
                     n_workers=n_workers)  # fmt: skip
    prov = provenance(
        inputs={} if observed is None else {"observed": str(observed)},
        parameters=config.model_dump(),
    )
    parts = [f"part-{k:05d}.parquet" for k in range(n_parts)]
    return write_properties(out, config.schema(), parts, int(sum(rows)), prov)


def _write_partition(observed, embedder, index: int, config: MocksConfig, out: str) -> int:
    path = Path(out) / f"part-{index:05d}.parquet"
    if path.exists():  # resume: finished partitions stay
        return pq.read_metadata(path).num_rows
    table = make_partition(index, config, observed, embedder)
    return write_partition(table, path, config.schema(), {"seed": config.seed, "partition": index})


def error_model_report(
    out: str | Path,
    observed: str | Path,
    config: MocksConfig | None = None,
    n_sample: int = 20_000,
    *,
    truth: str | Path | None = None,
) -> dict:
    """Diagnostics: the same noiseless mocks with both error models, against the survey.

    Writes S/N-vs-magnitude, colour-colour and number-count figures and the
    per-band KS distances of S/N at fixed magnitude (``report.md``) into ``out``.
    With the emulator's ``truth`` folder, observed objects are shown by class.
    """
    from jpasbatch.mocks.report import write_report

    config = config or MocksConfig()
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 10**6]))
    pop = sample_objects(n_sample, rng, config.r_max)
    flux, _ = true_fluxes(pop, config, rng)
    *obs, ids = read_observed(observed, with_ids=True)
    obs_class = None
    if truth is not None:
        classes = pd.read_parquet(truth, columns=["OBJECT_ID", "CLASS"]).set_index("OBJECT_ID")
        obs_class = classes["CLASS"].reindex(ids).to_numpy()
    embedder = FluxEmbedder().fit(obs[0], epochs=config.embed_epochs, seed=config.seed)
    models = {
        "depth": _depth_errors(flux, rng),
        "similarity": _errors(
            flux, config.model_copy(update={"error_model": "similarity"}), rng, obs, embedder
        ),
    }
    return write_report(
        Path(out),
        obs_flux=obs[0],
        obs_relerr=obs[1],
        obs_class=obs_class,
        models=models,
        mock_class=pop["CLASS"].to_numpy(),
    )
