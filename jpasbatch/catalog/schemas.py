"""Explicit Arrow schemas of every table jpasbatch reads or writes.

One schema per product: the observed catalogue (CEFCA archive columns, one
column per band), the mock catalogue (photometry plus labels, weights, split),
the value-added catalogue and the rejects table. Units and descriptions live in
each field's metadata, so they travel inside every Parquet file;
:func:`with_astropy_units` adds the same units and descriptions in the form
``astropy.table.Table.read`` understands. ``export`` writes the schemas as JSON
into ``schemas/``; ``validate`` checks a table against one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jpasbatch.core.classes import CLASSES
from jpasbatch.core.errors import InputError
from jpasbatch.physics.filters import jpas

#: The J-PAS bands, in archive order: the order of every per-band column.
BANDS: tuple[str, ...] = tuple(jpas().names)

#: f_lambda, as a FITS/astropy unit string (``A`` alone would be the ampere).
FLUX_UNIT = "erg s-1 cm-2 Angstrom-1"


def _f(name: str, type_: pa.DataType, unit: str = "", description: str = "", nullable=True):
    meta = {"unit": unit, "description": description}
    return pa.field(name, type_, nullable=nullable, metadata={k: v for k, v in meta.items() if v})


def flux_column(band: str) -> str:
    """Name of a band's flux column."""
    return f"FLUX_{band}"


def relerr_column(band: str) -> str:
    """Name of a band's relative flux error column."""
    return f"FLUX_RELERR_{band}"


def _photometry_fields(bands: tuple[str, ...] = BANDS) -> list[pa.Field]:
    fields = []
    for band in bands:
        fields.append(
            _f(flux_column(band), pa.float32(), FLUX_UNIT, f"aperture-corrected flux in {band}")
        )
    for band in bands:
        fields.append(
            _f(relerr_column(band), pa.float32(), "", f"relative flux error in {band} (err / flux)")
        )
    return fields


_ID = _f("OBJECT_ID", pa.int64(), "", "unique id: TILE_ID * 1e6 + NUMBER", nullable=False)
_COORDS = [
    _f("ALPHA_J2000", pa.float64(), "deg", "right ascension (J2000)"),
    _f("DELTA_J2000", pa.float64(), "deg", "declination (J2000)"),
]

#: Observed (survey) catalogue after ingestion.
OBSERVED = pa.schema(
    [
        _ID,
        _f("TILE_ID", pa.int32(), "", "CEFCA reference tile id"),
        _f("NUMBER", pa.int32(), "", "object number within the tile"),
        *_COORDS,
        _f("FLAGS", pa.int32(), "", "SExtractor flags (OR over bands for per-band arrays)"),
        _f("MASK_FLAGS", pa.int32(), "", "CEFCA mask flags (OR over bands for per-band arrays)"),
        _f("CLASS_STAR", pa.float32(), "", "SExtractor stellarity, 1 = point-like"),
        *_photometry_fields(),
    ],
    metadata={"product": "observed", "bands": ",".join(BANDS)},
)

#: Mock catalogue: photometry plus truth labels, sampling weight and split.
MOCK = pa.schema(
    [
        _ID,
        *_photometry_fields(),
        _f("CLASS", pa.string(), "", "STAR, GALAXY, QSO_LOW or QSO_HIGH"),
        _f("Z", pa.float64(), "", "true redshift"),
        _f("MAG_R", pa.float32(), "mag", "true rSDSS AB magnitude"),
        _f(
            "WEIGHT",
            pa.float64(),
            "",
            "train rows: sampling weight (STAR, GALAXY, QSO 1/3 each); other rows: "
            "abundance weight (1 / the class's oversampling factor)",
        ),
        _f("SPLIT", pa.string(), "", "train, validation or test"),
    ],
    metadata={"product": "mock", "bands": ",".join(BANDS)},
)


#: Appended to ``MOCK`` / ``MOCK_EXT`` by mocks drawn from spectral families.
FAMILY_FIELD = _f(
    "FAMILY", pa.string(), "", "spectral family of the object (jpasbatch.sim.spectral_families)"
)

#: External broad bands (DESI Legacy Surveys g r z, WISE W1 W2), as OJALA uses them.
EXTERNAL_BANDS: tuple[str, ...] = ("DECAM_G", "DECAM_R", "DECAM_Z", "WISE_W1", "WISE_W2")
#: Legacy Surveys morphological models (``TYPE``), in class-index order.
MORPH_TYPES: tuple[str, ...] = ("PSF", "REX", "EXP", "DEV")
#: Physical truth labels of the emulator and the mocks (names of the truth table).
PHYSICAL_LABELS: tuple[str, ...] = ("TEFF", "EW_HALPHA", "EW_HBETA", "EW_OIII_5007", "EW_NII_6584")

