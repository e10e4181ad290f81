"""Training spectra: template spectra observed like SDSS / BOSS / DESI fibre spectra.

Objects come from the emulator's populations (:mod:`jpasbatch.sim.populations`:
class, redshift, r magnitude, subtype) to ``r_max``, drawn in equal numbers of
STAR, GALAXY and QSO. Each gets a rest-frame template from one of two families
(``observed``: DESI redrock star and galaxy archetypes, redrock QSO-LOZ / HIZ
eigenspectra with random coefficients; ``simulated``: Pickles stars, kcorrect
mixtures, SDSS QSO eigenspectra), and is then observed:

1. redshift (stars get a radial velocity of ~100 km/s but keep label z = 0),
   mean Inoue+2014 IGM with line-of-sight fluctuations for QSOs, Galactic
   extinction (CCM89, E(B-V) ~ 0.03 mean);
2. Gaussian broadening in log-lambda: velocity dispersion (galaxies) and the
   instrument (R ~ 1500-5000, sigma 30-90 km/s), on a grid 4x finer than the
   common one, then pixel integration onto the common grid;
3. a smooth multiplicative flux-calibration error (cubic in log-lambda, ~5%);
4. scaling to the object's r magnitude and noise from a fibre S/N model:
   variance (object + sky) / (throughput x exposure), with a sky of continuum
   plus airglow lines (5577, 5890, 6300, 6364 A and the OH bands), a throughput
   falling to the blue and red ends, and an exposure drawn so that median S/N
   per pixel follows the magnitude (r = 20: ~5, lognormal scatter 0.5 dex);
5. artefacts real spectra have: sky-subtraction residuals at the sky lines
   (a few % of the line, not in the variance), unmasked cosmic-ray spikes,
   masked bad-column runs, the wavelength coverage of BOSS (3600-10350),
   SDSS-I/II (3800-9200) or DESI (3600-9824) with everything else masked.

The result is the same partitioned Zarr + Parquet layout prepared survey
spectra have (:mod:`jpasbatch.spectra.store`), with ``CLASS``, ``SUBCLASS``,
``Z``, ``MAG_R``, ``SNR``, ``FAMILY``, ``SURVEY`` and ``SPLIT`` in the index.
"""

from __future__ import annotations

import time
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from jpasbatch.physics.igm import igm_transmission
from jpasbatch.physics.templates import kcorrect_galaxies, pickles, redrock_basis
from jpasbatch.spectra import store
from jpasbatch.spectra.grid import COMMON_GRID, LogGrid, median_snr
from jpasbatch.spectra.instrument import (
    C_KMS,
    SUB,
    SURVEYS,
    broaden,
    ccm_extinction,
    fine_grid,
    sky_spectrum,
    throughput,
)

#: The three classes of the spectral models, in output order.
CLASSES = ("STAR", "GALAXY", "QSO")


class EmulateConfig(BaseModel):
    """How many spectra, of what, observed how.

    Attributes
    ----------
    n_per_class
        Spectra of each class (STAR, GALAXY, QSO).
    r_min, r_max
        Magnitude range of the targets (true rSDSS AB).
    bright_bias
        Target selection: from a pool three times larger than needed, objects
        are kept with probability ~ 10**(-0.4 * bright_bias * r), because
        spectroscopic surveys target bright objects more completely than
        number counts supply them (0: as the counts are).
    family
        Template family: ``mixed`` (each object picks one at random),
        ``observed`` (redrock) or ``simulated`` (Pickles / kcorrect / SDSS QSO).
    snr_r20
        Median S/N per pixel of an r = 20 object at the median exposure.
    snr_scatter_dex
        Lognormal scatter of the exposure, dex.
    qso_z_max
        QSOs above this redshift are not drawn (the regressors' range ends at 5).
    splits
        Fractions of train, validation and test.
    partition_size, seed
        Spectra per partition (one Dask task each) and the seed.
    """

    model_config = ConfigDict(extra="forbid")

    n_per_class: int = Field(1000, ge=1)
    r_min: float = 16.0
    r_max: float = 22.5
    family: Literal["mixed", "observed", "simulated"] = "mixed"
    bright_bias: float = Field(0.5, ge=0)
    snr_r20: float = Field(5.0, gt=0)
    snr_scatter_dex: float = Field(0.25, ge=0)
    qso_z_max: float = Field(5.0, gt=0, le=6.0)
    splits: tuple[float, float, float] = (0.7, 0.15, 0.15)
    partition_size: int = Field(500, ge=1)
    seed: int = 0


