"""Benchmark runner: each benchmark times a stage and its peer in the same run.

Usage::

    python -m benchmarks.run [--only NAME ...] [--quick]

Each benchmark writes ``benchmarks/results/<name>.json`` (machine, versions,
command, figures) and ``benchmarks/RESULTS.md`` is regenerated from every JSON
record there, so no number in it is typed by hand. A benchmark whose answers
differ from its peer's beyond tolerance fails loudly: a fast wrong stage must
not "win".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"


class BenchmarkMismatch(AssertionError):
    """A stage's answer differs from its peer's beyond tolerance."""


def machine() -> dict:
    """Where the figures were measured."""
    import torch

    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": "cpu",
    }
    if torch.cuda.is_available():
        info["device"] = torch.cuda.get_device_name(0)
    try:
        with open("/proc/meminfo") as fh:
            info["memory_gb"] = round(int(fh.readline().split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return info


def timed(fn: Callable[[], object], repeats: int) -> tuple[list[float], object]:
    """Wall times of ``repeats`` calls, and the last result."""
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return times, out


def summary_of(times: list[float], n: int) -> dict:
    """Median and spread of a list of wall times for ``n`` items."""
    t = np.asarray(times)
    med = float(np.median(t))
    return {
        "n": n,
        "repeats": len(t),
        "median_s": med,
        "min_s": float(t.min()),
        "max_s": float(t.max()),
        "per_s": n / med,
    }


# --------------------------------------------------------------------------- benchmarks
def bench_photometry(quick: bool) -> dict:
    """Synthetic photometry of 10,000 spectra x 60 bands vs speclite's get_ab_magnitudes."""
    import torch

    from jpasbatch.filters import jpas
    from jpasbatch.photometry import SyntheticPhotometry

    n = 300 if quick else 10_000
    n_pix = 4000
    wave = np.linspace(3000.0, 11100.0, n_pix)
    rng = np.random.default_rng(0)
    basis = np.cos(np.pi * np.arange(8)[:, None] * (wave - wave[0]) / (wave[-1] - wave[0]))
    flux = (3 + 0.3 * rng.normal(size=(n, 8)) @ basis).clip(0.05) * 1e-17

    seq = jpas().to_speclite()
    t_speclite, tab = timed(lambda: seq.get_ab_magnitudes(flux, wave), 1 if quick else 2)
    ref = np.array([np.asarray(tab[name]) for name in seq.names]).T

    t0 = time.perf_counter()
    sp = SyntheticPhotometry()
    sp.matrix(wave)
    setup_s = time.perf_counter() - t0
    t_ours, res = timed(lambda: sp(wave, flux), 5)
    dm = float(np.max(np.abs(res.mag - ref)))

    ft = torch.from_numpy(flux)
    t_torch, (_, tmag, _) = timed(lambda: sp.torch_fluxes(wave, ft), 5)
    dm_torch = float(np.max(np.abs(tmag.numpy() - res.mag)))

    # per-object redshifts: each spectrum at its own z. A 1 A rest-frame grid keeps
    # speclite's own quadrature (which samples the curve on the spectrum grid)
    # accurate after the (1+z) stretch, so the comparison tests us, not it.
    n_z = min(n, 2000)
    zs = rng.uniform(0.0, 0.3, n_z)
    rest = np.arange(2000.0, 11101.0, 1.0)
    basis = np.cos(np.pi * np.arange(8)[:, None] * (rest - rest[0]) / (rest[-1] - rest[0]))
    flux_z = (3 + 0.3 * rng.normal(size=(n_z, 8)) @ basis).clip(0.05) * 1e-17
    t_z, res_z = timed(lambda: sp(rest, flux_z, z=zs), 3)
    # the same objects one by one through speclite, on their own observed grids
    m = 20 if quick else 200
    t0 = time.perf_counter()
    ref_z = np.array(
        [
            [
                float(v[0])
                for v in seq.get_ab_magnitudes(flux_z[i] / (1 + zs[i]), rest * (1 + zs[i])).values()
            ]
            for i in range(m)
        ]
    )
    t_speclite_z = time.perf_counter() - t0
    dm_z = float(np.nanmax(np.abs(res_z.mag[:m] - ref_z)))

    for name, value in (("numpy", dm), ("torch", dm_torch), ("per-object z", dm_z)):
        if not value < 1e-3:
            raise BenchmarkMismatch(f"photometry ({name}) differs from speclite by {value:.2e} mag")

    ours, peer = summary_of(t_ours, n), summary_of(t_speclite, n)
    return {
        "name": "photometry",
        "title": "Synthetic photometry, 60 J-PAS bands, 4,000-pixel spectra "
        "(per-object z: 9,101-pixel rest-frame spectra)",
        "goal": "at least 50x speclite get_ab_magnitudes, same answers to 1e-3 mag",
        "goal_met": ours["per_s"] / peer["per_s"] >= 50 and dm < 1e-3,
        "rows": [
            {"what": "jpasbatch numpy (fixed grid)", **ours, "max_abs_dmag_vs_peer": dm},
            {
                "what": "jpasbatch torch CPU float64 (dmag vs numpy)",
                **summary_of(t_torch, n),
                "max_abs_dmag_vs_peer": dm_torch,
            },
            {"what": "speclite get_ab_magnitudes (peer)", **peer},
            {
                "what": "jpasbatch numpy, per-object z",
                **summary_of(t_z, n_z),
                "max_abs_dmag_vs_peer": dm_z,
            },
            {"what": "speclite, one call per z (peer)", **summary_of([t_speclite_z], m)},
        ],
        "ratio_to_peer": ours["per_s"] / peer["per_s"],
        "ratio_to_peer_per_object_z": (n_z / np.median(t_z)) / (m / t_speclite_z),
        "setup_s": setup_s,
    }


