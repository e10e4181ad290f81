"""Mean intergalactic (IGM) transmission of Inoue, Shimizu, Iwata & Tanaka (2014).

The model (MNRAS 442, 1805, section 4) gives the mean optical depth of neutral
hydrogen between a source at redshift ``z_S`` and the observer as the sum of four
analytic terms:

* Lyman series of the Lyman-alpha forest (LAF) clouds, eq. (21),
* Lyman series of the damped Lyman-alpha systems (DLA), eq. (22),
* Lyman continuum of the LAF clouds, eqs. (25)-(27),
* Lyman continuum of the DLAs, eqs. (28)-(29),

so that the mean transmission is ``exp(-tau)`` (eq. 15 with eq. 20,
``tau = tau_LS^LAF + tau_LS^DLA + tau_LC^LAF + tau_LC^DLA``). The Lyman-series
coefficients ``A_j`` are the paper's Tables 2 (LAF) and 3 (DLA), shipped as
package data (``jpasbatch/data/igm``).
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

import numpy as np

from jpasbatch.core.errors import InputError

__all__ = ["LYMAN_ALPHA", "LYMAN_LIMIT", "igm_transmission", "lyman_series_coefficients"]

#: Rest-frame vacuum wavelength of Lyman alpha in Angstrom (first row of Table 2).
LYMAN_ALPHA = 1215.67
#: Lyman limit in Angstrom, the value Inoue+2014 use in eqs. (25)-(29).
LYMAN_LIMIT = 911.8

# Break points of the piecewise power laws, in units of the line (or limit)
# wavelength: lambda_obs / lambda_j = 1 + z_absorber, so 2.2 and 5.7 are the
# absorber redshifts 1.2 and 4.7 where the LAF column-density distribution
# changes slope, and 3.0 is z = 2 for the DLAs (paper, eqs. 21-22 and 25-29).
_LAF_X1, _LAF_X2 = 2.2, 5.7
_DLA_X1 = 3.0


def _data_path(name: str) -> Path:
    return Path(str(resources.files("jpasbatch").joinpath("data", "igm", name)))


def _read_table(name: str, ncol: int) -> np.ndarray:
    path = _data_path(name)
    try:
        table = np.loadtxt(path, ndmin=2)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read IGM coefficient table: {exc}", path=path) from exc
    if table.shape != (39, ncol) or not np.all(np.isfinite(table)):
        raise InputError(
            f"expected 39 finite rows of {ncol} columns (Lyman series j=2..40), "
            f"got shape {table.shape}",
            path=path,
        )
    if np.any(np.diff(table[:, 1]) >= 0):
        # The prefix-sum trick in _lyman_series relies on decreasing wavelengths.
        raise InputError("line wavelengths must decrease with j", path=path, column="lambda_j")
    return table


@functools.lru_cache(maxsize=1)
def lyman_series_coefficients() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the Lyman-series coefficients of Inoue et al. (2014), read once.

    Returns
    -------
    wavelength : numpy.ndarray
        Line wavelengths ``lambda_j`` (j = 2..40) in Angstrom, shape ``(39,)``, decreasing.
    a_laf : numpy.ndarray
        ``A_j1, A_j2, A_j3`` of the LAF (Table 2), shape ``(39, 3)``.
    a_dla : numpy.ndarray
        ``A_j1, A_j2`` of the DLA (Table 3), shape ``(39, 2)``.

    The arrays are read-only because they are cached.
    """
    laf = _read_table("LAFcoeff.txt", 5)
    dla = _read_table("DLAcoeff.txt", 4)
    if not np.allclose(laf[:, 1], dla[:, 1]):
        raise InputError(
            "line wavelengths differ from LAFcoeff.txt", path=_data_path("DLAcoeff.txt")
        )
    out = (laf[:, 1].copy(), laf[:, 2:5].copy(), dla[:, 2:4].copy())
    for a in out:
        a.flags.writeable = False
    return out


def _lyman_series(lam: np.ndarray, z: np.ndarray) -> np.ndarray:
    """LAF + DLA Lyman-series optical depth, eqs. (21) and (22); shape ``(N, L)``.

    Line j absorbs at ``lambda_j < lambda_obs < lambda_j (1 + z_S)`` with a power
    law in ``x = lambda_obs / lambda_j`` that does not depend on ``z_S``. So the
    per-line terms are computed once on the wavelength grid, summed cumulatively
    over j (lines sorted by decreasing wavelength), and each object just picks
    the prefix of lines with ``lambda_j > lambda_obs / (1 + z_S)``. That costs
    ``O(N L log J)`` time and ``O(N L)`` memory, with no loop over objects.
    """
    lam_j, a_laf, a_dla = lyman_series_coefficients()
    x = lam[:, None] / lam_j[None, :]  # (L, J)
    # Eq. (21): LAF, exponents 1.2, 3.7, 5.5 below 2.2, between 2.2 and 5.7, above.
    laf = np.where(
        x < _LAF_X1,
        a_laf[:, 0] * x**1.2,
        np.where(x < _LAF_X2, a_laf[:, 1] * x**3.7, a_laf[:, 2] * x**5.5),
    )
    # Eq. (22): DLA, exponents 2 below x = 3, 3 above.
    dla = np.where(x < _DLA_X1, a_dla[:, 0] * x**2, a_dla[:, 1] * x**3)
    # Lower bound lambda_obs > lambda_j: the absorber must be at z > 0.
    per_line = np.where(x > 1.0, laf + dla, 0.0)
    cumulative = np.concatenate([np.zeros((lam.size, 1)), np.cumsum(per_line, axis=1)], axis=1)
    # Number of lines with lambda_j > lambda_rest, i.e. lambda_obs < lambda_j (1 + z_S).
    lam_rest = lam[None, :] / (1.0 + z[:, None])  # (N, L)
    n_lines = np.searchsorted(-lam_j, -lam_rest, side="left")
    return cumulative[np.arange(lam.size)[None, :], n_lines]


