"""Checksums of a rehearsal run's data, and its row accounting.

Usage (from the folder the job ran in)::

    python docs/rehearsal/checksums.py WORKDIR --archive rehearsal_archive > WORKDIR.json
    python docs/rehearsal/checksums.py --compare A.json B.json

Two runs are the same when their data are, not their files' bytes: Parquet footers
carry provenance and write times. So, as the VAC fault tests compare tables
(``tests/vac/test_faults.py``), every Parquet file here is read back and each column
hashed by value (Arrow IPC of the column alone, schema-level metadata dropped), and
every Zarr array by its dtype, shape and values (attributes left out). One digest per
dataset: SHA-256 over its files' relative paths and their column digests, so the same
rows split into other files differ too.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import zarr


def column_digest(column: pa.ChunkedArray, name: str) -> str:
    """SHA-256 of one column's values (its chunking does not matter)."""
    table = pa.table({name: column.combine_chunks()})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


def parquet_digest(root: Path) -> dict:
    """Rows and digest of every ``*.parquet`` under ``root``, and of them all."""
    files = sorted(p for p in root.rglob("*.parquet") if p.is_file())
    total, rows, each = hashlib.sha256(), 0, {}
    for path in files:
        table = pq.read_table(path).replace_schema_metadata(None)
        rows += table.num_rows
        one = hashlib.sha256()
        for name in table.column_names:
            one.update(f"{name}={column_digest(table.column(name), name)}".encode())
        each[str(path.relative_to(root))] = one.hexdigest()
        total.update(f"{path.relative_to(root)}={one.hexdigest()}".encode())
    return {"files": len(files), "rows": rows, "sha256": total.hexdigest(), "per_file": each}


def zarr_digest(store: Path) -> dict:
    """Digest of every array's dtype, shape and values in every group of ``store``."""
    root = zarr.open_group(str(store), mode="r")
    total, arrays, rows, each, nonfinite = hashlib.sha256(), 0, 0, {}, {}
    # a partition being written is a hidden ``.<name>.<id>.tmp`` group (jpasbatch.core.atomic)
    for group_name in sorted(k for k in root.group_keys() if not k.startswith(".")):
        group = root[group_name]
        rows += int(group.attrs["rows"])
        one = hashlib.sha256()
        for name in sorted(group.array_keys()):
            values = np.ascontiguousarray(group[name][...])
            one.update(f"{name}:{values.dtype}:{values.shape}".encode())
            one.update(values.tobytes())
            arrays += 1
            if values.dtype.kind == "f":  # rows with a NaN or inf anywhere: data quality
                bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
                nonfinite[name] = nonfinite.get(name, 0) + int(bad.sum())
        each[group_name] = one.hexdigest()
        total.update(f"{group_name}={one.hexdigest()}".encode())
    groups = len(each)
    return {"groups": groups, "arrays": arrays, "rows": rows, "sha256": total.hexdigest(),
            "nonfinite_rows": nonfinite, "per_file": each}  # fmt: skip


def file_sha256(path: Path) -> str:
    """SHA-256 of a text output's bytes (the target list's CSV has no time stamps)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def accounting(workdir: Path, archive: Path) -> dict:
    """Rows in = kept + rejected (ingest), = VAC + rejects (VAC); rejects = defects made."""
    made = json.loads((archive / "resample_summary.json").read_text())
    ingest = json.loads((workdir / "catalogue" / "ingest_summary.json").read_text())
    summary = workdir / "vac" / "vac_summary.json"
    if not summary.exists():  # a VAC not finished: only the ingest's figures
        vac = {"rows_in": None, "rows_vac": None, "rows_rejected": None}
    else:
        vac = json.loads(summary.read_text())
    expected = {k: v for k, v in made["expected_rejects"].items() if v}
    return {
        "archive_rows": made["rows"],
        "ingest": {k: ingest[k] for k in ("rows_in", "rows_kept", "rows_rejected")},
        "ingest_rejects_by_reason": ingest["rejected_by_reason"],
        "resample_defects": expected,
        "vac": {k: vac[k] for k in ("rows_in", "rows_vac", "rows_rejected")},
        "vac_rejects_by_reason": vac.get("rejected_by_reason", {}),
        "checks": {
            "archive rows = ingest rows in": made["rows"] == ingest["rows_in"],
            "ingest rows in = kept + rejected": ingest["rows_in"]
            == ingest["rows_kept"] + ingest["rows_rejected"],
            "ingest rejects = resample's defects": ingest["rejected_by_reason"] == expected,
            "VAC rows in = ingest rows kept": vac["rows_in"] == ingest["rows_kept"],
            "VAC rows in = VAC rows + rejects": vac["rows_in"] is not None
            and vac["rows_in"] == vac["rows_vac"] + vac["rows_rejected"],
        },
    }


def digests(workdir: Path, archive: Path) -> dict:
    """All of one run's digests and its row accounting."""
    vac = workdir / "vac"
    return {
        "workdir": str(workdir),
        "catalogue": parquet_digest(workdir / "catalogue" / "dataset"),
        "ingest_rejects": parquet_digest(workdir / "catalogue" / "rejects"),
        "vac_parquet": parquet_digest(vac / "dataset"),
        "vac_zarr": zarr_digest(vac / "arrays.zarr"),
        "vac_rejects": parquet_digest(vac / "rejects"),
        "targets": {"sha256": file_sha256(vac / "targets" / "qso_targets.csv")}
        if (vac / "targets").exists()
        else {},
        "accounting": accounting(workdir, archive),
    }


def compare(a: dict, b: dict) -> bool:
    """Print each dataset's digest in both runs, and how many of the files (Zarr groups)
    both have agree (a run stopped early has fewer); True when all agree."""
    same = True
    for key, value in a.items():
        if not isinstance(value, dict) or "sha256" not in value:
            continue
        ok = value == b[key]
        if "per_file" in value:
            common = value["per_file"].keys() & b[key]["per_file"].keys()
            equal = sum(value["per_file"][f] == b[key]["per_file"][f] for f in common)
            print(f"{key:<15} files in both: {len(common)}, equal: {equal}")
        same &= ok
        rows = f"rows {value.get('rows')} / {b[key].get('rows')}" if "rows" in value else ""
        verdict = "same" if ok else "DIFFERENT"
        print(f"{key:<15} {verdict:<9} {value['sha256'][:16]} {b[key]['sha256'][:16]} {rows}")
    return same


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("workdir", nargs="?", type=Path)
    p.add_argument("--archive", type=Path, default=Path("rehearsal_archive"))
    p.add_argument("--compare", nargs=2, type=Path, metavar=("A_JSON", "B_JSON"))
    args = p.parse_args(argv)
    if args.compare:
        a, b = (json.loads(path.read_text()) for path in args.compare)
        return 0 if compare(a, b) else 1
    if args.workdir is None:
        p.error("give a WORKDIR or --compare")
    result = digests(args.workdir, args.archive)
    json.dump(result, sys.stdout, indent=1)
    print()
    return 0 if all(result["accounting"]["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
