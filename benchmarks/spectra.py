"""Spectral-model benchmark: the GaSNet-II system's inference throughput, vectorised vs naive.

``python -m benchmarks.run --only spectra`` runs the same measurement as the
``spectral`` stage of :mod:`jpasbatch.bench` (sizes, worker counts, report);
:func:`bench_spectra` is the single-point version with the record shape of
the other ``benchmarks/<area>.py`` modules, for a quick look or a test.
"""

from __future__ import annotations

import numpy as np

from jpasbatch.bench.stages.spectral import PAPER_SPECTRA_PER_MIN, gasnet_system, spectra_on_grid


def bench_spectra(quick: bool) -> dict:
    """Classifier + 2 x 10-member redshift ensembles on 4618-pixel spectra: spectra/s."""
    import torch

    from jpasbatch.bench.core import BenchmarkMismatch, summary_of, timed
    from jpasbatch.spectra.predict import SpectraModel

    device = "cuda" if torch.cuda.is_available() else "cpu"
    n = 64 if quick else 2048
    batch = 256 if device == "cpu" else 4096
    flux, good = spectra_on_grid(n)
    model = SpectraModel(gasnet_system(), device=device)

    def run(naive: bool) -> np.ndarray:
        fn = model.predict_naive if naive else model.predict_arrays
        parts = [fn(flux[s : s + batch], good[s : s + batch]) for s in range(0, n, batch)]
        return np.concatenate([p.select_dtypes("number").to_numpy(float) for p in parts])

    run(False)  # warm-up (oneDNN / cuDNN kernel selection)
    t_vec, vec = timed(lambda: run(False), 1 if quick else 3)
    t_naive, naive = timed(lambda: run(True), 1 if quick else 2)
    diff = float(np.max(np.abs(vec - naive)))
    if diff > 1e-4:
        raise BenchmarkMismatch(f"vectorised GaSNet-II differs from the member loop by {diff:.2e}")
    ours, peer = summary_of(t_vec, n), summary_of(t_naive, n)
    per_min = ours["per_s"] * 60
    return {
        "name": "spectra",
        "title": f"GaSNet-II inference: classifier + 2 x 10-member redshift ensembles, {n:,} "
        f"spectra x 4618 pixels, {device} ({torch.get_num_threads()} threads)",
        "goal": "vectorised ensembles faster than a loop over members; on a GPU at least the "
        f"paper's {PAPER_SPECTRA_PER_MIN:,} spectra/min",
        "goal_met": bool(
            ours["per_s"] > peer["per_s"] and (device == "cpu" or per_min >= PAPER_SPECTRA_PER_MIN)
        ),
        "rows": [
            {
                "what": "vectorised (grouped convolutions, one pass per ensemble)",
                **ours,
                "max_abs_diff_vs_peer": diff,
            },
            {"what": "loop over the 10 members of each ensemble (peer)", **peer},
        ],
        "ratio_to_peer": ours["per_s"] / peer["per_s"],
        "spectra_per_minute": per_min,
        "paper_spectra_per_minute_gpu": PAPER_SPECTRA_PER_MIN,
    }
