"""Atomic writes: all or nothing, folders replaced whole, leftovers of killed writers found."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jpasbatch.core import atomic


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = atomic.write_text(tmp_path / "a" / "x.json", "old")
    with pytest.raises(RuntimeError), atomic.replacing(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert path.read_text() == "old" and sorted(p.name for p in path.parent.iterdir()) == ["x.json"]
    atomic.write_json(path, {"b": 1})
    assert path.read_text() == '{\n "b": 1\n}\n'


def test_a_folder_is_replaced_whole_and_suffixes_are_kept(tmp_path):
    target = tmp_path / "group.zarr"
    (target / "old").mkdir(parents=True)
    with atomic.replacing(target) as tmp:
        # hidden, and never matching a reader's glob for the target's suffix
        assert tmp.name.startswith(".") and tmp.suffix == ".tmp"
        (tmp / "new").mkdir(parents=True)
    assert [p.name for p in target.iterdir()] == ["new"]
    table = pa.table({"x": [1, 2]})
    assert pq.read_table(atomic.write_parquet(table, tmp_path / "t.parquet")).equals(table)


def test_leftovers_of_dead_writers_are_removed(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / ".a.parquet.1.tmp").write_text("x")
    (tmp_path / "sub" / ".b.2.tmp").mkdir()
    (tmp_path / "kept.parquet").write_text("x")
    assert atomic.remove_leftovers(tmp_path) == 1
    assert atomic.remove_leftovers(tmp_path, recursive=True) == 1
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["kept.parquet", "sub"]
