"""The refinement stage of ``jpasbatch spectra``: the networks' answers -> template-fit redshifts.

The networks give a class (``P_STAR``, ``P_GALAXY``, ``P_QSO``) and, per
extragalactic class, an ensemble redshift and spread (``Z_GALAXY``,
``Z_GALAXY_ERR``, ``Z_QSO``, ``Z_QSO_ERR``). :func:`refine_batch` fits the
templates of the two most probable classes (of the network's class alone where
it is sure, :data:`P_SURE`), each in a window around its own
ensemble's redshift, its spread calibrated by :data:`SIGMA_SCALE`
(:func:`jpasbatch.spectra.refine.refine`; a class whose best minimum falls
past the window, a network off its redshift, is refitted over its whole
range), ranks them by chi2 with the classifier's probabilities as a prior
(:func:`class_penalty`) and models ``Z_ERR`` (:data:`Z_ERR_MODEL`);
:func:`merge` writes the result into the same table: ``Z``, ``Z_ERR`` become
the template fit's, the network's are kept as ``Z_NET``, ``Z_NET_ERR``
(``CLASS`` stays the network's, ``SPECTYPE`` is the fit's), with
``DELTACHI2``, ``ZWARN``, ``CHI2``, ``NPIXELS`` and ``CHI2_<CLASS>``. :func:`refine_batches`
runs the batches as Dask tasks (the kernel itself imports no Dask).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from jpasbatch.spectra.instrument import C_KMS
from jpasbatch.spectra.refine import refine

#: Network columns the refinement reads.
PROB_COLUMNS = ("P_STAR", "P_GALAXY", "P_QSO")
#: Columns :func:`merge` adds or replaces.
REFINED_COLUMNS = ("Z", "Z_ERR", "Z_NET", "Z_NET_ERR", "SPECTYPE", "DELTACHI2", "ZWARN",
                   "CHI2", "NPIXELS", "CHI2_STAR", "CHI2_GALAXY", "CHI2_QSO")  # fmt: skip
#: Each class's best chi2 (NaN where the class was not fitted).
CLASS_CHI2 = REFINED_COLUMNS[-3:]


#: Good pixels over which :func:`noise_ivar` measures the scatter of a spectrum
#: without errors (~1/15 of a DESI or SDSS spectrum: the scale its noise changes on).
NOISE_WINDOW = 301
#: Z_ERR model per SPECTYPE, ``(scale, floor_kms)``: the fit's curvature error (already
#: scaled by sqrt(chi2/dof)) times ``scale``, in quadrature with ``floor_kms`` (1 + z) / c.
#: Measured by :func:`jpasbatch.spectra.evaluate.fit_z_err_model` on the correct,
#: ZWARN == 0 fits of the whole validation split of the shipped models' training set
#: (not the test split: 1,881 spectra, of which 519 galaxies and 432 QSOs are fitted
#: right with ZWARN 0). The scale is large because the emulator's two template families
#: give errors 2-7x apart at the same S/N (the fit's own redrock bases against kcorrect
#: and SDSS QSO spectra) and the fit cannot tell them apart (docs/spectral_refine).
#: Stars' true z is 0 while the emulator moves them by ~100 km/s: theirs is as fitted.
Z_ERR_MODEL = {"STAR": (1.0, 0.0), "GALAXY": (2.45, 0.0), "QSO": (0.85, 210.0)}
#: The shipped ensembles' spread under-states their error by these factors: on the
#: validation split of their training set (641 galaxies, 629 QSOs; not the test
#: split) 68.3 % of |ln(1 + z_net) - ln(1 + z_true)| lie within this multiple of
#: Z_<CLASS>_ERR / (1 + z_net). :func:`priors` scales the spread by it, so the
#: refinement's window (5 sigma) holds the redshift for 99.4 % of them (88 % unscaled).
SIGMA_SCALE = {"GALAXY": 3.0, "QSO": 3.46}
#: Weight of the classifier's probabilities in the fit's choice of class (:func:`class_penalty`):
#: Bayes' rule. On the validation split (640 spectra, both top classes fitted) the
#: class accuracy with P_SURE = 0.95 is 0.955 at weight 0 (the chi2 alone), 0.963 at 1;
#: the network alone reaches 0.975 on emulated spectra, the fit does better on real ones.
PRIOR_WEIGHT = 1.0
#: Where the classifier's top probability reaches this, its class alone is fitted.
P_SURE = 0.95


def top_two(pred: pd.DataFrame, sure: float = P_SURE) -> list[tuple[str, ...]]:
    """The classes to fit per row: the network's two most probable, most probable first.

    Where the network is sure (top probability >= ``sure``) only its class. The
    template fit's choice between the two and the network's class are right on
    different spectra: on the emulated test split a sure network beats the fit
    (redrock bases fit other template families, kcorrect galaxies, less well
    than the QSO basis sometimes does), on the real spectra the fit beats the
    network (the network's domain gap); 0.95 is the compromise measured on both
    (docs/spectral_refine).
    """
    missing = [c for c in PROB_COLUMNS if c not in pred]
    if missing:
        raise KeyError(f"network predictions lack {', '.join(missing)}")
    probs = pred[list(PROB_COLUMNS)].to_numpy(float)
    names = np.array([c[2:] for c in PROB_COLUMNS])
    order = np.argsort(-probs, axis=1, kind="stable")[:, :2]
    alone = probs.max(axis=1) >= sure
    return [(r[0],) if a else tuple(r) for r, a in zip(names[order], alone, strict=True)]


def priors(
    pred: pd.DataFrame, scale: dict[str, float] = SIGMA_SCALE
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Each class's redshift prior and error: its own ensemble's (stars: 0).

    The error is the ensemble's spread times ``scale`` (:data:`SIGMA_SCALE`). A
    class without an ensemble in the model gets NaN: the refinement then scans
    its whole range.
    """
    n = len(pred)
    z = {"STAR": np.zeros(n)}
    err = {"STAR": np.zeros(n)}
    for cls in ("GALAXY", "QSO"):
        z[cls] = pred[f"Z_{cls}"].to_numpy(float) if f"Z_{cls}" in pred else np.full(n, np.nan)
        col = f"Z_{cls}_ERR"
        spread = pred[col].to_numpy(float) if col in pred else np.full(n, np.nan)
        err[cls] = spread * scale.get(cls, 1.0)
    return z, err


def class_penalty(pred: pd.DataFrame, weight: float | None = None) -> dict[str, np.ndarray]:
    """``-2 weight ln P(class)`` per class: the classifier as a prior on the fit's class.

    ``weight``: :data:`PRIOR_WEIGHT` by default (1 is Bayes' rule for calibrated
    probabilities and a chi2 that is -2 ln L).
    """
    w = PRIOR_WEIGHT if weight is None else weight
    probs = {c[2:]: np.clip(pred[c].to_numpy(float), 1e-12, 1) for c in PROB_COLUMNS}
    return {c: -2 * w * np.log(p) for c, p in probs.items()}


def noise_ivar(flux: np.ndarray, ivar: np.ndarray) -> np.ndarray:
    """``ivar``, with spectra that carry no errors given one estimated from their scatter.

    A file without errors (e.g. the DESI tables of the real sets) reads with a
    constant ``ivar`` on every good pixel; chi2 differences and ``Z_ERR`` need
    the real noise, so such a row gets ``1 / sigma^2`` with sigma the robust
    scatter (1.4826 MAD) of its pixel-to-pixel differences over sqrt(2), taken
    over :data:`NOISE_WINDOW` good pixels around each pixel: noise varies along a
    spectrum (a spectrograph's blue arm, the dichroic, the ends), and weighing
    the noisy stretches as much as the rest lets them pick the class. Never
    below the whole spectrum's scatter: a stretch its publisher smoothed would
    otherwise get a tiny scatter and outweigh everything else.
    """
    from scipy.ndimage import median_filter

    ivar = np.array(ivar, dtype=np.float32, copy=True)
    good = ivar > 0
    for i in np.flatnonzero(good.sum(1) > 10):
        v = ivar[i, good[i]]
        if v.min() != v.max():
            continue
        d = np.diff(np.asarray(flux[i], float)[good[i]])
        dev = np.abs(d - np.median(d))
        whole = 1.4826 * np.median(dev) / np.sqrt(2)
        if whole > 0:
            local = 1.4826 * median_filter(dev, NOISE_WINDOW, mode="nearest") / np.sqrt(2)
            sigma = np.maximum(np.append(local, local[-1]), whole)  # n - 1 differences
            ivar[i, good[i]] = 1.0 / sigma**2
    return ivar


def model_z_err(z_err, z, spectype, model=Z_ERR_MODEL) -> np.ndarray:
    """``Z_ERR`` of the fit by :data:`Z_ERR_MODEL`: ``hypot(scale z_err, floor (1 + z) / c)``."""
    scale = np.array([model[c][0] for c in spectype], dtype=float)
    floor = np.array([model[c][1] for c in spectype], dtype=float)
    return np.hypot(scale * np.asarray(z_err, float), floor * (1 + np.asarray(z, float)) / C_KMS)


def refine_batch(
    wave: np.ndarray, flux: np.ndarray, ivar: np.ndarray, pred: pd.DataFrame, widen: bool = True
):
    """Template-fit columns (``REFINED_COLUMNS``) for one batch of network predictions.

    Parameters
    ----------
    wave
        The grid's wavelengths ``(L,)``.
    flux, ivar
        ``(n, L)`` on that grid (``ivar == 0``: masked).
    pred
        The network's rows for these spectra (:meth:`SpectraModel.predict_arrays`).
    widen
        Refit over the whole range the classes whose minimum fell past the
        network's window (:func:`~jpasbatch.spectra.refine.refine`).
    """
    from jpasbatch.distribute.dask import tune_allocator

    tune_allocator()  # large per-block temporaries (see its docstring); once per process
    z, err = priors(pred)
    res = refine(wave, flux, noise_ivar(flux, ivar), top_two(pred), z, err, widen=widen,
                 class_penalty=class_penalty(pred))  # fmt: skip
    cols = res.to_columns()
    for cls in CLASS_CHI2:
        cols.setdefault(cls, np.full(len(pred), np.nan))
    cols["Z_ERR"] = model_z_err(cols["Z_ERR"], cols["Z"], res.spectype)
    # Z_NET: the network's own answer for its predicted class (0 for stars)
    cols["Z_NET"] = pred["Z"].to_numpy(float)
    cols["Z_NET_ERR"] = pred["Z_ERR"].to_numpy(float)
    return pd.DataFrame(cols, index=pred.index)


def merge(pred: pd.DataFrame, refined: pd.DataFrame) -> pd.DataFrame:
    """``pred`` with the refined columns in place of the network's ``Z`` and ``Z_ERR``."""
    out = pred.drop(columns=[c for c in REFINED_COLUMNS if c in pred])
    return pd.concat([out, refined[list(REFINED_COLUMNS)].set_axis(out.index)], axis=1)


def refine_batches(wave, batches, client=None, progress: bool = True) -> list[pd.DataFrame]:
    """:func:`refine_batch` over ``batches`` of ``(flux, ivar, pred)``, in order.

    With a Dask ``client`` each batch is one task (the arrays travel with it);
    without one they run here, one after the other.
    """
    if client is None:
        return [refine_batch(wave, f, iv, p) for f, iv, p in batches]
    from jpasbatch.distribute.dask import gather

    wave_f = client.scatter(np.asarray(wave), broadcast=True)
    futures = [client.submit(refine_batch, wave_f, f, iv, p, pure=False) for f, iv, p in batches]
    return gather(futures, progress, "refine")