# --------------------------------------------------------------------------- population


def draw_targets(config: EmulateConfig) -> pd.DataFrame:
    """Equal numbers of STAR, GALAXY and QSO from the populations, with splits and seeds."""
    from jpasbatch.sim.populations import PopulationParams, expected_counts, sample_population

    base = PopulationParams(r_min=config.r_min, r_max=config.r_max, qso_z_max=config.qso_z_max)
    dens = expected_counts(1.0, base)
    n = config.n_per_class
    # a pool of ~3.3 n per class: QSO sky area, stars and galaxies thinned to match
    pool = 3.3 * n
    area = pool / (dens["QSO_LOW"] + dens["QSO_HIGH"])
    params = PopulationParams(
        r_min=config.r_min,
        r_max=config.r_max,
        qso_z_max=config.qso_z_max,
        star_scale=pool / (area * dens["STAR"]),
        galaxy_scale=pool / (area * dens["GALAXY"]),
    )
    rng = np.random.default_rng([config.seed, 1])
    pop = sample_population(area, rng, params)
    pop["CLASS3"] = pop["CLASS"].where(~pop["CLASS"].str.startswith("QSO"), "QSO")
    parts = []
    for c in CLASSES:
        rows = pop[pop["CLASS3"] == c]
        w = 10 ** (-0.4 * config.bright_bias * (rows["MAG_R"].to_numpy() - config.r_max))
        pick = rng.choice(len(rows), min(n, len(rows)), replace=False, p=w / w.sum())
        parts.append(rows.iloc[pick])
    pop = pd.concat(parts, ignore_index=True)
    pop = pop.iloc[rng.permutation(len(pop))].reset_index(drop=True)
    out = pd.DataFrame(
        {
            "ID": [f"EMU-{config.seed}-{i:07d}" for i in range(len(pop))],
            "CLASS": pop["CLASS3"].to_numpy(),
            "SUBCLASS": np.where(pop["CLASS3"] == "QSO", pop["CLASS"], pop["SUBTYPE"]),
            "Z": pop["Z"].to_numpy(float),
            "MAG_R": pop["MAG_R"].to_numpy(float),
        }
    )
    u = rng.random(len(out))
    tr, va, _ = config.splits
    out["SPLIT"] = np.where(u < tr, "train", np.where(u < tr + va, "validation", "test"))
    return out


# --------------------------------------------------------------------------- templates


