"""OJALA's masked multi-token game (Appendix A.3), vectorised over a batch.

For every object, from the tokens it has (``present``):

1. **Targets** (rule 3, multi-token prediction): ``n_targets`` distinct tokens,
   drawn without replacement with probability proportional to the token
   weights (rule 4, inverse-frequency sampling: rare tokens are picked more).
2. **Mutual exclusion** (rule 1): if any target is a label (class, redshift,
   physical parameter), no label enters the context; the model must infer it
   from the observations. Targets that are all photometry allow any context.
3. **Context** (rule 2): a random fraction of the remaining candidates, at
   least ``min_context`` tokens, drawn with the same weights (rare tokens are
   masked out less often). With probability ``full_context`` the fraction is 1,
   the situation at inference, where every measured band is given.

Weighted sampling without replacement uses Efraimidis-Spirakis keys
``log(u) / w`` (the k largest keys are a weighted sample of size k), so a whole
batch is a few array operations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jpasbatch.foundation.tokens import vocabulary


@dataclass
class Masks:
    """One batch's game.

    Attributes
    ----------
    targets
        ``(B, T)`` token ids to predict.
    target_valid
        ``(B, T)`` bool: false where an object had fewer than ``T`` candidates.
    context
        ``(B, V)`` bool: tokens given to the encoder.
    """

    targets: np.ndarray
    target_valid: np.ndarray
    context: np.ndarray


def label_mask() -> np.ndarray:
    """``(V,)`` bool: tokens that are labels (rule 1's physical targets)."""
    return np.array([not t.observational for t in vocabulary()])


def token_weights(
    frequencies: np.ndarray, label_boost: float = 1.0, floor: float = 1e-3
) -> np.ndarray:
    """Inverse-frequency token weights (mean 1 over available tokens), labels x ``label_boost``.

    Tokens no training object has get weight 0.
    """
    f = np.asarray(frequencies, float)
    w = np.where(f > 0, 1.0 / np.maximum(f, floor), 0.0)
    w = w / w[w > 0].mean()
    return w * np.where(label_mask(), label_boost, 1.0)


def _weighted_keys(rng: np.random.Generator, eligible: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Efraimidis-Spirakis keys; -inf where not eligible or weight 0."""
    u = rng.random(eligible.shape)
    with np.errstate(divide="ignore"):
        keys = np.log(u) / w[None, :]
    return np.where(eligible & (w[None, :] > 0), keys, -np.inf)


def sample_masks(
    present: np.ndarray,
    target_weight: np.ndarray,
    context_weight: np.ndarray,
    rng: np.random.Generator,
    *,
    n_targets: int = 5,
    min_context: int = 5,
    full_context: float = 0.25,
    allowed_targets: np.ndarray | None = None,
) -> Masks:
    """Targets and context of a batch (see the module docstring).

    Parameters
    ----------
    present
        ``(B, V)`` bool.
    target_weight, context_weight
        ``(V,)`` sampling weights of targets and of context tokens.
    rng
        Random generator.
    n_targets, min_context, full_context
        Targets per object, the smallest context, and the probability of a full one.
    allowed_targets
        ``(V,)`` bool: tokens that may be targets (default: all).
    """
    b, v = present.shape
    is_label = label_mask()
    eligible = present if allowed_targets is None else present & allowed_targets[None, :]
    keys = _weighted_keys(rng, eligible, np.asarray(target_weight, float))
    targets = np.argsort(-keys, axis=1, kind="stable")[:, :n_targets]
    valid = np.take_along_axis(keys, targets, axis=1) > -np.inf
    is_target = np.zeros((b, v), bool)
    np.put_along_axis(is_target, targets, valid, axis=1)
    label_target = (is_target & is_label[None, :]).any(axis=1)
    candidates = present & ~is_target & ~(is_label[None, :] & label_target[:, None])
    n_cand = candidates.sum(axis=1)
    frac = np.where(rng.random(b) < full_context, 1.0, rng.random(b))
    k = np.minimum(n_cand, np.maximum(min_context, np.round(frac * n_cand))).astype(int)
    ckeys = _weighted_keys(rng, candidates, np.asarray(context_weight, float))
    order = np.argsort(-ckeys, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(v)[None, :].repeat(b, 0), axis=1)
    context = candidates & (rank < k[:, None])
    return Masks(targets=targets, target_valid=valid, context=context)


def observation_context(present: np.ndarray) -> np.ndarray:
    """The inference context: every observational token an object has, no labels."""
    return present & ~label_mask()[None, :]
