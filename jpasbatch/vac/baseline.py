"""The physics baseline in every VAC: template-fit class, redshift and p(z).

The chi-square fit of the redrock templates (:mod:`jpasbatch.templatefit`)
needs no training and transfers to real objects (it is the bar the learned
models are judged against, see ``docs/real_sky/``), so every VAC carries it:
``CLASS_TEMPLATE``, ``Z_TEMPLATE``, ``Z_TEMPLATE_ERR``, ``CHI2_STAR``,
``CHI2_GALAXY``, ``CHI2_QSO``, ``TEMPLATE_FLAGS``, the class probabilities from the
BIC (``P_TEMPLATE_<CLASS>``) and the p(z) of the chosen
class, ``PZ_TEMPLATE`` in the Zarr arrays, on the grid stored in the store's
attributes (``PZ_TEMPLATE_Z``), the ``xvals``/``yvals`` of a ``qp.interp``
ensemble.
"""

from __future__ import annotations

import functools

import numpy as np

from jpasbatch.catalog.schemas import CLASSES
from jpasbatch.templatefit import fit_photometry, load_grids
from jpasbatch.templatefit.grids import TemplateGrids

#: Relative error given to bands of a catalogue without errors (noiseless
#: synthetic photometry): the fit needs weights, and 5% is the few-percent level
#: of calibration and template mismatch a survey flux carries anyway.
ASSUMED_RELERR = 0.05


@functools.lru_cache(maxsize=2)
def grids(coarse: bool = False) -> TemplateGrids:
    """The J-PAS model grids, loaded once per process (built and cached on first use)."""
    return load_grids(coarse=coarse)


def band_errors(flux: np.ndarray, relerr: np.ndarray) -> np.ndarray:
    """Absolute 1-sigma errors from the catalogue's relative ones (NaN: missing).

    Where the catalogue has no error at all for a finite flux (``jpasbatch
    photometry`` without ``--noise``), :data:`ASSUMED_RELERR` of the flux.
    """
    relerr = np.where(np.isfinite(flux) & np.isnan(relerr), ASSUMED_RELERR, relerr)
    return np.abs(flux) * relerr


def template_fit(
    flux: np.ndarray, relerr: np.ndarray, coarse: bool = False, ebv: np.ndarray | None = None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """VAC columns and Zarr arrays of the template fit of these rows (the p(z) grid
    is ``grids(coarse).z["QSO"]``).

    ``ebv``: Galactic E(B-V) per row (the catalogue's ``EBV`` column), or None.
    """
    errors = band_errors(flux, relerr)
    fit = fit_photometry(flux.astype(np.float64), errors, grids(coarse), ebv=ebv)
    raw = fit.to_columns()
    columns = {
        "CLASS_TEMPLATE": raw["CLASS_TEMPLATE"].astype(object),
        "Z_TEMPLATE": raw["Z_TEMPLATE"].astype(np.float32),
        "Z_TEMPLATE_ERR": raw["Z_TEMPLATE_ERR"].astype(np.float32),
        "CHI2_STAR": raw["CHI2_STAR"].astype(np.float32),
        "CHI2_GALAXY": raw["CHI2_GALAXY"].astype(np.float32),
        "CHI2_QSO": raw["CHI2_QSO"].astype(np.float32),
        "TEMPLATE_FLAGS": raw["FLAGS"].astype(np.int16),
    }
    probs = fit.class_probabilities()
    for k, c in enumerate(CLASSES):
        columns[f"P_TEMPLATE_{c}"] = probs[:, k].astype(np.float32)
    _, pz = fit.pz_chosen()
    return columns, {"PZ_TEMPLATE": pz.astype(np.float32)}


def combined_class(p_classifier: np.ndarray, p_template: np.ndarray) -> np.ndarray:
    """The class of the classifier used as a prior on the template fit's likelihoods.

    ``P ~ P_template x P_classifier`` (both ``(N, 4)`` over :data:`CLASSES`); rows
    without classifier output (NaN) keep the template fit's class.
    """
    prior = np.where(np.isfinite(p_classifier), p_classifier, 1.0)
    with np.errstate(divide="ignore"):
        score = np.log(np.maximum(p_template, 1e-300)) + np.log(np.maximum(prior, 1e-300))
    return np.asarray(CLASSES, dtype=object)[score.argmax(axis=1)]