@cache
def _redrock_rebinned(kind: str, factor: int = 5) -> tuple[np.ndarray, np.ndarray, dict]:
    """A redrock basis block-averaged by ``factor`` (0.1 A -> 0.5 A for stars and galaxies)."""
    w, b, extra = redrock_basis(kind)
    n = (w.size // factor) * factor
    return (
        w[:n].reshape(-1, factor).mean(1),
        b[:, :n].reshape(b.shape[0], -1, factor).mean(2),
        extra,
    )


@cache
def _galaxy_pools() -> dict[str, np.ndarray]:
    """redrock galaxy archetypes split in thirds by their 4000 A break (as the emulator does)."""
    w, b, extra = _redrock_rebinned("galaxy-2016")
    spec = extra["ARCHETYPE_COEFF"] @ b
    d4000 = spec[:, (w > 4000) & (w < 4100)].mean(1) / spec[:, (w > 3850) & (w < 3950)].mean(1)
    thirds = np.array_split(np.argsort(d4000), 3)
    return {"starburst": thirds[0], "spiral": thirds[1], "early": thirds[2]}


@cache
def _kcorrect() -> tuple[np.ndarray, np.ndarray]:
    lib = kcorrect_galaxies()
    sel = (lib.wavelength > 900) & (lib.wavelength < 12000)
    order = np.argsort(-lib.labels["mremain"].to_numpy())  # young first
    w, b = lib.wavelength[sel], lib.flux[order][:, sel]
    return w, b / b[:, (w > 5400) & (w < 5600)].mean(axis=1, keepdims=True)


def _nearest_letter(letter: str, available: list[str]) -> str:
    order = ["O", "B", "A", "F", "G", "K", "M"]
    if letter in available:
        return letter
    if letter == "WD":
        return "A" if "A" in available else "B"
    i = order.index(letter) if letter in order else 4
    return min((s for s in available if s in order), key=lambda s: abs(order.index(s) - i))


def rest_template(
    cls: str, subclass: str, z: float, family: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, str]:
    """One rest-frame template ``(wavelength, flux, name)`` for an object."""
    if cls == "STAR":
        if family == "observed":
            letters = ["B", "A", "F", "G", "K", "M", "WD"]
            letter = _nearest_letter(subclass, letters) if subclass != "WD" else "WD"
            w, b, extra = _redrock_rebinned(f"STAR-{letter}")
            coeff = extra["ARCHETYPE_COEFF"]
            row = int(rng.integers(len(coeff)))
            return w, coeff[row] @ b, f"redrock-STAR-{letter}-{row}"
        lib = pickles()
        types = lib.labels["sptype"].to_numpy()
        letter = _nearest_letter(subclass, sorted(set(types)))
        row = int(rng.choice(np.flatnonzero(types == letter)))
        return lib.wavelength, lib.flux[row], f"pickles-{lib.labels['name'].iloc[row]}"
    if cls == "GALAXY":
        if family == "observed":
            w, b, extra = _redrock_rebinned("galaxy-2016")
            pool = _galaxy_pools().get(subclass, _galaxy_pools()["spiral"])
            row = int(rng.choice(pool))
            return w, extra["ARCHETYPE_COEFF"][row] @ b, f"redrock-galaxy-{row}"
        w, b = _kcorrect()
        k = b.shape[0]
        alpha = {"early": np.geomspace(0.1, 5, k), "starburst": np.geomspace(5, 0.1, k)}
        coeff = rng.dirichlet(alpha.get(subclass, np.ones(k)))
        return w, coeff @ b, "kcorrect-mix"
    # QSO: first eigenspectrum plus scattered others (as the photometric emulator)
    kind = "QSO-None" if family == "simulated" else ("QSO-LOZ" if z < 1.5 else "QSO-HIZ")
    w, b, _ = redrock_basis(kind)
    norms = np.linalg.norm(b, axis=1)
    coeff = np.r_[1.0, rng.normal(0, 0.15, b.shape[0] - 1) * norms[0] / norms[1:]]
    flux = coeff @ b
    # PCA mixtures can dip below zero far from the lines: floor at 2% of the median
    flux = np.maximum(flux, 0.02 * np.median(np.abs(flux)))
    return w, flux, f"redrock-{kind}"


# --------------------------------------------------------------------------- observing


def observe(
    targets: pd.DataFrame, seed: int, config: EmulateConfig, grid: LogGrid = COMMON_GRID
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """Emulated spectra of ``targets`` on ``grid``: index, flux, ivar, good.

    Flux is in 1e-17 erg s-1 cm-2 A-1 (the SDSS unit, times the r magnitude scale).
    """
    rng = np.random.default_rng(seed)
    n = len(targets)
    fine = fine_grid(grid)
    fine_step_kms = C_KMS * np.log(10) * grid.step / SUB
    rest = np.zeros((n, fine.size))
    covered = np.ones((n, fine.size), bool)
    families, names = [], []
    cls = targets["CLASS"].to_numpy()
    z = targets["Z"].to_numpy(float)
    z_obs = z.copy()
    star = cls == "STAR"
    z_obs[star] = rng.normal(0, 100, star.sum()) / C_KMS  # radial velocities
    for i, row in enumerate(targets.itertuples(index=False)):
        family = config.family
        if family == "mixed":
            family = "observed" if rng.random() < 0.5 else "simulated"
        w, f, name = rest_template(row.CLASS, row.SUBCLASS, row.Z, family, rng)
        lam = fine / (1 + z_obs[i])
        rest[i] = np.interp(lam, w, f, left=np.nan, right=np.nan)
        covered[i] = np.isfinite(rest[i])
        families.append(family)
        names.append(name)
    rest = np.where(covered, rest, 0.0)
    # QSOs: mean IGM with fluctuations (the forest), lognormal in optical depth
    qso = np.flatnonzero(cls == "QSO")
    if qso.size:
        t = np.clip(igm_transmission(fine, z[qso]), 1e-6, 1)
        field = broaden(rng.normal(0, 1, (qso.size, fine.size)), np.full(qso.size, 3.0))
        field = np.exp(0.8 * field / max(field.std(), 1e-9) - 0.32)
        rest[qso] *= np.exp(np.log(t) * field)
    rest *= ccm_extinction(fine, rng.exponential(0.03, n))
    # broadening: velocity dispersion of galaxies + the instrument
    sigma_v = np.zeros(n)
    sub = targets["SUBCLASS"].to_numpy()
    gal = cls == "GALAXY"
    sigma_v[gal] = np.where(
        sub[gal] == "early", rng.uniform(120, 300, gal.sum()), rng.uniform(40, 150, gal.sum())
    )
    sigma_instr = rng.uniform(30, 90, n)
    sigma_pix = np.hypot(sigma_v, sigma_instr) / fine_step_kms
    spec = broaden(rest, sigma_pix)
    # pixel integration onto the grid; a pixel needs all its sub-pixels covered
    flux = spec.reshape(n, grid.n, SUB).mean(2)
    good = covered.reshape(n, grid.n, SUB).all(2)
    wave = grid.wavelength
    # flux calibration: smooth multiplicative error, cubic in log-lambda
    x = np.log10(wave / 6500.0) / 0.2
    coeff = rng.normal(0, [0.04, 0.03, 0.02], (n, 3))
    flux *= np.exp(coeff @ np.stack([x, x**2 - 0.3, x**3]))
    # scale to the r magnitude: mean over 5600-6800 A (units: 1e-17 cgs)
    band = (wave > 5600) & (wave < 6800)
    level = np.array(
        [np.mean(flux[i, band & good[i]]) if (band & good[i]).any() else 0 for i in range(n)]
    )
    f_r = 2.84 * 10 ** (-0.4 * (targets["MAG_R"].to_numpy(float) - 20.0))
    flux *= (f_r / np.where(level > 0, level, 1.0))[:, None]
    # noise: variance (object + sky) / (throughput x exposure); exposure from the S/N model
    sky_sigma_a = wave * np.median(sigma_instr) / C_KMS
    sky_cont, sky_line = sky_spectrum(wave, float(np.median(sky_sigma_a)))
    sky = 2.84 * (sky_cont + sky_line)
    thr = throughput(wave)
    snr_target = config.snr_r20 * (f_r / 2.84) / np.sqrt((f_r + 2.84 * 1.2) / (2.84 + 2.84 * 1.2))
    snr_target *= 10 ** rng.normal(0, config.snr_scatter_dex, n)
    per_unit = np.clip(flux, 0, None) * np.sqrt(thr) / np.sqrt(np.clip(flux, 0, None) + sky)
    med = np.array([np.median(per_unit[i, good[i]]) if good[i].any() else 1.0 for i in range(n)])
    exposure = (snr_target / np.where(med > 0, med, 1.0)) ** 2
    sigma = np.sqrt((np.clip(flux, 0, None) + sky) / (thr * exposure[:, None]))
    obs = flux + sigma * rng.standard_normal(flux.shape)
    # sky-subtraction residuals (systematic, not in the variance) and cosmic rays
    obs += rng.normal(0, 0.03, (n, 1)) * 2.84 * sky_line * rng.lognormal(0, 0.5, (n, wave.size))
    for i in range(n):
        for j in rng.integers(0, wave.size, rng.poisson(1.0)):
            obs[i, j] += rng.uniform(10, 50) * sigma[i, j]
    ivar = 1.0 / sigma**2
    # coverage of the survey and bad-column runs
    survey = rng.choice(list(SURVEYS), n, p=[0.45, 0.25, 0.30])
    for i in range(n):
        lo, hi = SURVEYS[survey[i]]
        lo *= 1 + rng.uniform(0, 0.003)
        hi *= 1 - rng.uniform(0, 0.003)
        good[i] &= (wave >= lo) & (wave <= hi)
        for _ in range(rng.poisson(0.7)):
            start, length = int(rng.integers(0, wave.size)), int(rng.integers(2, 40))
            good[i, start : start + length] = False
    ivar = np.where(good, ivar, 0.0)
    obs = np.where(good, obs, 0.0)
    index = targets.reset_index(drop=True).copy()
    index["SNR"] = median_snr(obs, ivar, good)
    index["FAMILY"] = families
    index["TEMPLATE"] = names
    index["SURVEY"] = survey
    index["SOURCE"] = "emulated"
    return index, obs.astype(np.float32), ivar.astype(np.float32), good


def _emulate_partition(out: str, name: str, targets: pd.DataFrame, seed: int, config: dict) -> int:
    cfg = EmulateConfig(**config)
    if store.is_done(out, name):
        return len(targets)
    index, flux, ivar, good = observe(targets, seed, cfg)
    return store.write_partition(out, name, index, flux, ivar, good)


def emulate(config: EmulateConfig, out: str | Path, client=None, progress: bool = True) -> dict:
    """Write emulated training spectra to ``out`` (resumable: finished partitions are kept).

    Parameters
    ----------
    config
        What to emulate.
    out
        Output folder (the :mod:`jpasbatch.spectra.store` layout).
    client
        A Dask client; default: a local cluster (:func:`jpasbatch.distribute.dask.dask_client`).
    progress
        Show a progress bar.

    Returns
    -------
    dict
        The summary written to ``out/summary.json``.
    """
    from jpasbatch.core.provenance import provenance
    from jpasbatch.distribute.dask import map_tasks

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store.check_resume(out, config.model_dump(mode="json"))
    t0 = time.perf_counter()
    targets = draw_targets(config)
    size = config.partition_size
    chunks = [targets.iloc[s : s + size] for s in range(0, len(targets), size)]
    calls = [
        (
            str(out),
            store.partition_name(k),
            chunk,
            int(np.random.SeedSequence([config.seed, 2, k]).generate_state(1)[0]),
            config.model_dump(),
        )
        for k, chunk in enumerate(chunks)
    ]
    rows = map_tasks(_emulate_partition, calls, what="emulate", progress=progress, client=client)
    summary = {
        "kind": "emulated",
        "rows": int(sum(rows)),
        "partitions": len(chunks),
        "counts": targets["CLASS"].value_counts().to_dict(),
        "splits": targets["SPLIT"].value_counts().to_dict(),
        "grid": COMMON_GRID.to_dict(),
        "seconds": time.perf_counter() - t0,
        "provenance": provenance(parameters=config.model_dump()),
    }
    store.write_summary(out, summary)
    return summary
