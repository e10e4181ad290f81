"""Model files without pickle: safetensors weights plus a JSON model card.

A model named ``NAME`` is two files side by side:

``NAME.safetensors``
    Every tensor, loaded with :func:`safetensors.torch.load` (a header and
    raw bytes: loading runs no code, unlike unpickling a ``.pt`` or ``.joblib`` file).
``NAME.json``
    The model card: everything that is not a tensor (architecture, feature
    scaling, class names, temperature, priors, training recipe and metrics) and
    ``weights.sha256``, the SHA-256 of the safetensors file, checked on load.

A model file is input, and input is untrusted: every way a pair can be wrong
(a missing or truncated file, a changed byte, a card that is not JSON or lacks
a key, a pickle under a model's name) is an :class:`~jpasbatch.core.errors.InputError`
naming the file. Scikit-learn models get the same card beside ``NAME.skops``
(:func:`save_bytes` / :func:`load_bytes`; skops loads only the types it is told to trust).

:func:`save_tree` / :func:`load_tree` store a nested training state (model and
optimiser state dicts, counters, history) the same way: its tensors in the
safetensors file under their dotted paths (``optimizer.state.0.exp_avg``), the
rest in the card, so a checkpoint round-trips exactly (integer keys and
tuples included).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import safetensors
import safetensors.torch
import torch

from jpasbatch.core import atomic
from jpasbatch.core.errors import InputError

WEIGHTS_SUFFIX = ".safetensors"
CARD_SUFFIX = ".json"
#: The stem a model folder's files get when the folder itself is named.
DEFAULT_STEM = "model"
# tags of the card's tree encoding (save_tree): JSON has no tensors, tuples or int keys
_TENSOR, _TUPLE, _ITEMS = "__tensor__", "__tuple__", "__items__"


def model_paths(path: str | Path, suffix: str = WEIGHTS_SUFFIX) -> tuple[Path, Path]:
    """The ``(NAME.safetensors, NAME.json)`` pair a path names.

    Parameters
    ----------
    path
        ``NAME.safetensors``, ``NAME.json``, ``NAME`` without a suffix, or a
        folder (its ``model.*``).
    suffix
        The weights' suffix (``.skops`` for scikit-learn models).

    Raises
    ------
    InputError
        For any other suffix: a ``.pt`` / ``.joblib`` / pickle file is never loaded.
    """
    path = Path(path)
    if path.is_dir():
        path = path / DEFAULT_STEM
    if path.suffix in (suffix, CARD_SUFFIX):
        path = path.with_suffix("")
    elif path.suffix:
        raise InputError(
            f"not a model file: models are NAME{suffix} + NAME{CARD_SUFFIX} "
            "(pickle-based .pt / .joblib files are never loaded; retrain to convert)",
            path=path,
        )
    return path.with_name(path.name + suffix), path.with_name(path.name + CARD_SUFFIX)


def weights_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    """The safetensors serialisation of ``tensors`` (what :func:`save_model` writes)."""
    return safetensors.torch.save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})


def sha256(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def save_model(path: str | Path, tensors: dict[str, torch.Tensor], card: dict) -> Path:
    """Write ``tensors`` and ``card`` (plus the weights' checksum); returns the card's path.

    Parameters
    ----------
    path
        The model's name (see :func:`model_paths`).
    tensors
        Name -> tensor (moved to the CPU, made contiguous).
    card
        JSON-serialisable metadata (NumPy scalars and arrays are converted);
        the key ``weights`` is reserved.
    """
    return save_bytes(path, weights_bytes(tensors), card)


def save_bytes(path: str | Path, data: bytes, card: dict, suffix: str = WEIGHTS_SUFFIX) -> Path:
    """Write serialised weights ``data`` (``NAME<suffix>``) and their card; returns the card's path.

    Both files are written completely to temporaries before either is renamed
    into place, so a killed writer leaves the previous pair (or, in the instant
    between the two renames, a pair whose checksum disagrees, which loading refuses).
    """
    weights, card_path = model_paths(path, suffix)
    full = card | {"weights": {"file": weights.name, "sha256": sha256(data)}}
    text = json.dumps(full, indent=1, default=_json_default) + "\n"
    with atomic.replacing(weights) as tmp_w, atomic.replacing(card_path) as tmp_c:
        tmp_w.write_bytes(data)
        tmp_c.write_text(text)
    return card_path


def load_model(
    path: str | Path, required: tuple[str, ...] = (), kind: str | None = None
) -> tuple[dict[str, torch.Tensor], dict]:
    """The ``(tensors, card)`` of a saved model, checked against the card's checksum.

    Parameters
    ----------
    path
        The model's name (see :func:`model_paths`).
    required
        Card keys the caller needs.
    kind
        The card's ``kind`` the caller expects (None: any).

    Raises
    ------
    InputError
        Naming the file: missing, not JSON, a missing key, another kind of
        model, a checksum mismatch, or weights that are not a readable
        safetensors file.
    """
    data, card = load_bytes(path, required, kind)
    try:
        # the very bytes just checked: nothing can swap the file in between
        tensors = safetensors.torch.load(data)
    except (safetensors.SafetensorError, ValueError) as e:
        weights, _ = model_paths(path)
        raise InputError(f"not a readable safetensors file ({e})", path=weights) from e
    return tensors, card


def load_bytes(
    path: str | Path,
    required: tuple[str, ...] = (),
    kind: str | None = None,
    suffix: str = WEIGHTS_SUFFIX,
) -> tuple[bytes, dict]:
    """The weights file's bytes, checked against its card, and the card (as :func:`load_model`)."""
    weights, card_path = model_paths(path, suffix)
    card = read_card(card_path, ("weights", *required), kind)
    expected = card["weights"].get("sha256") if isinstance(card["weights"], dict) else None
    if not isinstance(expected, str):
        raise InputError("model card lacks weights.sha256", path=card_path)
    try:
        data = weights.read_bytes()
    except FileNotFoundError as e:
        raise InputError("model weights missing", path=weights) from e
    if sha256(data) != expected:
        raise InputError(
            "checksum mismatch: the file is not the one its model card describes "
            "(changed, truncated or replaced)",
            path=weights,
        )
    return data, card


def read_card(path: Path, required: tuple[str, ...] = (), kind: str | None = None) -> dict:
    """A model card (a JSON object) with at least the ``required`` keys, of this ``kind``."""
    try:
        card = json.loads(Path(path).read_text())
    except FileNotFoundError as e:
        raise InputError("model card missing", path=path) from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"model card is not JSON ({e})", path=path) from e
    if not isinstance(card, dict):
        raise InputError("model card is not a JSON object", path=path)
    if kind is not None and card.get("kind") != kind:
        # e.g. a foundation model's model.json given where a classifier's is expected
        raise InputError(f"model card of a {card.get('kind')!r}, not a {kind!r}", path=path)
    missing = [k for k in required if k not in card]
    if missing:
        raise InputError(f"model card lacks {', '.join(missing)}", path=path)
    return card


