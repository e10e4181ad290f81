"""One partition in, its VAC rows, dense arrays and rejects out (pure: no Dask).

Every input row ends up in exactly one of the VAC rows or the rejects rows,
which :func:`process_partition` checks before returning. Rows are rejected
only when no model can say anything about them:

``BAD_FLUX``
    an infinite flux or relative error;
``NEGATIVE_ERROR``
    a negative relative error;
``NO_REFERENCE``
    no positive rSDSS flux: the classifier's features (f_j / f_r, m_j - m_r)
    are undefined. Only without the template fit, which needs no reference
    band: with it such a row is kept, its classifier columns empty and
    ``QUALITY`` bit 4 set.

Everything else gets a VAC row; doubtful ones carry ``QUALITY`` bits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from jpasbatch.catalog.cuts import has_reference, n_observed_bands, photometry_arrays
from jpasbatch.catalog.schemas import (
    BANDS,
    REJECTS,
    VAC,
    astropy_string_lengths,
    with_astropy_units,
)
from jpasbatch.core.errors import InputError, RowConservationError
from jpasbatch.physics.filters import jpas
from jpasbatch.physics.photometry import flux_to_ab
from jpasbatch.vac.models import ModelSet
from jpasbatch.vac.sources import HEALPIX

REASONS: dict[str, str] = {
    "BAD_FLUX": "an infinite flux or relative error",
    "NEGATIVE_ERROR": "a negative relative flux error",
    "NO_REFERENCE": "no positive rSDSS flux: the classifier's features are undefined",
}
#: ``QUALITY`` bits.
FEW_BANDS, OUT_OF_RANGE, NO_CLASSIFIER = 1, 2, 4
MIN_BANDS = 50
_R = BANDS.index("rSDSS")
_R_PIVOT = jpas()["rSDSS"].pivot_wavelength
#: Input columns carried into the VAC by default, where the input has them: the
#: identity of a row (a photometry file's ``ID`` and spectrum name) and its coordinates.
DEFAULT_KEEP = ("ID", "SOURCE_ID", "SPECNAME", "SOURCE", "RA", "DEC")


@dataclass
class PartitionResult:
    """What one partition gives: the VAC rows, their dense arrays, the rejects."""

    vac: pa.Table
    arrays: dict[str, np.ndarray]
    rejects: pa.Table


def reject_reasons(flux: np.ndarray, relerr: np.ndarray, need_reference: bool = True) -> np.ndarray:
    """Reason code per row (``""``: goes into the VAC), first applicable reason wins.

    ``need_reference``: a row without a positive rSDSS flux is rejected (when
    no template fit can describe it).
    """
    reason = np.full(len(flux), "", dtype=object)
    with np.errstate(invalid="ignore"):
        checks = (
            (np.isinf(flux).any(axis=1) | np.isinf(relerr).any(axis=1), "BAD_FLUX"),
            ((relerr < 0).any(axis=1), "NEGATIVE_ERROR"),
            (need_reference & ~has_reference(flux), "NO_REFERENCE"),
        )
    for bad, code in checks:
        reason[(reason == "") & bad] = code
    return reason


def process_partition(
    table: pa.Table,
    models: ModelSet,
    *,
    source: str,
    first_row: int = 0,
    provenance_id: str = "",
    batch_size: int = 65536,
    keep_columns: Sequence[str] | None = None,
) -> PartitionResult:
    """Run the models on one partition.

    Parameters
    ----------
    table
        Rows with ``OBJECT_ID``, ``FLUX_<band>``, ``FLUX_RELERR_<band>`` and
        optionally coordinates (see :func:`jpasbatch.vac.sources.read_partition`).
    models
        The loaded models.
    source, first_row
        Input file and the row of ``table``'s first row in it (for the rejects).
    provenance_id
        The run's key in ``provenance.json``, stored in every row.
    batch_size
        Rows per forward pass.
    keep_columns
        Input columns copied into the VAC rows (None: those of
        :data:`DEFAULT_KEEP` the input has; a named column must exist).
    """
    flux, relerr = photometry_arrays(table)
    reason = reject_reasons(flux, relerr, need_reference=models.templates is None)
    keep = reason == ""
    good = table.filter(pa.array(keep))
    columns, arrays = models.predict(good, batch_size) if good.num_rows else ({}, {})
    n = good.num_rows
    f_r = flux[keep, _R].astype(np.float64)
    mag_r = flux_to_ab(f_r, _R_PIVOT)
    n_bands = n_observed_bands(flux[keep], relerr[keep])
    quality = np.where(n_bands < MIN_BANDS, FEW_BANDS, 0)
    if models.classifier is not None:
        quality |= np.where(has_reference(flux[keep]), 0, NO_CLASSIFIER)
    if models.r_range is not None:
        lo, hi = models.r_range
        # the scaler's magnitudes have no zero point: compare on the same scale
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = -2.5 * np.log10(f_r)
        quality |= np.where((rel < lo) | (rel > hi), OUT_OF_RANGE, 0)
    base = {
        "OBJECT_ID": good["OBJECT_ID"].cast(pa.int64()),
        "ALPHA_J2000": _column(good, "ALPHA_J2000", n),
        "DELTA_J2000": _column(good, "DELTA_J2000", n),
        "Z_PHOT": np.full(n, np.nan, np.float32),
        "Z_PHOT_ERR": np.full(n, np.nan, np.float32),
        "QUALITY": quality.astype(np.int32),
        "MAG_R": mag_r.astype(np.float32),
        "N_BANDS": n_bands.astype(np.int16),
        "PROVENANCE_ID": np.full(n, provenance_id, dtype=object),
    }
    merged = base | columns
    fields = [VAC.field(name) for name in VAC.names]
    fields += [_field(name, merged[name]) for name in merged if name not in VAC.names]
    for name in kept_columns(table.schema, keep_columns, source):
        if name not in merged:
            fields.append(table.schema.field(name))
            merged[name] = good[name]
    if HEALPIX in good.column_names:  # keeps the VAC a HATS catalogue
        fields.append(pa.field(HEALPIX, pa.int64()))
        merged[HEALPIX] = good[HEALPIX]
    # units for astropy too: Table.read of a VAC file shows them
    schema = with_astropy_units(pa.schema(fields, metadata=VAC.metadata))
    vac = pa.table({f.name: _array(merged.get(f.name), f.type, n) for f in schema}, schema=schema)
    vac = vac.replace_schema_metadata({**schema.metadata, **astropy_string_lengths(vac)})

    rows = first_row + np.flatnonzero(~keep)
    rejects = pa.table(
        {
            "SOURCE_FILE": pa.array([source] * len(rows), pa.string()),
            "SOURCE_ROW": pa.array(rows, pa.int64()),
            "OBJECT_ID": table["OBJECT_ID"].filter(pa.array(~keep)).cast(pa.int64()),
            "REASON": pa.array(list(reason[~keep]), pa.string()),
            "DETAIL": pa.array([REASONS[r] for r in reason[~keep]], pa.string()),
        },
        schema=REJECTS,
    )
    if vac.num_rows + rejects.num_rows != table.num_rows:
        raise RowConservationError(
            f"{source}: {table.num_rows} rows in, {vac.num_rows} VAC + {rejects.num_rows} rejected"
        )
    return PartitionResult(vac, arrays, rejects)


def kept_columns(schema: pa.Schema, keep: Sequence[str] | None, source: str) -> list[str]:
    """The input columns a VAC keeps (see :func:`process_partition`), checked."""
    if keep is None:
        return [c for c in DEFAULT_KEEP if c in schema.names and c not in VAC.names]
    for name in keep:
        if name not in schema.names:
            raise InputError(
                f"--keep-columns names {name!r}, which the input does not have "
                f"(its columns: {', '.join(schema.names[:12])}, ...)",
                path=source,
                column=name,
            )
        if name in VAC.names:
            raise InputError(
                f"--keep-columns names {name!r}, a column the VAC computes itself",
                path=source,
                column=name,
            )
    return list(keep)


def _column(table: pa.Table, name: str, n: int):
    return table[name] if name in table.column_names else np.full(n, np.nan)


def _field(name: str, values: np.ndarray) -> pa.Field:
    kind = np.asarray(values).dtype
    return pa.field(name, pa.string() if kind.kind == "O" else pa.from_numpy_dtype(kind))


def _array(values, type_: pa.DataType, n: int) -> pa.Array:
    if values is None:  # a VAC column no model filled (e.g. Z_PHOT without a photo-z model)
        return pa.nulls(n, type_)
    if isinstance(values, pa.ChunkedArray | pa.Array):
        return values.cast(type_)
    return pa.array(values, type_, from_pandas=True)
