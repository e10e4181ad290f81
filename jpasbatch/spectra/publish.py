"""Publishing a trained spectral model set as the package's default (``jpasbatch spectra-publish``).

The folder ``jpasbatch/data/models/spectra`` gets the run's ``model.safetensors``
and ``model.json`` as training wrote them (loaded without pickle, the weights'
SHA-256 checked by :mod:`jpasbatch.core.modelio`), ``CARD.json`` (recipe, training
data, validation and the evaluations' network-vs-refined tables) and
``SHA256SUMS``, through :func:`jpasbatch.core.defaults.publish` (the same code as
the shipped classifier's).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from jpasbatch.core import defaults
from jpasbatch.core.errors import InputError

#: What the card says the models are for.
WHAT = (
    "GaSNet-II spectral models: a 3-class ResNet classifier (STAR / GALAXY / QSO) and a "
    "redshift ensemble per extragalactic class, CPU-sized (see training.spec). Their "
    "redshifts are coarse by design: `jpasbatch spectra` refines them by a redrock-template "
    "fit around the ensemble's z (jpasbatch.spectra.refine), so the networks only need to "
    "give the class (the fit chooses between their top two) and a window that holds the "
    "redshift; `--no-refine` returns the networks' own coarse values."
)


def _stages(folder: Path) -> list[dict]:
    """The ``network_vs_refined.csv`` rows of a ``spectra-evaluate`` report folder."""
    path = Path(folder) / "network_vs_refined.csv"
    if not path.is_file():
        raise InputError(
            "not a spectra-evaluate report (network_vs_refined.csv missing)", path=path
        )
    return json.loads(pd.read_csv(path).to_json(orient="records"))


def build_card(run: Path, job: Path, evaluations: dict[str, Path], commands: list[str]) -> dict:
    """The card of a spectral model set.

    Parameters
    ----------
    run
        The ``spectra-train`` model folder (``model.json``, ``meta.json``).
    job
        The job spec that trained it (its text is recorded).
    evaluations
        Name -> ``spectra-evaluate`` report folder (e.g. the emulated test split,
        the real spectra); each one's network-vs-refined table is recorded.
    commands
        The commands that made the data, the model and the evaluations.
    """
    run = Path(run)
    meta_path = run / "meta.json"
    if not meta_path.is_file():
        raise InputError("not a spectra-train model folder (meta.json missing)", path=run)
    meta = json.loads(meta_path.read_text())
    data = {}
    data_dir = Path(meta["spec"]["data"])
    for name in ("started.json", "summary.json"):
        if (data_dir / name).is_file():
            data[name.removesuffix(".json")] = json.loads((data_dir / name).read_text())
    return {
        "name": defaults.SPECTRA,
        "what": WHAT,
        "recipe": {"job": str(job), "job_text": Path(job).read_text(), "commands": commands},
        "training": {"spec": meta["spec"], "validation": meta["val"]},
        "data": data,
        "evaluations": {k: _stages(v) for k, v in evaluations.items()},
        "licences": "templates behind the emulated spectra: "
        "jpasbatch/data/templates/*/PROVENANCE.md",
    }


def publish_spectra(run: Path, card: dict, dest: Path | None = None) -> Path:
    """Copy ``run``'s model into ``dest`` (default: the package's) with its card and checksums."""
    dest = Path(dest) if dest is not None else defaults.models_dir() / defaults.SPECTRA
    return defaults.publish(run, dest, card, defaults.SPECTRA_FILES)