def _lyman_continuum(lam: np.ndarray, z: np.ndarray) -> np.ndarray:
    """LAF + DLA Lyman-continuum optical depth, eqs. (25)-(29); shape ``(N, L)``.

    The formulas assume ``lambda_L < lambda_obs`` (absorbers at z > 0). Below
    911.8 A observed, which no J-PAS band reaches, ``x`` is held at 1 so the
    optical depth stays at its value at the limit instead of extrapolating
    the power laws outside their domain.
    """
    x = np.maximum(lam, LYMAN_LIMIT)[None, :] / LYMAN_LIMIT  # (1, L)
    zp = (1.0 + z)[:, None]  # (N, 1)
    inside = x < zp  # lambda_obs < lambda_L (1 + z_S)

    # LAF, eq. (25) for z_S < 1.2.
    laf_low = 0.325 * (x**1.2 - zp**-0.9 * x**2.1)
    # LAF, eq. (26) for 1.2 <= z_S < 4.7.
    laf_mid = np.where(
        x < _LAF_X1,
        2.55e-2 * zp**1.6 * x**2.1 + 0.325 * x**1.2 - 0.250 * x**2.1,
        2.55e-2 * (zp**1.6 * x**2.1 - x**3.7),
    )
    # LAF, eq. (27) for z_S >= 4.7.
    laf_high = np.where(
        x < _LAF_X1,
        5.22e-4 * zp**3.4 * x**2.1 + 0.325 * x**1.2 - 3.14e-2 * x**2.1,
        np.where(
            x < _LAF_X2,
            5.22e-4 * zp**3.4 * x**2.1 + 0.218 * x**2.1 - 2.55e-2 * x**3.7,
            5.22e-4 * (zp**3.4 * x**2.1 - x**5.5),
        ),
    )
    laf = np.where(zp < _LAF_X1, laf_low, np.where(zp < _LAF_X2, laf_mid, laf_high))

    # DLA, eq. (28) for z_S < 2.
    dla_low = 0.211 * zp**2 - 7.66e-2 * zp**2.3 * x**-0.3 - 0.135 * x**2
    # DLA, eq. (29) for z_S >= 2.
    dla_high = np.where(
        x < _DLA_X1,
        0.634 + 4.70e-2 * zp**3 - 1.78e-2 * zp**3.3 * x**-0.3 - 0.135 * x**2 - 0.291 * x**-0.3,
        4.70e-2 * zp**3 - 1.78e-2 * zp**3.3 * x**-0.3 - 2.92e-2 * x**3,
    )
    dla = np.where(zp < _DLA_X1, dla_low, dla_high)
    return np.where(inside, laf + dla, 0.0)


def igm_transmission(wavelength_obs: np.ndarray, z: float | np.ndarray) -> np.ndarray:
    """Mean IGM transmission ``exp(-tau)`` of Inoue et al. (2014).

    Parameters
    ----------
    wavelength_obs
        Observer-frame wavelengths in Angstrom, shape ``(L,)``, positive.
    z
        Source redshift: a scalar, or an array of shape ``(N,)``; ``z >= 0``.

    Returns
    -------
    numpy.ndarray
        Transmission in (0, 1], shape ``(L,)`` for a scalar ``z``, else ``(N, L)``.
        It is exactly 1 redward of ``(1 + z) * 1215.67`` A and at ``z = 0``.

    Raises
    ------
    InputError
        If the wavelengths are not a finite positive 1-D array, or a redshift is
        negative or not finite.

    Notes
    -----
    ``tau`` is the sum of eqs. (21), (22), (25)-(27) and (28)-(29) of the paper
    (eq. 20). The published DLA continuum fit (eq. 28) dips very slightly below
    zero next to the Lyman limit of the source, so the total ``tau`` is clipped
    at 0 to keep the transmission a transmission.

    Examples
    --------
    >>> import numpy as np
    >>> t = igm_transmission(np.array([4000.0, 5000.0]), 3.0)
    >>> t[1] == 1.0
    np.True_
    """
    lam = np.asarray(wavelength_obs, dtype=float)
    if lam.ndim != 1 or not np.all(np.isfinite(lam)) or np.any(lam <= 0):
        raise InputError("wavelength_obs must be a 1-D array of finite positive Angstroms")
    z_arr = np.asarray(z, dtype=float)
    scalar = z_arr.ndim == 0
    z_arr = np.atleast_1d(z_arr)
    if z_arr.ndim != 1:
        raise InputError(f"z must be a scalar or a 1-D array, got shape {z_arr.shape}")
    if not np.all(np.isfinite(z_arr)) or np.any(z_arr < 0):
        raise InputError("redshifts must be finite and >= 0")
    tau = _lyman_series(lam, z_arr) + _lyman_continuum(lam, z_arr)
    trans = np.exp(-np.maximum(tau, 0.0))
    return trans[0] if scalar else trans