_EXTERNAL_FIELDS = [
    *[_f(flux_column(b), pa.float32(), FLUX_UNIT, f"total (model) flux in {b}")
      for b in EXTERNAL_BANDS],
    *[_f(relerr_column(b), pa.float32(), "", f"relative flux error in {b} (err / flux)")
      for b in EXTERNAL_BANDS],
    _f("MORPH_TYPE", pa.string(), "", "Legacy-Surveys-like morphological model: "
       + ", ".join(MORPH_TYPES)),
]  # fmt: skip

#: External photometry of observed objects (the emulator's Legacy Surveys + WISE cross-match).
EXTERNAL = pa.schema(
    [_ID, *_EXTERNAL_FIELDS],
    metadata={"product": "external", "bands": ",".join(EXTERNAL_BANDS)},
)

#: ``MOCK`` with optional columns appended (all nullable): stellarity, the external
#: bands and morphology, and the physical labels. What the foundation model trains on;
#: every ``MOCK`` reader reads it unchanged (extra columns pass validation).
MOCK_EXT = pa.schema(
    [
        *MOCK,
        _f("CLASS_STAR", pa.float32(), "", "SExtractor-like stellarity, 1 = point-like"),
        *_EXTERNAL_FIELDS,
        _f("TEFF", pa.float64(), "K", "stellar effective temperature (stars only)"),
        *[
            _f(f"EW_{line}", pa.float64(), "Angstrom",
               f"rest-frame equivalent width of {line}, emission positive")
            for line in ("HALPHA", "HBETA", "OIII_5007", "NII_6584")
        ],
    ],
    metadata={"product": "mock", "bands": ",".join(BANDS)},
)  # fmt: skip

#: Value-added catalogue (columns named as in the OJALA VAC where one exists).
VAC = pa.schema(
    [
        _ID,
        *_COORDS,
        *[_f(f"P_{c}", pa.float32(), "", f"probability of class {c}") for c in CLASSES],
        _f(
            "CLASS",
            pa.string(),
            "",
            "the VAC's class: CLASS_TEMPLATE or CLASS_ANN, as provenance.json class_source says",
        ),
        _f("CLASS_ANN", pa.string(), "", "most probable class of the classifier (P_<CLASS>)"),
        _f(
            "CLASS_COMBINED",
            pa.string(),
            "",
            "class of P_<CLASS> x P_TEMPLATE_<CLASS> (the classifier as a prior on the fit)",
        ),
        _f("ENTROPY", pa.float32(), "bit", "entropy of the class probabilities (log2)"),
        _f(
            "Z_PHOT",
            pa.float32(),
            "",
            "photometric redshift: Z_TEMPLATE or the foundation model's (Z_PHOT_OJALA), as "
            "provenance.json z_phot_source says",
        ),
        _f("Z_PHOT_ERR", pa.float32(), "", "photometric redshift error"),
        _f("CLASS_TEMPLATE", pa.string(), "", "template-fit class (lowest BIC)"),
        *[
            _f(f"P_TEMPLATE_{c}", pa.float32(), "", f"template-fit probability of {c} (BIC)")
            for c in CLASSES
        ],
        _f("Z_TEMPLATE", pa.float32(), "", "template-fit redshift of CLASS_TEMPLATE (0: star)"),
        _f("Z_TEMPLATE_ERR", pa.float32(), "", "its error, from the chi-square curvature"),
        *[
            _f(f"CHI2_{c}", pa.float32(), "", f"minimum chi-square of the {c} templates")
            for c in ("STAR", "GALAXY", "QSO")
        ],
        _f(
            "TEMPLATE_FLAGS",
            pa.int16(),
            "",
            "template-fit bits: 1 few bands, 2 several minima, 4 minimum at the grid edge, "
            "8 no fit, 16 unconstrained",
        ),
        _f(
            "QUALITY",
            pa.int32(),
            "",
            "bit flags: 1 = fewer than 50 observed bands, 2 = rSDSS magnitude outside the "
            "classifier's training range",
        ),
        _f("MAG_R", pa.float32(), "mag", "observed rSDSS AB magnitude (aperture flux)"),
        _f("N_BANDS", pa.int16(), "", "observed J-PAS bands (finite flux and error)"),
        _f(
            "PROVENANCE_ID",
            pa.string(),
            "",
            "key of the run that made the row in the VAC's provenance.json (code, models, spec)",
        ),
    ],
    metadata={"product": "vac"},
)

#: One row per input row that did not make it into the output, with the reason.
REJECTS = pa.schema(
    [
        _f("SOURCE_FILE", pa.string(), "", "input file", nullable=False),
        _f("SOURCE_ROW", pa.int64(), "", "zero-based data row in the input file", nullable=False),
        _f("OBJECT_ID", pa.int64(), "", "object id, if it could be formed"),
        _f("REASON", pa.string(), "", "reason code", nullable=False),
        _f("DETAIL", pa.string(), "", "what exactly was wrong"),
    ],
    metadata={"product": "rejects"},
)

