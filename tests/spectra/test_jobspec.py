"""The committed spectral job file validates; a typo fails at once."""

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from jpasbatch.pipeline.specs import job_specs
from jpasbatch.spectra.train import SpectraTrainSpec

REPO = Path(__file__).resolve().parents[2]


def test_train_spectra_job_validates_and_is_registered():
    spec = SpectraTrainSpec(**yaml.safe_load((REPO / "jobs" / "train_spectra.yaml").read_text()))
    assert spec.members == 10 and spec.regress == ["GALAXY", "QSO"] and spec.fnet
    assert job_specs()["spectra_train"] is SpectraTrainSpec
    with pytest.raises(ValidationError, match="membres"):
        SpectraTrainSpec(data="x", membres=10)
