"""The report from records: GPU records beside CPU ones, RESULTS.md."""

import json

import pytest

from jpasbatch.bench import runner
from jpasbatch.bench.report import load_records, write_report
from jpasbatch.bench.spec import BenchSpec, ClusterShape
from jpasbatch.bench.stage import STAGES


@pytest.fixture(scope="module")
def toy_record(tmp_path_factory):
    from test_bench_runner import ToyStage

    STAGES["toy"] = ToyStage
    try:
        out = tmp_path_factory.mktemp("toy")
        spec = BenchSpec(out=out, stages=["toy"], preset="tiny", workers=[1, 2], repeats=1,
                         warmup=False)  # fmt: skip
        runner.run_bench(spec, progress_print=lambda *_: None)
    finally:
        del STAGES["toy"]
    return json.loads((out / "records" / "toy.json").read_text())


def test_gpu_records_sit_beside_cpu_ones_and_drive_gpu_projections(tmp_path, toy_record):
    records = tmp_path / "results"
    gpu = toy_record | {"device": "NVIDIA H200"}
    gpu["machine"] = gpu["machine"] | {"device": "NVIDIA H200"}
    gpu["fit"] = gpu["fit"] | {"per_worker_per_s": 1e9, "t0_s": 0.5}
    assert runner.record_name(toy_record) == "toy.json"
    assert runner.record_name(gpu) == "toy@nvidia-h200.json"
    runner.write_json(records / runner.record_name(toy_record), toy_record)
    runner.write_json(records / runner.record_name(gpu), gpu)
    runner.write_json(records / "notes.json", {"name": "not a stage record"})
    recs = load_records(records)
    assert [r.get("device", "cpu") for r in recs] == ["cpu", "NVIDIA H200"]

    shape = ClusterShape(nodes=2, cores=8, gpus=4, memory_gb=64)
    results_md = tmp_path / "RESULTS.md"
    write_report(records, tmp_path / "docs" / "bench", shape, results_md=results_md)
    md = (tmp_path / "docs" / "bench" / "report.md").read_text()
    assert "### toy (cpu): Toy: sum of squares" in md
    assert "### toy (NVIDIA H200): Toy: sum of squares" in md
    row = next(line for line in md.splitlines() if line.startswith("| toy | 40 million"))
    assert "NVIDIA H200" in row and "| 8 |" in row  # 2 nodes x 4 GPUs
    assert (tmp_path / "docs" / "bench" / "toy-nvidia-h200.png").exists()
    text = results_md.read_text()
    assert "](docs/bench/toy.png)" in text and "](docs/bench/overview.png)" in text


def test_report_of_an_empty_folder_says_what_is_missing(tmp_path):
    path = write_report(tmp_path / "none", tmp_path / "out")
    assert "Stages without a record yet: photometry" in path.read_text()
