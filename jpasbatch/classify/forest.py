"""The random-forest baseline on the same features as the ANN (scikit-learn)."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
from sklearn.ensemble import RandomForestClassifier

from jpasbatch.classify.calibrate import apply_prior
from jpasbatch.classify.features import FeatureScaler


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
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(
            {
                "forest": self.forest,
                "scaler": self.scaler.to_dict(),
                "meta": self.meta,
                "prior": self.prior,
            },
            path,
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> ForestClassifier:
        blob = joblib.load(path)
        return cls(blob["forest"], FeatureScaler(**blob["scaler"]), blob["meta"], blob.get("prior"))
