"""The one I/O module: atomic writes that follow the umask, one JSON Lines form, and its users."""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path

import pytest

from speechprune.evaluation import fileio


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_follow_the_umask_not_mkstemps_0600(tmp_path, umask_027):
    writers = {
        "a.bin": lambda p: fileio.atomic_write(p, b"x"),
        "b.json": lambda p: fileio.write_json(p, {"a": 1}),
        "c.jsonl": lambda p: fileio.write_jsonl(p, [{"a": 1}]),
        "d.jsonl": lambda p: fileio.append_jsonl(p, [{"a": 1}]),
    }
    for name, write in writers.items():
        write(tmp_path / name)
        assert _mode(tmp_path / name) == 0o640, name  # 0o666 & ~0o027, what open() gives
    with open(tmp_path / "plain", "w") as handle:  # the reference: an ordinary open()
        handle.write("x")
    assert _mode(tmp_path / "plain") == 0o640


def test_one_nan_form_everywhere(tmp_path):
    record = {"b": math.nan, "a": [math.inf, -math.inf, 1.5]}
    fileio.write_jsonl(tmp_path / "w.jsonl", [record])
    fileio.append_jsonl(tmp_path / "a.jsonl", [record])
    with fileio.JsonlAppender(tmp_path / "l.jsonl") as log:
        log.append(record)
    fileio.write_json(tmp_path / "d.json", record)
    expected = '{"a": [null, null, 1.5], "b": null}\n'
    for name in ("w.jsonl", "a.jsonl", "l.jsonl"):
        assert (tmp_path / name).read_text() == expected
    assert json.loads((tmp_path / "d.json").read_text()) == {"b": None, "a": [None, None, 1.5]}
    # Python's own reader and a strict one agree on what was written.
    assert json.loads(expected, parse_constant=lambda c: pytest.fail(f"non-standard constant {c}"))


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "x.json"
    fileio.write_json(path, {"ok": 1})
    with pytest.raises(TypeError):
        fileio.write_json(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"ok": 1}
    with pytest.raises(RuntimeError):
        with fileio.atomic_path(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


def test_the_dataset_builder_writes_through_fileio(tmp_path, umask_027):
    import datasets

    from speechprune.dataset_script import build, shards

    assert build.atomic_write is fileio.atomic_write and shards.atomic_path is fileio.atomic_path
    row = {name: None for name in shards.FEATURES}
    row.update(id="x", audio={"bytes": b"", "path": None})
    # Any row that fits the features: the point is the file's mode and that it reads back.
    for name, feature in shards.FEATURES.items():
        if isinstance(feature, datasets.Value) and feature.dtype == "string":
            row[name] = row[name] if row[name] is not None else "s"
    try:
        shards.write_shard([row], tmp_path / "data" / "test-00000-of-00001.parquet", tmp_path / "tmp")
    except (TypeError, ValueError, datasets.exceptions.DatasetsError) as error:  # pragma: no cover
        pytest.fail(f"write_shard: {error}")
    shard = tmp_path / "data" / "test-00000-of-00001.parquet"
    assert _mode(shard) == 0o640 and shards.read_column([shard], "id") == ["x"]
    assert list((tmp_path / "tmp").iterdir()) == []
