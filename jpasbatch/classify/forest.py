"""The random-forest baseline on the same features as the ANN (scikit-learn).

Saved as ``forest.skops`` (the forest, through skops: no pickle) and
``forest.json`` (its card: feature scaling, prior, training metadata and the
SHA-256 of ``forest.skops``; see :mod:`jpasbatch.core.modelio`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import skops.io
from sklearn.ensemble import RandomForestClassifier

from jpasbatch.classify.calibrate import apply_prior
from jpasbatch.classify.features import FeatureScaler
from jpasbatch.core import modelio
from jpasbatch.core.errors import InputError

#: The model card's ``kind``.
KIND = "jpasbatch.classify.ForestClassifier"
SUFFIX = ".skops"
#: What skops reports untrusted in a fitted RandomForestClassifier
#: (``skops.io.get_untrusted_types``): the trees' array-backed nodes, nothing else.
#: Any other type in a file (a function, an arbitrary class) is refused.
TRUSTED = ["sklearn.tree._tree.Tree"]


class ForestClassifier:
    """A scikit-learn random forest with the ``predict_proba`` of the ANN classifier."""

    def __init__(
        self,
        forest: RandomForestClassifier,
        scaler: FeatureScaler,
        meta: dict | None = None,
        prior: list[float] | None = None,
    ):
        self.forest = forest
        self.scaler = scaler
        self.meta = meta or {}
        self.prior = prior  # as the ANN's: trained with class weights, used at natural abundance

    @classmethod
    def fit(
        cls,
        flux: np.ndarray,
        y: np.ndarray,
        weight: np.ndarray,
        scaler: FeatureScaler,
        *,
        n_estimators: int = 200,
        seed: int = 0,
        n_jobs: int = -1,
    ) -> ForestClassifier:
        x, ok = scaler.transform(flux)
        forest = RandomForestClassifier(
            n_estimators=n_estimators, min_samples_leaf=2, n_jobs=n_jobs, random_state=seed
        )
        forest.fit(x[ok], y[ok], sample_weight=weight[ok])
        return cls(forest, scaler)

    def predict_proba(
        self, flux: np.ndarray, *, natural: bool = True, **_
    ) -> tuple[np.ndarray, np.ndarray]:
        """Class probabilities (N, 4) (NaN where unclassifiable) and the usable-row mask.

        ``natural``: prior-corrected to natural abundances, as the ANN's.
        """
        x, ok = self.scaler.transform(flux)
        p = np.full((len(x), 4), np.nan)
        if ok.any():
            # a class absent from the training data has no column in the forest's output
            p[ok] = 0.0
            p[np.ix_(ok, self.forest.classes_)] = self.forest.predict_proba(x[ok])
            if natural:
                p[ok] = apply_prior(p[ok], self.prior)
        return p, ok

    def save(self, path: str | Path) -> Path:
        """Write ``NAME.skops`` + ``NAME.json``; returns the card's path."""
        card = {
            "kind": KIND,
            "scaler": self.scaler.to_dict(),
            "meta": self.meta,
            "prior": self.prior,
        }
        return modelio.save_bytes(path, skops.io.dumps(self.forest), card, SUFFIX)

    @classmethod
    def load(cls, path: str | Path) -> ForestClassifier:
        """A forest from its card, ``.skops`` file or name."""
        data, card = modelio.load_bytes(path, ("scaler", "meta", "prior"), KIND, SUFFIX)
        weights, _ = modelio.model_paths(path, SUFFIX)
        try:
            forest = skops.io.loads(data, trusted=TRUSTED)
        except Exception as e:  # skops raises many kinds on a bad file; all mean the same
            raise InputError(f"not a loadable skops random forest ({e})", path=weights) from e
        if not isinstance(forest, RandomForestClassifier):
            raise InputError(f"holds a {type(forest).__name__}, not a forest", path=weights)
        return cls(forest, FeatureScaler.from_dict(card["scaler"]), card["meta"], card["prior"])
