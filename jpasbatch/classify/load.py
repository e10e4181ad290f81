"""A saved classifier from its files: an ANN committee or a random forest, by its card.

Used wherever a trained classifier is applied (evaluation, studies, the VAC), so
that the VAC does not reach into the evaluation code for it.
"""

from __future__ import annotations

from pathlib import Path

from jpasbatch.classify import forest
from jpasbatch.classify.classifier import Classifier
from jpasbatch.classify.forest import ForestClassifier
from jpasbatch.core import modelio
from jpasbatch.core.errors import InputError

#: The model cards a run folder of ``jpasbatch train`` holds (ANN committee, forest).
MODEL_CARDS = ("model.json", "forest.json")


def model_file(path: str | Path) -> Path:
    """The model card of a path: itself, a weights file's card, or a run folder's.

    A run folder holds ``model.json`` (ANN committee, weights ``model.safetensors``)
    or ``forest.json`` (random forest, ``forest.skops``).
    """
    path = Path(path)
    if path.is_dir():
        path = next((path / f for f in MODEL_CARDS if (path / f).exists()), path)
    elif path.suffix in (modelio.WEIGHTS_SUFFIX, forest.SUFFIX):
        path = path.with_suffix(modelio.CARD_SUFFIX)
    if not path.is_file():
        raise InputError("no classifier here (expected model.json or forest.json)", path=path)
    return path


def load_model(path: str | Path) -> Classifier | ForestClassifier:
    """A saved ANN committee (``model.json``) or random forest (``forest.json``)."""
    path = model_file(path)
    is_card = path.suffix == modelio.CARD_SUFFIX
    if is_card and modelio.read_card(path).get("kind") == forest.KIND:
        return ForestClassifier.load(path)
    return Classifier.load(path)
