"""Template-fit photometric redshifts and classes for J-PAS photometry.

A physics baseline: chi-square fits of the DESI redrock templates (stellar
archetypes, galaxy PCA basis, QSO PCA bases with Lyman-alpha IGM absorption)
to the 60 J-PAS band fluxes, class by BIC. :mod:`.grids` integrates the
templates through the bands on redshift grids (cached on disk); :mod:`.kernel`
fits many objects at once.
"""

from __future__ import annotations

from jpasbatch.templatefit.grids import TemplateGrids, load_grids
from jpasbatch.templatefit.kernel import (
    CLASSES,
    FLAG_BITS,
    TemplateFitResult,
    fit_one_naive,
    fit_photometry,
)

__all__ = [
    "CLASSES",
    "FLAG_BITS",
    "TemplateFitResult",
    "TemplateGrids",
    "fit_one_naive",
    "fit_photometry",
    "load_grids",
]
