"""Every stage for real, at tiny sizes, on 1 and 2 workers of real engines (slow).

Dask stages run on the test's Dask cluster by scheduler address (the path a
cluster run takes), training on the session's Ray; each record must come out
with its scaling, its goal verdict and every answer checked against the peer.
"""

import json

import pytest

from jpasbatch.bench.runner import run_bench
from jpasbatch.bench.spec import BenchSpec
from jpasbatch.bench.stage import STAGES

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_runs_at_tiny_sizes(name, tmp_path, client, request):
    if name == "training":
        request.getfixturevalue("ray_session")
    spec = BenchSpec(out=tmp_path, stages=[name], preset="tiny", workers=[1, 2], repeats=1,
                     warmup=False, dask_address=client.scheduler.address)  # fmt: skip
    run_bench(spec, progress_print=lambda *_: None)
    rec = json.loads((tmp_path / "records" / f"{name}.json").read_text())
    ours = [r for r in rec["rows"] if r["impl"] == "ours"]
    assert {r["workers"] for r in ours} == {1, 2}
    assert all(r["max_abs_diff_vs_peer"] is not None for r in ours)
    assert rec["strong_scaling"] and rec["weak_scaling"] and rec["goal_note"]
    assert rec["fit"]["per_worker_per_s"] > 0
    assert all(r["peak_memory_per_worker_gb"] for r in ours)
    assert f"### {name} (" in (tmp_path / "report.md").read_text()
