"""Checks every reader applies: numbers, a strictly increasing wavelength, lengths, pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jpasbatch.core.errors import InputError


def as_float(values, path: Path, column: str) -> np.ndarray:
    """Values as float64, or InputError naming the first non-number."""
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        pass
    values = np.asarray(values, dtype=object).ravel()
    for row, value in enumerate(values):
        try:
            float(value)
        except (TypeError, ValueError):
            raise InputError(
                f"value {value!r} is not a number", path=path, column=column, row=row
            ) from None
    raise InputError("column is not numeric", path=path, column=column)  # pragma: no cover


def check_wavelength(wave: np.ndarray, path: Path, column: str) -> None:
    """Wavelengths must be 1-D, finite, positive and strictly increasing."""
    if wave.ndim != 1:
        raise InputError(
            f"wavelength must be one-dimensional, got shape {wave.shape}", path=path, column=column
        )
    bad = np.flatnonzero(~np.isfinite(wave))
    if bad.size:
        raise InputError(
            f"wavelength is {wave[bad[0]]} (not a finite number) at pixel {bad[0]}",
            path=path,
            column=column,
            row=int(bad[0]),
        )
    bad = np.flatnonzero(wave <= 0)
    if bad.size:
        raise InputError(
            f"wavelength {wave[bad[0]]:g} A at pixel {bad[0]} is not positive",
            path=path,
            column=column,
            row=int(bad[0]),
        )
    bad = np.flatnonzero(np.diff(wave) <= 0)
    if bad.size:
        i = int(bad[0]) + 1
        raise InputError(
            f"wavelength is not strictly increasing: pixel {i} ({wave[i]:.6g} A) does not "
            f"follow pixel {i - 1} ({wave[i - 1]:.6g} A); sort the spectrum and remove "
            "duplicate wavelengths",
            path=path,
            column=column,
            row=i,
        )


def check_length(array: np.ndarray, n: int, path: Path, column: str, wave_column: str) -> None:
    """The last axis of ``array`` must match the ``n`` wavelengths."""
    if array.ndim == 0 or array.shape[-1] != n:
        length = "a scalar" if array.ndim == 0 else f"{array.shape[-1]} pixels"
        raise InputError(
            f"length mismatch: {column!r} has {length} but {wave_column!r} has {n}",
            path=path,
            column=column,
        )


def check_pixels(
    wave: np.ndarray,
    flux: np.ndarray,
    ivar: np.ndarray | None,
    mask: np.ndarray | None,
    path: Path,
    *,
    flux_column: str,
    ivar_column: str | None,
    model: bool = False,
    labels: list[str] | None = None,
) -> None:
    """Check flux and ivar pixel by pixel; arrays are ``(L,)`` or ``(N, L)``.

    Negative fluxes are refused only for ``model`` spectra (noiseless
    templates); in observed spectra they are noise or sky residuals, kept as data.
    """
    flux2 = np.atleast_2d(flux)
    ivar2 = None if ivar is None else np.atleast_2d(ivar)
    masked = np.zeros(flux2.shape, dtype=bool) if mask is None else np.atleast_2d(mask)

    def where(k: int, i: int) -> str:
        # DESI files hold many spectra: say which one before the pixel.
        spectrum = f"{labels[k]}, " if labels else ""
        return f"{spectrum}pixel {i} ({wave[i]:.2f} A)"

    def first(bad: np.ndarray) -> tuple[int, int] | None:
        hits = np.argwhere(bad)
        return None if hits.size == 0 else (int(hits[0][0]), int(hits[0][1]))

    if ivar2 is not None:
        hit = first(ivar2 < 0)
        if hit:
            k, i = hit
            raise InputError(
                f"negative inverse variance ({ivar2[k, i]:g}) in {where(k, i)}; "
                "ivar must be >= 0 (0 marks a pixel without data)",
                path=path,
                column=ivar_column,
                row=i,
            )
        hit = first(~np.isfinite(ivar2) & ~masked)
        if hit:
            k, i = hit
            raise InputError(
                f"inverse variance is {ivar2[k, i]} (not a finite number) in {where(k, i)}, "
                "which is not masked",
                path=path,
                column=ivar_column,
                row=i,
            )
    hit = first(~np.isfinite(flux2) & ~masked)
    if hit:
        k, i = hit
        raise InputError(
            f"flux is {flux2[k, i]} (not a finite number) in {where(k, i)}, which is not "
            "masked; mask the pixel or set its ivar to 0",
            path=path,
            column=flux_column,
            row=i,
        )
    if model:
        hit = first(flux2 < 0)
        if hit:
            k, i = hit
            raise InputError(
                f"negative flux ({flux2[k, i]:g} erg/s/cm2/A) in {where(k, i)}; a model "
                "spectrum must be non-negative",
                path=path,
                column=flux_column,
                row=i,
            )
