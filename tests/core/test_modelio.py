"""Model files are untrusted input: safetensors + JSON card, checked, never unpickled."""

from __future__ import annotations

import json
import math
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from jpasbatch.classify.classifier import Classifier
from jpasbatch.classify.features import FeatureScaler
from jpasbatch.classify.forest import ForestClassifier
from jpasbatch.classify.load import load_model as load_classifier
from jpasbatch.classify.model import CommitteeMLP
from jpasbatch.core import modelio
from jpasbatch.core.errors import InputError

PACKAGE = Path(__file__).resolve().parents[2] / "jpasbatch"


class _Payload:
    """A pickle that, once loaded, creates ``marker``: proof that loading ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def _tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"a.weight": torch.randn(3, 4, generator=g), "b": torch.arange(5)}


def _rewrite_checksum(card: Path, weights: Path) -> None:
    """Make the card agree with whatever ``weights`` now holds (an attacker could)."""
    c = json.loads(card.read_text())
    c["weights"]["sha256"] = modelio.sha256(weights.read_bytes())
    card.write_text(json.dumps(c))


def _flux(n: int = 200) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.lognormal(0.0, 0.3, size=(n, 60))


def test_round_trip_and_file_layout(tmp_path):
    card = modelio.save_model(tmp_path / "m.safetensors", _tensors(), {"kind": "x", "t": 1.5})
    assert card == tmp_path / "m.json"
    assert (tmp_path / "m.safetensors").exists()
    for name in ("m", "m.json", "m.safetensors"):
        tensors, got = modelio.load_model(tmp_path / name, ("t",), kind="x")
        assert got["t"] == 1.5 and got["weights"]["file"] == "m.safetensors"
        for k, v in _tensors().items():
            assert torch.equal(tensors[k], v)


def test_tree_round_trip_keeps_int_keys_tuples_and_specials(tmp_path):
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.ones(3, 4)).sum().backward()
    opt.step()
    state = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "best": math.inf,
        "best_model": None,
        "config": {"channels": (16, 32), "lr": np.float32(0.5)},
        "history": [{"epoch": 1, "loss": 0.25}],
    }
    got = modelio.load_tree(modelio.save_tree(tmp_path / "state.json", state))
    assert set(got["optimizer"]["state"]) == {0, 1}  # parameter ids stay ints
    assert torch.equal(got["optimizer"]["state"][0]["exp_avg"], opt.state[model.weight]["exp_avg"])
    assert got["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert got["config"] == {"channels": (16, 32), "lr": 0.5}
    assert got["best"] == math.inf and got["best_model"] is None
    assert got["history"] == state["history"]
    assert torch.equal(got["model"]["weight"], model.weight.detach())
    # and the optimiser takes it back
    fresh = torch.optim.Adam(model.parameters(), lr=1e-3)
    fresh.load_state_dict(got["optimizer"])
    assert torch.equal(fresh.state[model.weight]["exp_avg"], opt.state[model.weight]["exp_avg"])


def test_one_changed_byte_is_a_checksum_error_naming_the_file(tmp_path):
    modelio.save_model(tmp_path / "m", _tensors(), {})
    weights = tmp_path / "m.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(InputError, match="checksum mismatch") as e:
        modelio.load_model(tmp_path / "m")
    assert e.value.path == str(weights)


def test_truncated_weights_are_refused(tmp_path):
    modelio.save_model(tmp_path / "m", _tensors(), {})
    weights = tmp_path / "m.safetensors"
    weights.write_bytes(weights.read_bytes()[:-7])
    with pytest.raises(InputError, match="checksum mismatch"):
        modelio.load_model(tmp_path / "m")
    # with a card that vouches for the truncated file, the reader itself refuses it
    _rewrite_checksum(tmp_path / "m.json", weights)
    with pytest.raises(InputError, match="not a readable safetensors file") as e:
        modelio.load_model(tmp_path / "m")
    assert e.value.path == str(weights)


def test_a_pickle_under_a_model_name_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Payload(marker))
    clf = Classifier(CommitteeMLP(59, members=2, hidden=8, layers=2), FeatureScaler())
    clf.save(tmp_path / "model.json")
    weights = tmp_path / "model.safetensors"
    # the pickle replaces the weights: the card's checksum refuses it
    weights.write_bytes(payload)
    with pytest.raises(InputError, match="checksum mismatch"):
        Classifier.load(tmp_path)
    # and with a card forged to match, safetensors' parser refuses it
    _rewrite_checksum(tmp_path / "model.json", weights)
    with pytest.raises(InputError, match="not a readable safetensors file"):
        Classifier.load(tmp_path / "model.json")
    # as the card
    (tmp_path / "model.json").write_bytes(payload)
    with pytest.raises(InputError, match="model card is not JSON"):
        load_classifier(tmp_path / "model.json")
    # under the old file names
    for old in ("model.pt", "forest.joblib"):
        (tmp_path / old).write_bytes(payload)
        with pytest.raises(InputError, match="never loaded"):
            load_classifier(tmp_path / old)
    assert not marker.exists()


def test_a_pickle_as_the_forest_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    flux = _flux()
    y = np.arange(len(flux)) % 4
    forest = ForestClassifier.fit(flux, y, np.ones(len(y)), FeatureScaler(), n_estimators=3)
    forest.save(tmp_path / "forest.json")
    weights = tmp_path / "forest.skops"
    weights.write_bytes(pickle.dumps(_Payload(marker)))
    _rewrite_checksum(tmp_path / "forest.json", weights)
    with pytest.raises(InputError, match="not a loadable skops random forest"):
        load_classifier(tmp_path)
    assert not marker.exists()


def test_classifier_and_forest_round_trips_predict_the_same(tmp_path):
    flux = _flux()
    scaler = FeatureScaler.fit(flux)
    clf = Classifier(CommitteeMLP(scaler.n_features, members=2, hidden=8, layers=2), scaler)
    clf.temperature, clf.prior, clf.meta = 1.3, [1.0, 2.0, 0.5, 0.5], {"f1": np.float64(0.9)}
    y = np.arange(len(flux)) % 4
    # one job: threaded trees add their probabilities in any order (1e-16 differences)
    forest = ForestClassifier.fit(flux, y, np.ones(len(y)), scaler, n_estimators=5, n_jobs=1)
    forest.prior = [1.0, 2.0, 0.5, 0.5]
    for model, name in ((clf, "model.json"), (forest, "forest.json")):
        model.save(tmp_path / name)
        back = load_classifier(tmp_path / name)
        assert type(back) is type(model) and back.scaler == model.scaler
        np.testing.assert_array_equal(back.predict_proba(flux)[0], model.predict_proba(flux)[0])
    assert load_classifier(tmp_path).meta == {"f1": 0.9}  # model.json comes first


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "m.safetensors").unlink(), "model weights missing"),
        (lambda d: (d / "m.json").unlink(), "model card missing"),
        (lambda d: (d / "m.json").write_text("{not json"), "model card is not JSON"),
        (lambda d: (d / "m.json").write_text("[1, 2]"), "not a JSON object"),
        (lambda d: (d / "m.json").write_text('{"weights": {}}'), "lacks t"),
        (lambda d: (d / "m.json").write_text('{"t": 1, "weights": 3}'), "lacks weights.sha256"),
    ],
)
def test_broken_pairs_are_clear_input_errors(tmp_path, damage, message):
    modelio.save_model(tmp_path / "m", _tensors(), {"t": 1})
    damage(tmp_path)
    with pytest.raises(InputError, match=re.escape(message)) as e:
        modelio.load_model(tmp_path / "m", ("t",))
    assert e.value.path is not None and Path(e.value.path).name.startswith("m.")


def test_another_kind_of_model_is_refused(tmp_path):
    modelio.save_model(tmp_path / "model", _tensors(), {"kind": "jpasbatch.something.Else"})
    with pytest.raises(InputError, match="not a 'jpasbatch.classify.Classifier'"):
        Classifier.load(tmp_path)


def test_no_pickle_loading_anywhere_in_the_package():
    # torch.load unpickles (even with weights_only=True); safetensors.torch.load does not
    banned = r"weights_only=False|joblib\.load|pickle\.loads?|(?<!safetensors\.)torch\.load\("
    hits = [
        f"{path.relative_to(PACKAGE)}: {m.group(0)}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for m in re.finditer(banned, path.read_text())
    ]
    assert hits == []


def test_a_run_with_pickled_checkpoints_is_refused_before_training(tmp_path):
    from jpasbatch.distribute.ray import fit

    ckpt = tmp_path / "run" / "checkpoint_000001"
    ckpt.mkdir(parents=True)
    (ckpt / "state.pt").write_bytes(b"old")
    with pytest.raises(InputError, match="old pickle format") as info:
        fit(lambda config: None, {}, run_dir=tmp_path / "run", ray=False)
    assert info.value.path.endswith("state.pt")