class PeakMemory:
    """Peak resident memory of this process and all its children (Dask workers), sampled."""

    def __init__(self, interval: float = 0.2) -> None:
        import threading

        import psutil

        self._proc, self._interval = psutil.Process(), interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = 0
            for p in [self._proc, *self._proc.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(self._interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def bench_ingest(quick: bool) -> dict:
    """Ingest of a generated 10-million-row, 60-band catalogue vs plain pyarrow read+write."""
    import shutil
    import tempfile

    import pyarrow.parquet as pq

    from jpasbatch.catalog.ingest import ingest
    from jpasbatch.catalog.random import random_catalogue
    from jpasbatch.catalog.readers import write_archive_like
    from jpasbatch.distributed import dask_client

    n_files, per_file = (2, 10_000) if quick else (10, 1_000_000)
    n = n_files * per_file
    tmp = Path(tempfile.mkdtemp(prefix="jpasbatch-bench-ingest-"))
    try:
        files = []
        for i in range(n_files):
            table = random_catalogue(
                per_file, seed=i, tile_id=2241 + i, first_number=0, bad_fraction=0.01
            )
            files.append(
                write_archive_like(
                    tmp / f"tile{i:02d}.parquet", table, layout="array", fmt="parquet"
                )
            )
            del table

        def plain_copy() -> None:
            # the peer: stream the same rows through pyarrow, read and write, no checks
            for path in files:
                src = pq.ParquetFile(path)
                with pq.ParquetWriter(tmp / "copy.parquet", src.schema_arrow) as writer:
                    for batch in src.iter_batches(batch_size=200_000):
                        writer.write_batch(batch)

        t_peer, _ = timed(plain_copy, 1 if not quick else 2)
        with dask_client() as client, PeakMemory() as mem:
            t0 = time.perf_counter()
            summary = ingest(files, tmp / "catalog", client=client, progress=False)
            t_ours = [time.perf_counter() - t0]
        if summary.rows_in != n or summary.rows_in != summary.rows_kept + summary.rows_rejected:
            raise BenchmarkMismatch(f"ingest lost rows: {summary}")
        input_gb = sum(p.stat().st_size for p in files) / 1e9
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ours, peer = summary_of(t_ours, n), summary_of(t_peer, n)
    peak_gb = mem.peak / 1e9
    return {
        "name": "ingest",
        "title": f"Ingest: {n:,} rows x 60 bands (flux + error), {n_files} Parquet files, "
        f"{input_gb:.1f} GB",
        "goal": "peak memory under 6 GB on 2 cores; report rows/s and ratio to plain pyarrow",
        "goal_met": peak_gb < 6,
        "rows": [
            {"what": "jpasbatch ingest (validate, cut, HATS partition)", **ours},
            {"what": "pyarrow read + write (peer)", **peer},
        ],
        "ratio_to_peer": ours["per_s"] / peer["per_s"],
        "peak_memory_gb": peak_gb,
        "partitions": summary.partitions,
        "rows_rejected": summary.rows_rejected,
        "validate_s": summary.seconds["validate"],
        "hats_partition_s": summary.seconds["partition"],
    }


def _brute_force_matches(emb_mock, bins_mock, emb_obs, bins_obs) -> np.ndarray:
    """Nearest observed object (embedding space) within the same magnitude bin, by brute force."""
    out = np.empty(len(emb_mock), dtype=np.int64)
    for b in np.unique(bins_mock):
        m, o = np.flatnonzero(bins_mock == b), np.flatnonzero(bins_obs == b)
        d = ((emb_mock[m, None, :] - emb_obs[None, o, :]) ** 2).sum(-1)
        out[m] = o[np.argmin(d, axis=1)]
    return out


def bench_mocks(quick: bool) -> dict:
    """1,000,000 mock objects end to end on 2 cores; similarity search vs brute force."""
    import shutil
    import tempfile

    import pyarrow.parquet as pq

    from jpasbatch.distributed import dask_client
    from jpasbatch.mocks.pipeline import MocksConfig, make_mocks, read_observed
    from jpasbatch.mocks.similarity import FluxEmbedder, assign_errors, i_magnitude_bins
    from jpasbatch.sim.emulator import SimulateConfig, simulate_tile
    from jpasbatch.sim.survey import footprint

    n = 20_000 if quick else 1_000_000
    tmp = Path(tempfile.mkdtemp(prefix="jpasbatch-bench-mocks-"))
    try:
        # the observed survey to match against: one emulated miniJPAS pointing
        cat, _ = simulate_tile(footprint(0.27)[0], 0.27, SimulateConfig(fast=quick), 0)
        pq.write_table(cat, tmp / "observed.parquet")
        obs_flux, obs_relerr = read_observed(tmp / "observed.parquet")

        # similarity search against brute force on the same mocks
        m = 2_000 if quick else 20_000
        rng = np.random.default_rng(0)
        emb = FluxEmbedder().fit(obs_flux, epochs=5, seed=0)
        mock_flux = obs_flux[rng.integers(0, len(obs_flux), m)] * rng.lognormal(0, 0.05, (m, 60))
        ok = mock_flux[:, 59] > 0
        mock_flux = mock_flux[ok]
        t_kd, (_, _, match) = timed(
            lambda: assign_errors(mock_flux, obs_flux, obs_relerr, emb, 1), 3
        )
        bins_obs = i_magnitude_bins(obs_flux, "iSDSS", 0.1)
        bins_mock = i_magnitude_bins(mock_flux, "iSDSS", 0.1)
        # mocks in bins without observed objects fall back to a neighbour bin: compare the rest
        inside = np.isin(bins_mock, bins_obs[bins_obs >= 0])
        emb_obs, emb_mock = emb.embed(obs_flux), emb.embed(mock_flux)
        t_bf, ref = timed(
            lambda: _brute_force_matches(emb_mock[inside], bins_mock[inside], emb_obs, bins_obs), 1
        )
        agree = float(np.mean(match[inside] == ref))
        if agree < 0.999:
            raise BenchmarkMismatch(
                f"similarity search agrees with brute force on {agree:.4f} only"
            )

        config = MocksConfig(
            n_objects=n, partition_rows=50_000 if not quick else 10_000, fast=quick
        )
        with dask_client() as client, PeakMemory() as mem:
            t0 = time.perf_counter()
            props = make_mocks(
                tmp / "mocks", config, observed=tmp / "observed.parquet", client=client
            )
            t_mocks = [time.perf_counter() - t0]
        if props["total_rows"] != n:
            raise BenchmarkMismatch(f"mocks wrote {props['total_rows']} rows, expected {n}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ours = summary_of(t_mocks, n)
    kd, bf = summary_of(t_kd, int(inside.sum())), summary_of(t_bf, int(inside.sum()))
    peak_gb = mem.peak / 1e9
    return {
        "name": "mocks",
        "title": f"Mock catalogue: {n:,} objects end to end (spectra, photometry, "
        "similarity-search errors, write) on a local Dask cluster",
        "goal": "under 10 minutes and 8 GB peak memory for 1,000,000 objects",
        "goal_met": bool(ours["median_s"] < 600 and peak_gb < 8),
        "rows": [
            {"what": "jpasbatch mocks end to end", **ours},
            {"what": "similarity search (embedding + cKDTree per 0.1-mag bin)", **kd},
            {"what": "brute-force nearest neighbours, same bins (peer)", **bf},
        ],
        "ratio_to_peer": kd["per_s"] / bf["per_s"],
        "similarity_agreement_with_brute_force": agree,
        "peak_memory_gb": peak_gb,
        "observed_catalogue_rows": len(obs_flux),
    }


def _classify(name: str) -> Callable[[bool], dict]:
    # imported lazily: benchmarks.classify needs this module's helpers
    def run(quick: bool) -> dict:
        from benchmarks import classify

        return getattr(classify, f"bench_{name}")(quick)

    return run


BENCHMARKS: dict[str, Callable[[bool], dict]] = {
    "committee": _classify("committee"),
    "training": _classify("training"),
    "mocks": bench_mocks,
    "photometry": bench_photometry,
    "ingest": bench_ingest,
}


# --------------------------------------------------------------------------- report
def write_results_md(results_dir: Path = RESULTS_DIR, out: Path = HERE / "RESULTS.md") -> Path:
    """Regenerate RESULTS.md from every JSON record in ``results_dir``."""
    lines = [
        "# Benchmark results",
        "",
        "Generated by `python -m benchmarks.run` from `benchmarks/results/*.json`; do not edit.",
        "Each stage is timed against its peer in the same run; the ratio is what to compare",
        "across machines.",
        "",
    ]
    for path in sorted(results_dir.glob("*.json")):
        rec = json.loads(path.read_text())
        m = rec["machine"]
        lines += [
            f"## {rec['title']}",
            "",
            f"- command: `{rec['command']}` ({rec['created']})",
            f"- machine: {m['processor']}, {m['cpu_count']} cores, {m.get('memory_gb', '?')} GB, "
            f"device {m['device']}; Python {m['python']}, numpy {m['numpy']}, torch {m['torch']}",
            f"- goal: {rec['goal']} — **{'met' if rec['goal_met'] else 'NOT met'}**",
            f"- ratio to peer: **{rec['ratio_to_peer']:.3g}x**",
            "",
            "| what | n | repeats | median s | min s | max s | items/s | max abs diff vs peer |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in rec["rows"]:
            dm = row.get("max_abs_dmag_vs_peer")
            lines.append(
                f"| {row['what']} | {row['n']} | {row['repeats']} | {row['median_s']:.4f} | "
                f"{row['min_s']:.4f} | {row['max_s']:.4f} | {row['per_s']:,.0f} | "
                f"{'' if dm is None else f'{dm:.1e}'} |"
            )
        skip = {
            "name",
            "title",
            "goal",
            "goal_met",
            "rows",
            "ratio_to_peer",
            "machine",
            "command",
            "created",
        }
        extra = {k: v for k, v in rec.items() if k not in skip}
        if extra:
            lines += ["", ", ".join(f"{k}: {v:.3g}" for k, v in extra.items())]
        lines.append("")
    out.write_text("\n".join(lines))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS), help="benchmarks to run")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (for testing the runner)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    for name in args.only or sorted(BENCHMARKS):
        print(f"running {name} ...", flush=True)
        rec = BENCHMARKS[name](args.quick)
        rec["machine"] = machine()
        rec["command"] = "python -m benchmarks.run " + " ".join(
            argv if argv is not None else sys.argv[1:]
        )
        rec["created"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        (args.results_dir / f"{name}.json").write_text(json.dumps(rec, indent=2))
        print(f"  ratio to peer {rec['ratio_to_peer']:.3g}x, goal met: {rec['goal_met']}")
    out = write_results_md(args.results_dir, args.results_dir.parent / "RESULTS.md")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
