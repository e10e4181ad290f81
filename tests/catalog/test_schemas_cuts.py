"""Schemas and quality cuts, the cuts checked against a row-by-row loop."""

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from jpasbatch.catalog import schemas
from jpasbatch.catalog.cuts import REASONS, QualityCuts, reject_reasons
from jpasbatch.catalog.random import random_catalogue
from jpasbatch.core.errors import InputError

REPO = Path(__file__).resolve().parents[2]


def test_committed_schema_json_is_current(tmp_path):
    # schemas/ in the repository must be what the code exports now
    for path in schemas.export(tmp_path):
        committed = REPO / "schemas" / path.name
        assert committed.exists(), f"run jpasbatch.catalog.schemas.export('schemas'): {path.name}"
        assert json.loads(committed.read_text()) == json.loads(path.read_text())


def test_schema_fields_units_and_order():
    obs = schemas.OBSERVED
    assert obs.names[:8] == [
        "OBJECT_ID", "TILE_ID", "NUMBER", "ALPHA_J2000", "DELTA_J2000",
        "FLAGS", "MASK_FLAGS", "CLASS_STAR",
    ]  # fmt: skip
    assert obs.names[8] == "FLUX_uJAVA" and obs.names[8 + 60] == "FLUX_RELERR_uJAVA"
    assert obs.field("FLUX_J0660").metadata[b"unit"] == b"erg s-1 cm-2 Angstrom-1"
    assert obs.field("ALPHA_J2000").metadata[b"unit"] == b"deg"
    assert {f"P_{c}" for c in schemas.CLASSES} <= set(schemas.VAC.names)


def test_validate_names_the_column():
    table = random_catalogue(5)
    schemas.validate(table, schemas.OBSERVED)
    with pytest.raises(InputError, match="column 'FLUX_J0400'.*missing"):
        schemas.validate(table.drop_columns(["FLUX_J0400"]), schemas.OBSERVED, "cat.parquet")
    bad = table.set_column(3, "ALPHA_J2000", table.column("ALPHA_J2000").cast(pa.float32()))
    with pytest.raises(InputError, match="file cat.parquet, column 'ALPHA_J2000': has type float"):
        schemas.validate(bad, schemas.OBSERVED, "cat.parquet")
    ids = pa.array([1, None, 3, 4, 5], pa.int64())
    with pytest.raises(InputError, match="column 'OBJECT_ID', row 1: null"):
        schemas.validate(table.set_column(0, "OBJECT_ID", ids), schemas.OBSERVED)


def brute_force_reason(row: dict, cuts: QualityCuts) -> str:
    """The cuts written out one row at a time, as the papers state them."""
    ra, dec = row["ALPHA_J2000"], row["DELTA_J2000"]
    if ra is None or dec is None or not (np.isfinite(ra) and np.isfinite(dec) and abs(dec) <= 90):
        return "BAD_COORD"
    fluxes = [row[f"FLUX_{b}"] for b in schemas.BANDS]
    errs = [row[f"FLUX_RELERR_{b}"] for b in schemas.BANDS]
    if any(np.isinf(v) for v in fluxes + errs):
        return "BAD_FLUX"
    if any(e < 0 for e in errs):
        return "NEGATIVE_ERROR"
    if cuts.flags and row["FLAGS"] != 0:
        return "FLAGS"
    if cuts.mask_flags and row["MASK_FLAGS"] != 0:
        return "MASK_FLAGS"
    observed = sum(
        1 for f, e in zip(fluxes, errs, strict=True) if np.isfinite(f) and np.isfinite(e) and e > 0
    )
    if observed < cuts.min_bands:
        return "FEW_BANDS"
    if cuts.min_class_star is not None and not row["CLASS_STAR"] >= cuts.min_class_star:
        return "NOT_POINTLIKE"
    return ""


@pytest.mark.parametrize(
    "cuts",
    [
        QualityCuts(),
        QualityCuts(flags=False, min_bands=55, min_class_star=0.5),
        QualityCuts(min_bands=0),
    ],
)
def test_cuts_match_a_row_by_row_loop(cuts):
    rng = np.random.default_rng(3)
    table = random_catalogue(400, seed=3, bad_fraction=0.05).to_pandas()
    # sprinkle every defect
    table.loc[rng.choice(400, 8), "ALPHA_J2000"] = np.nan
    table.loc[rng.choice(400, 5), "DELTA_J2000"] = 91.0
    table.loc[rng.choice(400, 6), "FLUX_J0500"] = np.inf
    table.loc[rng.choice(400, 6), "FLUX_RELERR_J0700"] = -0.1
    table.loc[rng.choice(400, 7), "MASK_FLAGS"] = 4
    table.loc[rng.choice(400, 9), [f"FLUX_{b}" for b in schemas.BANDS[:8]]] = np.nan
    arrow = pa.Table.from_pandas(table, schema=schemas.OBSERVED, preserve_index=False)
    got = reject_reasons(arrow, cuts)
    expected = [brute_force_reason(row, cuts) for row in table.to_dict("records")]
    assert list(got) == expected
    assert set(got) - {""} <= set(REASONS)
    assert len(set(got)) >= 4  # the test data really exercise several reasons


def test_cut_configuration_is_validated():
    with pytest.raises(ValueError, match="min_bands"):
        QualityCuts(min_bands=61)
    with pytest.raises(ValueError, match="extra"):
        QualityCuts(min_band=3)