SCHEMAS: dict[str, pa.Schema] = {
    "observed": OBSERVED,
    "mock": MOCK,
    "mock_ext": MOCK_EXT,
    "external": EXTERNAL,
    "vac": VAC,
    "rejects": REJECTS,
}


def to_json(schema: pa.Schema) -> dict:
    """A JSON-friendly description: field name, Arrow type, nullability, unit, description."""
    fields = []
    for f in schema:
        meta = {k.decode(): v.decode() for k, v in (f.metadata or {}).items()}
        fields.append({"name": f.name, "type": str(f.type), "nullable": f.nullable, **meta})
    meta = {k.decode(): v.decode() for k, v in (schema.metadata or {}).items()}
    return {"metadata": meta, "fields": fields}


def export(directory: str | Path) -> list[Path]:
    """Write every schema as ``<name>.schema.json`` into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, schema in SCHEMAS.items():
        path = directory / f"{name}.schema.json"
        path.write_text(json.dumps(to_json(schema), indent=1) + "\n")
        paths.append(path)
    return paths


def validate(table: pa.Table | pa.RecordBatch, schema: pa.Schema, path: str | Path | None = None):
    """Check that ``table`` has every field of ``schema`` with the same type.

    Extra columns are allowed (they pass through); missing columns, wrong types
    and nulls in non-nullable fields raise :class:`InputError` naming the column.
    """
    names = set(table.schema.names)
    for field in schema:
        if field.name not in names:
            raise InputError(
                f"missing column for the {_product(schema)} schema", path=path, column=field.name
            )
        got = table.schema.field(field.name).type
        if got != field.type:
            raise InputError(f"has type {got}, expected {field.type}", path=path, column=field.name)
        if not field.nullable:
            col = table.column(field.name)
            if col.null_count:
                row = int(pc.index(col.is_null(), True).as_py())
                raise InputError(
                    "null in a column that must not have nulls",
                    path=path,
                    column=field.name,
                    row=row,
                )


def _product(schema: pa.Schema) -> str:
    return (schema.metadata or {}).get(b"product", b"?").decode()


#: Schema metadata key of astropy's Parquet reader: a YAML header of column attributes.
ASTROPY_META = b"table_meta_yaml"
#: The column HATS writers add to every catalogue (hats-import, LSDB).
HEALPIX_COLUMN = "_healpix_29"


def astropy_header(schema: pa.Schema, extra: tuple[str, ...] = ()) -> bytes:
    """Units and descriptions of ``schema`` as astropy's ``table_meta_yaml`` header.

    ``astropy.table.Table.read`` of a Parquet file takes column units only from
    this header, not from the Arrow field metadata, and fails on a column the
    header does not list: ``extra`` names columns a later writer adds (e.g.
    :data:`HEALPIX_COLUMN`, which hats-import appends to the schema it is given).
    """
    from astropy.table import Column, meta

    cols = []
    for f in schema:
        info = {k.decode(): v.decode() for k, v in (f.metadata or {}).items()}
        cols.append(
            Column(
                name=f.name,
                dtype=_numpy_dtype(f.type),
                length=0,
                unit=info.get("unit") or None,
                description=info.get("description") or None,
            )
        )
    cols += [Column(name=n, dtype=np.int64, length=0) for n in extra if n not in schema.names]
    header = {"cols": cols, "meta": {"product": _product(schema)}}
    return "\n".join(meta.get_yaml_from_header(header)).encode()


def with_astropy_units(schema: pa.Schema, extra: tuple[str, ...] = ()) -> pa.Schema:
    """``schema`` with :func:`astropy_header` in its metadata (the field metadata kept)."""
    return schema.with_metadata(
        {**(schema.metadata or {}), ASTROPY_META: astropy_header(schema, extra)}
    )


def astropy_string_lengths(table: pa.Table) -> dict[bytes, bytes]:
    """astropy's ``table::len::<name>`` metadata: the longest value of each string column.

    Without it astropy's Parquet reader measures the strings itself and fails on a
    null (a VAC's ``CLASS_ANN`` where the classifier did not run); with it a null
    reads as the string ``"None"``.
    """
    lengths = {}
    for name, col in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            longest = pc.max(pc.utf8_length(col)).as_py() if col.null_count < len(col) else 0
            # at least 4: a null reads as "None"
            lengths[f"table::len::{name}".encode()] = str(max(longest or 0, 4)).encode()
    return lengths


def _numpy_dtype(type_: pa.DataType) -> np.dtype:
    # astropy's reader takes the types from the Parquet columns; this only labels them
    if pa.types.is_string(type_) or pa.types.is_large_string(type_):
        return np.dtype(str)
    try:
        return np.dtype(type_.to_pandas_dtype())
    except (NotImplementedError, TypeError):
        return np.dtype(object)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Select and order ``schema``'s columns (extra columns dropped), attaching its metadata."""
    validate(table, schema)
    return pa.Table.from_arrays([table.column(f.name) for f in schema], schema=schema)
