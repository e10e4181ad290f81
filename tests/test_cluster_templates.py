"""The cluster templates: they parse, expose nothing beyond localhost, and their Dask TLS works."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

CLUSTER = Path(__file__).resolve().parents[1] / "cluster"
SBATCH = CLUSTER / "slurm" / "jpasbatch.sbatch"
TEMPLATES = [SBATCH, *sorted((CLUSTER / "kubernetes").glob("*.yaml"))]


def test_slurm_script_is_valid_bash():
    subprocess.run(["bash", "-n", str(SBATCH)], check=True)


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_nothing_listens_on_all_interfaces(path):
    text = path.read_text()
    assert "0.0.0.0" not in text and "::/0" not in text
    # a Dask dashboard either is off or binds localhost
    for addr in re.findall(r"dashboard-address[\s,]+\"?([^\s\"\]]+)", text):
        assert addr.startswith("127.0.0.1:"), addr


def test_slurm_starts_dask_with_tls_and_ray_with_a_token():
    text = SBATCH.read_text()
    scheduler = re.search(r"\n\s*dask scheduler --[^&]*&", text, re.S).group(0)
    assert "--protocol tls" in scheduler and "$dask_tls" in scheduler
    worker = re.search(r"--overlap \$worker[^&]*&", text, re.S).group(0)
    assert "$dask_tls" in worker and "--no-dashboard" in worker
    assert "export RAY_AUTH_MODE=token" in text and "export RAY_AUTH_TOKEN" in text
    assert "--include-dashboard=false" in text


def test_kubernetes_manifests_parse_and_are_locked_down():
    dask = yaml.safe_load((CLUSTER / "kubernetes" / "dask-cluster.yaml").read_text())
    ray = yaml.safe_load((CLUSTER / "kubernetes" / "rayjob.yaml").read_text())
    sched = dask["spec"]["scheduler"]["spec"]["containers"][0]["args"]
    work = dask["spec"]["worker"]["spec"]["containers"][0]["args"]
    for args in (sched, work):
        for opt in ("--tls-ca-file", "--tls-cert", "--tls-key"):
            assert opt in args
    assert sched[sched.index("--protocol") + 1] == "tls" and "--no-dashboard" in work
    # only the TLS port is a service; the dashboard is not
    assert [p["port"] for p in dask["spec"]["scheduler"]["service"]["ports"]] == [8786]
    spec = ray["spec"]
    assert "tls://" in spec["entrypoint"] and spec["submissionMode"] == "SidecarMode"
    cluster = spec["rayClusterSpec"]
    assert cluster["authOptions"] == {"mode": "token"}
    assert cluster["headGroupSpec"]["rayStartParams"]["dashboard-host"] == "127.0.0.1"
    head = cluster["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT" in {e["name"] for e in head["env"]}


def _tls_block() -> str:
    text = SBATCH.read_text()
    return text[text.index("# --- dask tls") : text.index("# --- end dask tls")]


def test_the_slurm_tls_setup_gives_a_working_tls_cluster_that_refuses_others(tmp_path, bin_dir):
    """Run the script's certificate block, start a scheduler and a worker with its options,
    and connect as `jpasbatch run` would (Dask config from the exported variables)."""
    script = (
        f"set -euo pipefail\nRUN_DIR={tmp_path}\nSLURM_JOB_ID=42\n{_tls_block()}\n"
        "env | grep '^DASK_DISTRIBUTED__COMM' ; echo \"DASK_TLS_OPTS=$dask_tls\"\n"
    )
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    env = dict(line.split("=", 1) for line in out.stdout.splitlines())
    opts = env.pop("DASK_TLS_OPTS").split()
    assert oct((tmp_path / "tls" / "dask.key").stat().st_mode & 0o777) == "0o600"
    job_env = {**os.environ, **env}
    sched_file = tmp_path / "scheduler.json"
    common = {"env": job_env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = [
        subprocess.Popen(
            [bin_dir / "dask", "scheduler", "--protocol", "tls", "--port", "0", *opts,
             "--dashboard-address", "127.0.0.1:0", "--scheduler-file", sched_file],
            **common,
        )
    ]  # fmt: skip
    try:
        for _ in range(300):
            if sched_file.exists() and sched_file.stat().st_size:
                break
            subprocess.run(["sleep", "0.1"])
        procs.append(
            subprocess.Popen(
                [bin_dir / "dask", "worker", "--scheduler-file", sched_file, "--nthreads", "1",
                 *opts, "--no-dashboard"],
                **common,
            )
        )  # fmt: skip
        client = (
            "import json, sys\n"
            "from distributed import Client\n"
            "addr = json.load(open(sys.argv[1]))['address']\n"
            "assert addr.startswith('tls://'), addr\n"
            "with Client(addr, timeout=60) as c:\n"
            "    c.wait_for_workers(1, timeout=60)\n"
            "    print(c.submit(sum, [1, 2, 39]).result())\n"
        )
        ok = subprocess.run(
            [sys.executable, "-c", client, sched_file], env=job_env, capture_output=True,
            text=True, timeout=120,
        )  # fmt: skip
        assert ok.returncode == 0 and ok.stdout.strip() == "42", ok.stderr[-2000:]
        # a client without the job's certificate is refused
        bare = {k: v for k, v in os.environ.items() if not k.startswith("DASK_DISTRIBUTED__COMM")}
        refused = subprocess.run(
            [sys.executable, "-c", client.replace("timeout=60)", "timeout=5)", 1), sched_file],
            env=bare, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert refused.returncode != 0
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(timeout=30)
