"""The default models shipped with the package, and how they are published.

``jpasbatch/data/models/<name>/`` holds a trained model's files exactly as
training wrote them (``model.safetensors`` + ``model.json``: loaded without
pickle, the card's SHA-256 checked on every load), its real-sky record
(``real_sky.json``, which ``infer --class-from auto`` / ``--z-from auto`` read),
``CARD.json`` (the recipe that made it, the data, the leave-one-family-out and
real-sky figures) and ``SHA256SUMS`` over all of them. Two are shipped: the
classifier committee (``classifier``) and the foundation model (``foundation``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from importlib import resources
from pathlib import Path

from jpasbatch.core.errors import InputError

#: The default classifier committee.
CLASSIFIER = "classifier"
#: The default foundation model (photo-z, embeddings).
FOUNDATION = "foundation"
#: The default spectral models (GaSNet-II classifier + redshift ensembles).
SPECTRA = "spectra"
#: The files of a published model, in ``SHA256SUMS`` order (all but the card from the run).
FILES = ("model.safetensors", "model.json", "real_sky.json", "CARD.json")
#: The files of the published spectral models (their real-sky figures are in the card).
SPECTRA_FILES = ("model.safetensors", "model.json", "CARD.json")
#: What each kind is, for its card.
WHAT = {
    CLASSIFIER: "ANN committee (miniJPAS QSO III recipe) trained on mocks of every spectral "
    "family, randomised; classes STAR, GALAXY, QSO_LOW, QSO_HIGH",
    FOUNDATION: "OJALA-style masked-token transformer (small) trained on mocks of every "
    "spectral family, randomised; photo-z, class, physical parameters, embeddings",
}


def models_dir() -> Path:
    """The package's folder of shipped models."""
    return Path(str(resources.files("jpasbatch").joinpath("data", "models")))


def default_model(name: str = CLASSIFIER) -> Path:
    """The shipped model folder ``name``, its files checked against ``SHA256SUMS``.

    Raises
    ------
    InputError
        If the folder is missing (a source checkout without the published model)
        or a file differs from its recorded checksum.
    """
    folder = models_dir() / name
    if not (folder / "SHA256SUMS").is_file():
        raise InputError(
            "no default model here: publish one (jobs/train_default.yaml, "
            "jobs/train_foundation_default.yaml) or give the model",
            path=folder,
        )
    verify(folder)
    return folder


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def verify(folder: Path) -> None:
    """Check every file listed in ``folder/SHA256SUMS`` (``sha256sum -c`` format)."""
    for line in (folder / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        path = folder / name.lstrip("*")
        if not path.is_file():
            raise InputError("file listed in SHA256SUMS is missing", path=path)
        if _sha256(path) != digest:
            raise InputError("checksum differs from SHA256SUMS (file changed)", path=path)


def publish(run: Path, dest: Path, card: dict, files: tuple[str, ...] = FILES) -> Path:
    """Copy a trained run's model into ``dest`` with ``CARD.json`` and ``SHA256SUMS``.

    Parameters
    ----------
    run
        A ``jpasbatch train`` or ``foundation-train`` run folder with ``model.json``,
        ``model.safetensors`` and ``real_sky.json`` (``jpasbatch real-check --record``).
    dest
        The published folder (``jpasbatch/data/models/<kind>``).
    card
        Recipe, data and figures to record beside the model.
    files
        The published files, ``CARD.json`` last (:data:`FILES`, :data:`SPECTRA_FILES`);
        the others are copied from ``run``.
    """
    run, dest = Path(run), Path(dest)
    copied = [f for f in files if f != "CARD.json"]
    missing = [f for f in copied if not (run / f).is_file()]
    if missing:
        raise InputError(f"run folder lacks {', '.join(missing)}", path=run)
    dest.mkdir(parents=True, exist_ok=True)
    for name in copied:
        shutil.copyfile(run / name, dest / name)
    (dest / "CARD.json").write_text(json.dumps(card, indent=1) + "\n")
    sums = "".join(f"{_sha256(dest / f)}  {f}\n" for f in files)
    (dest / "SHA256SUMS").write_text(sums)
    verify(dest)
    return dest


def build_card(
    run: Path, job: Path, transfer: Path | None, real_check: Path, kind: str = CLASSIFIER
) -> dict:
    """The published card: recipe, training data, and the figures that judge the model.

    Parameters
    ----------
    run
        The training run folder (its ``model.json`` holds the training spec and
        validation figures; its training data's ``_properties.json`` the mocks' recipe).
    job
        The job file that trained it.
    transfer
        ``transfer.json`` of ``jpasbatch transfer`` (the leave-one-family-out study).
    real_check
        ``real_check.json`` of ``jpasbatch real-check`` with this model.
    kind
        ``classifier`` or ``foundation`` (its training figures and real-sky method).
    """
    model = json.loads((run / "model.json").read_text())
    meta = model.get("meta", model)
    train_paths = meta.get("spec", {}).get("train", [])
    data = {}
    for path in map(Path, train_paths):
        props = path / "_properties.json"
        if props.is_file():
            data[str(path.name)] = json.loads(props.read_text()).get("provenance", {})
    checks = json.loads(Path(real_check).read_text())
    sets = checks.get("sets", {})
    given = "--model" if kind == CLASSIFIER else "--foundation"
    training = ("best_epoch", "best_val_weighted_f1", "best_val_loss", "parameters", "last_epoch")
    card = {
        "name": kind,
        "what": WHAT[kind],
        "recipe": {
            "job": str(job),
            "job_text": Path(job).read_text(),
            "commands": [
                f"jpasbatch run {job}",
                f"jpasbatch real-check ../shared/data/real_spectra {given} {run} --record",
                f"jpasbatch publish-model {run} --kind {kind} --job {job} "
                "--real-check <real_check.json>",
            ],
        },
        "training": {k: meta.get(k) for k in ("spec", *training) if k in meta},
        "data": data,
        "real_sky": {
            "all": checks.get("all"),
            "sdss_dr16_qso": sets.get("sdss_dr16_qso", {}).get("scores"),
        },
        "licences": "templates behind the mocks: jpasbatch/data/templates/*/PROVENANCE.md",
    }
    if transfer is not None:
        study = json.loads(Path(transfer).read_text())
        card["leave_one_family_out"] = {
            "summary": study["summary"],
            "held_out_recall": {
                f: {r: v[r]["held_class_recall"] for r in ("lofo", "all", "legacy")}
                for f, v in study["families"].items()
            },
        }
    return card
