"""Synthetic photometry (60 J-PAS bands) against speclite's ``get_ab_magnitudes``."""

from __future__ import annotations

import numpy as np

from jpasbatch.bench.core import BenchmarkMismatch, Outcome
from jpasbatch.bench.stage import Context, Sizes, Stage, goal_row, ratio_at

N_PIX = 4000
TOLERANCE_MAG = 1e-3


def smooth_spectra(n: int, wave: np.ndarray, seed: int = 0) -> np.ndarray:
    """``n`` positive smooth random spectra (f_lambda) on ``wave``: 8 cosine modes."""
    rng = np.random.default_rng(seed)
    basis = np.cos(np.pi * np.arange(8)[:, None] * (wave - wave[0]) / (wave[-1] - wave[0]))
    return (3 + 0.3 * rng.normal(size=(n, 8)) @ basis).clip(0.05) * 1e-17


class PhotometryStage(Stage):
    name = "photometry"
    title = "Synthetic photometry: 60 J-PAS bands of 4,000-pixel spectra"
    unit = "spectra"
    issue = 2
    goal = "at least 50x speclite get_ab_magnitudes on 2 cores, same answers to 1e-3 mag"
    engine = "threads"
    sizes = Sizes(tiny=(100, 400), quick=(1000, 4000), full=(2000, 10_000))
    peer_cap = 3000
    peer_scales = False  # speclite integrates band by band in Python
    survey = "one spectrum per mock object"
    ours_label = "SyntheticPhotometry, numpy (fixed grid)"
    peer_label = "speclite get_ab_magnitudes"
    diff_label = "max |dm| (mag)"

    def prepare(self, n: int, ctx: Context):
        from jpasbatch.physics.photometry import SyntheticPhotometry

        wave = np.linspace(3000.0, 11100.0, N_PIX)
        if "sp" not in ctx.cache:
            sp = SyntheticPhotometry()
            sp.matrix(wave)  # the band weights, computed once per grid
            ctx.cache["sp"] = sp
        return {"wave": wave, "flux": smooth_spectra(n, wave), "sp": ctx.cache["sp"]}

    def run(self, data, ctx: Context) -> Outcome:
        return Outcome(data["sp"](data["wave"], data["flux"]).mag)

    def peer(self, data, n: int, ctx: Context) -> Outcome:
        from jpasbatch.physics.filters import jpas

        seq = jpas().to_speclite()
        tab = seq.get_ab_magnitudes(data["flux"][:n], data["wave"])
        return Outcome(np.array([np.asarray(tab[name]) for name in seq.names]).T)

    def compare(self, ours: Outcome, peer: Outcome, n: int, workers: int) -> float:
        dm = float(np.max(np.abs(ours.answer[:n] - peer.answer)))
        if not dm < TOLERANCE_MAG:
            raise BenchmarkMismatch(f"photometry differs from speclite by {dm:.2e} mag")
        return dm

    def variants(self) -> dict:
        def torch_cpu(data, ctx: Context) -> Outcome:
            import torch

            _, mag, _ = data["sp"].torch_fluxes(data["wave"], torch.from_numpy(data["flux"]))
            return Outcome(mag.numpy())

        def check(out: Outcome, peer: Outcome, n: int):
            return self.compare(out, peer, n, 0), {}

        return {"SyntheticPhotometry, torch CPU float64": (torch_cpu, check)}

    def goal_check(self, rec: dict) -> tuple[bool | None, str]:
        row = goal_row(rec)
        ratio = ratio_at(rec, row)
        ok = ratio >= 50 and row["max_abs_diff_vs_peer"] < TOLERANCE_MAG
        return ok, (
            f"{ratio:.0f}x speclite with {row['workers']} worker(s) at {row['n']:,} spectra, "
            f"max |dm| {row['max_abs_diff_vs_peer']:.1e} mag"
        )
