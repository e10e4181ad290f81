"""Prior correction and temperature scaling of class probabilities.

Prior correction (Saerens et al. 2002): a classifier trained with class
weights (the mocks give STAR, GALAXY and QSO a third each) estimates
probabilities under the *training* class priors. Multiplying by
pi_natural / pi_training and renormalising gives them under the natural
abundances of the survey; without it a rare class (QSO_LOW, 0.7% of objects
but a sixth of the training weight) swallows the ambiguous majority.

Temperature scaling (Guo et al. 2017):
The committee's output is a median of member probabilities, not a softmax of
logits, so the temperature acts on its logarithm: p_T = softmax(log p / T).
T > 1 softens over-confident probabilities, T < 1 sharpens them; the argmax
(hence every F1) is unchanged. T is fitted on validation data by minimising
the negative log-likelihood.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

_EPS = 1e-12


def prior_ratio(
    y_train: np.ndarray,
    w_train: np.ndarray,
    y_natural: np.ndarray,
    w_natural: np.ndarray | None = None,
    n_classes: int = 4,
) -> np.ndarray:
    """pi_natural / pi_training per class (1 where a class is absent from either).

    ``w_natural`` are abundance weights of the natural sample (oversampled
    classes weighted down), if any.
    """
    train = np.bincount(y_train, weights=w_train, minlength=n_classes)
    natural = np.bincount(y_natural, weights=w_natural, minlength=n_classes).astype(float)
    train, natural = train / train.sum(), natural / natural.sum()
    ok = (train > 0) & (natural > 0)
    return np.where(ok, natural / np.where(ok, train, 1.0), 1.0)


def apply_prior(probs: np.ndarray, ratio: np.ndarray | None) -> np.ndarray:
    """Probabilities (N, K) moved to other class priors: p * ratio, renormalised."""
    if ratio is None:
        return probs
    p = probs * np.asarray(ratio)[None, :]
    return p / p.sum(axis=1, keepdims=True)


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities (N, K) rescaled by ``temperature``."""
    logp = np.log(np.clip(probs, _EPS, 1.0)) / temperature
    return np.exp(log_softmax(logp, axis=1))


def nll(probs: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
    """Mean negative log-likelihood of the true classes."""
    w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, float)
    return float(-(w * np.log(np.clip(probs[np.arange(len(y)), y], _EPS, 1.0))).sum() / w.sum())


def fit_temperature(
    probs: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None
) -> float:
    """The T in [0.05, 20] minimising the NLL of ``apply_temperature(probs, T)``."""
    res = minimize_scalar(
        lambda log_t: nll(apply_temperature(probs, np.exp(log_t)), y, sample_weight),
        bounds=(np.log(0.05), np.log(20.0)),
        method="bounded",
        options={"xatol": 1e-4},
    )
    return float(np.exp(res.x))