def save_tree(path: str | Path, tree: dict) -> Path:
    """Save a nested state (dicts, lists, tuples, scalars, tensors) as a model pair."""
    tensors: dict[str, torch.Tensor] = {}
    return save_model(path, tensors, {"tree": _encode(tree, "", tensors)})


def load_tree(path: str | Path) -> dict:
    """The nested state :func:`save_tree` wrote."""
    tensors, card = load_model(path, ("tree",))
    try:
        return _decode(card["tree"], tensors)
    except (KeyError, TypeError, ValueError) as e:
        _, card_path = model_paths(path)
        raise InputError(f"model card's state is malformed ({e!r})", path=card_path) from e


def _encode(obj, key: str, tensors: dict[str, torch.Tensor]):
    if isinstance(obj, torch.Tensor):
        if key in tensors:
            raise ValueError(f"two tensors of the state would be stored as {key!r}")
        tensors[key] = obj
        return {_TENSOR: key}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: _encode(v, _join(key, k), tensors) for k, v in obj.items()}
        # optimiser states are keyed by parameter index: keep the ints ints
        return {_ITEMS: [[k, _encode(v, _join(key, k), tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple | list):
        items = [_encode(v, _join(key, i), tensors) for i, v in enumerate(obj)]
        return {_TUPLE: items} if isinstance(obj, tuple) else items
    return _json_default(obj) if isinstance(obj, np.generic | np.ndarray) else obj


def _decode(obj, tensors: dict[str, torch.Tensor]):
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if _TENSOR in obj:
        return tensors[obj[_TENSOR]]
    if _TUPLE in obj:
        return tuple(_decode(v, tensors) for v in obj[_TUPLE])
    if _ITEMS in obj:
        return {k: _decode(v, tensors) for k, v in obj[_ITEMS]}
    return {k: _decode(v, tensors) for k, v in obj.items()}


def _join(key: str, part) -> str:
    return f"{key}.{part}" if key else str(part)


def _json_default(obj):
    """NumPy scalars and arrays as JSON; anything else is a bug in the caller."""
    if isinstance(obj, np.generic | np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON-serialisable in a model card: {type(obj).__name__}")
