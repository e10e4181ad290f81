"""Spectral inference: GaSNet-II classifier + 10-member redshift ensembles, two ensemble paths.

The model is the study's system (``jobs/train_spectra.yaml``) with untrained
weights -- throughput does not depend on what the weights learned -- run by
:class:`jpasbatch.spectra.predict.SpectraModel` the way ``jpasbatch spectra``
runs it on this device (CPU: one member at a time; GPU: one grouped-convolution
pass per ensemble), against the other way. Both must give the same table; the
measurement is what justifies the choice per device.
"""

from __future__ import annotations

import numpy as np

from jpasbatch.bench.core import BenchmarkMismatch, Outcome
from jpasbatch.bench.stage import Context, Sizes, Stage, goal_row, ratio_at

#: GaSNet-II's reported speed: ~40,000 spectra in under a minute on one GPU.
PAPER_SPECTRA_PER_MIN = 40_000
TOLERANCE = 1e-4


def gasnet_system(members: int = 10, seed: int = 0) -> dict:
    """A model dict as :func:`jpasbatch.spectra.train.train` saves it, with untrained weights.

    A 5-stage classifier and one ``members``-member ensemble for GALAXY and for QSO.
    """
    from jpasbatch.spectra.emulate import CLASSES
    from jpasbatch.spectra.gasnet import GaSNetEnsemble
    from jpasbatch.spectra.grid import COMMON_GRID

    parts = {}
    clf = GaSNetEnsemble(
        COMMON_GRID.n, 3, members=1, channels=(16, 16, 32, 64, 64), hidden=128, seed=seed
    )
    parts["classifier"] = {
        "task": "classifier",
        "target_class": None,
        "hparams": clf.hparams,
        "state_dict": clf.state_dict(),
    }
    for k, cls in enumerate(("GALAXY", "QSO")):
        reg = GaSNetEnsemble(
            COMMON_GRID.n,
            1,
            members=members,
            channels=(8, 16, 16, 32, 32),
            hidden=64,
            seed=seed + 1 + k,
        )
        parts[f"z_{cls.lower()}"] = {
            "task": "regressor",
            "target_class": cls,
            "hparams": reg.hparams,
            "state_dict": reg.state_dict(),
        }
    val = {p: {"best": 0.05} for p in parts}
    return {"classes": list(CLASSES), "parts": parts, "val": val, "grid": COMMON_GRID.to_dict()}


def spectra_on_grid(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` smooth continua with noise and 2% masked pixels on the common grid."""
    from jpasbatch.spectra.grid import COMMON_GRID

    rng = np.random.default_rng(seed)
    wave = COMMON_GRID.wavelength
    flux = (1 + 0.3 * np.sin(wave[None, :] / rng.uniform(200, 900, (n, 1)))) * rng.lognormal(
        0, 0.5, (n, 1)
    ) + rng.normal(0, 0.1, (n, wave.size))
    return flux, rng.random((n, wave.size)) > 0.02


class SpectralStage(Stage):
    name = "spectral"
    title = "Spectral inference: GaSNet-II classifier + 2 x 10-member redshift ensembles"
    unit = "spectra"
    issue = 8
    goal = (
        "the ensemble path `jpasbatch spectra` uses on this device is the faster one; on a GPU "
        f"at least the paper's {PAPER_SPECTRA_PER_MIN:,} spectra/min"
    )
    engine = "threads"
    sizes = Sizes(tiny=(32, 64), quick=(256, 1024), full=(1024, 4096))
    survey = "one spectrum per object with a spectrum (projected at 40 million for scale)"
    ours_label = "SpectraModel.predict_arrays as used (CPU: member loop; GPU: grouped pass)"
    peer_label = "the other ensemble path (CPU: grouped pass; GPU: member loop)"
    diff_label = "max abs difference of the output table"

    def prepare(self, n: int, ctx: Context):
        import torch

        from jpasbatch.spectra.predict import SpectraModel

        if "model" not in ctx.cache:
            device = "cuda" if torch.cuda.is_available() else "cpu"
            ctx.cache["model"] = SpectraModel(gasnet_system(), device=device)
        model = ctx.cache["model"]
        flux, good = spectra_on_grid(n)
        batch = 256 if model.device.type == "cpu" else 4096
        return {"flux": flux, "good": good, "model": model, "batch": batch}

    @staticmethod
    def _predict(data, n: int, member_loop: bool) -> np.ndarray:
        model, b = data["model"], data["batch"]
        parts = [
            model.predict_arrays(
                data["flux"][s : min(s + b, n)], data["good"][s : min(s + b, n)], member_loop
            )
            for s in range(0, n, b)
        ]
        return np.concatenate([p.select_dtypes("number").to_numpy(float) for p in parts])

    def run(self, data, ctx: Context) -> Outcome:
        model = data["model"]
        return Outcome(self._predict(data, len(data["flux"]), model.member_loop))

    def peer(self, data, n: int, ctx: Context) -> Outcome:
        return Outcome(self._predict(data, n, not data["model"].member_loop))

    def compare(self, ours: Outcome, peer: Outcome, n: int, workers: int) -> float:
        diff = float(np.max(np.abs(ours.answer[:n] - peer.answer)))
        if not diff <= TOLERANCE:
            raise BenchmarkMismatch(f"GaSNet-II's two ensemble paths differ by {diff:.2e}")
        return diff

    def goal_check(self, rec: dict) -> tuple[bool | None, str]:
        row = goal_row(rec)
        per_min = row["per_s"] * 60
        faster = ratio_at(rec, row) > 1
        text = (
            f"{per_min:,.0f} spectra/min with {row['workers']} worker(s), "
            f"{ratio_at(rec, row):.2f}x the other ensemble path"
        )
        if rec.get("device", "cpu") == "cpu":
            return faster, text + f" (the paper's {PAPER_SPECTRA_PER_MIN:,}/min is a GPU goal)"
        return faster and per_min >= PAPER_SPECTRA_PER_MIN, text
