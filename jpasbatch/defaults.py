"""The default models shipped with the package, and how they are published.

``jpasbatch/data/models/<name>/`` holds a trained model's files exactly as
training wrote them (``model.safetensors`` + ``model.json``: loaded without
pickle, the card's SHA-256 checked on every load), its real-sky record
(``real_sky.json``, which ``infer --class-from auto`` reads), ``CARD.json`` (the
recipe that made it, the data, the leave-one-family-out and real-sky figures)
and ``SHA256SUMS`` over all of them.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from importlib import resources
from pathlib import Path

from jpasbatch.errors import InputError

#: The default classifier committee.
CLASSIFIER = "classifier"
#: The files of a published model, in ``SHA256SUMS`` order.
FILES = ("model.safetensors", "model.json", "real_sky.json", "CARD.json")


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
            "no default model here: publish one (jobs/train_default.yaml) or give --model",
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


def publish(run: Path, dest: Path, card: dict) -> Path:
    """Copy a trained run's model into ``dest`` with ``CARD.json`` and ``SHA256SUMS``.

    Parameters
    ----------
    run
        A ``jpasbatch train`` run folder with ``model.json``, ``model.safetensors``
        and ``real_sky.json`` (``jpasbatch real-check --record``).
    dest
        The published folder (``jpasbatch/data/models/classifier``).
    card
        Recipe, data and figures to record beside the model.
    """
    run, dest = Path(run), Path(dest)
    missing = [f for f in FILES[:3] if not (run / f).is_file()]
    if missing:
        raise InputError(f"run folder lacks {', '.join(missing)}", path=run)
    dest.mkdir(parents=True, exist_ok=True)
    for name in FILES[:3]:
        shutil.copyfile(run / name, dest / name)
    (dest / "CARD.json").write_text(json.dumps(card, indent=1) + "\n")
    sums = "".join(f"{_sha256(dest / f)}  {f}\n" for f in FILES)
    (dest / "SHA256SUMS").write_text(sums)
    verify(dest)
    return dest
