"""Job specs: committed JSON Schemas are current, committed job files validate."""

import json
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from jpasbatch.classify.train import TrainSpec
from jpasbatch.pipeline import specs as jobspecs

REPO = Path(__file__).resolve().parents[2]


def test_committed_spec_schemas_are_current(tmp_path):
    for path in jobspecs.export(tmp_path):
        committed = REPO / "schemas" / path.name
        assert committed.exists(), f"run jpasbatch.pipeline.specs.export('schemas'): {path.name}"
        assert json.loads(committed.read_text()) == json.loads(path.read_text())


def test_job_files_validate():
    spec = TrainSpec(**yaml.safe_load((REPO / "jobs" / "train_classifier.yaml").read_text()))
    assert spec.members == 8 and spec.layers == 8 and spec.hidden == 200
    with pytest.raises(ValidationError, match="membres"):
        TrainSpec(train=["x"], membres=8)  # a typo fails at once
