"""A build killed part way and started again ends byte-identical to an uninterrupted one, redoing nothing."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest

from speechprune.dataset_script import SAMPLE_ANNOTATIONS
from speechprune.dataset_script import build as build_module
from speechprune.dataset_script.build import build_spiral
from speechprune.dataset_script.records import read_annotations
from speechprune.dataset_script.speech import encode_flac, synthesize_dialogue
from speechprune.dataset_script.tts import EspeakEngine

IDS = ["lecture_2", "lecture_3", "lecture_5", "lecture_6"]  # lecture_3 and lecture_6 are hard


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    ids = root / "ids.txt"
    ids.write_text("\n".join(IDS) + "\n")
    hard = root / "hard.txt"
    hard.write_text("# a hand-made list\nlecture_6\nlecture_3\nnot_in_the_build\n")
    return {"root": root, "ids": ids, "hard": hard}


def _build(out: Path, inputs, **kwargs) -> dict:
    return build_spiral(
        SAMPLE_ANNOTATIONS, out, hard=inputs["hard"], ids=inputs["ids"], rows_per_shard=1, progress=False, **kwargs
    )


def _files(out: Path) -> dict[str, bytes]:
    skip = (".spiral-build",)
    return {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file() and p.parts[-2] not in skip}


def test_synthesis_is_deterministic():
    records, _ = read_annotations(SAMPLE_ANNOTATIONS, limit=1)
    engine = EspeakEngine()
    assert encode_flac(synthesize_dialogue(records[0], engine)) == encode_flac(synthesize_dialogue(records[0], engine))


def test_killed_build_resumes_to_identical_output(inputs, monkeypatch):
    reference = inputs["root"] / "uninterrupted"
    summary = _build(reference, inputs)
    assert (summary["rows"], summary["hard_rows"], summary["hard_missing"]) == (4, 2, 1)

    # 1. the third dialogue's synthesis fails: two finished shards stay, nothing else is visible
    out = inputs["root"] / "killed"
    calls = []

    def failing(record, engine):
        calls.append(record.id)
        if len(calls) == 3:
            raise RuntimeError("injected failure")
        return synthesize_dialogue(record, engine)

    monkeypatch.setattr(build_module, "synthesize_dialogue", failing)
    with pytest.raises(RuntimeError, match="injected failure"):
        _build(out, inputs)
    shards = sorted(p.name for p in (out / "data" / "spiral").iterdir())
    assert shards == ["test-00000-of-00004.parquet", "test-00001-of-00004.parquet"]
    assert [pq.read_table(out / "data" / "spiral" / s)["id"].to_pylist() for s in shards] == [IDS[:1], IDS[1:2]]
    assert not (out / "README.md").exists() and not (out / "data" / "spiral_h").exists()

    # 2. a shard write dies half way: the half-written file never appears under a shard name
    monkeypatch.setattr(build_module, "synthesize_dialogue", synthesize_dialogue)
    real_to_parquet = datasets.Dataset.to_parquet

    def dying_to_parquet(self, path, *args, **kwargs):
        Path(path).write_bytes(b"PAR1 half a shard")
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(datasets.Dataset, "to_parquet", dying_to_parquet)
    with pytest.raises(KeyboardInterrupt):
        _build(out, inputs)
    shards = sorted(p.name for p in (out / "data" / "spiral").iterdir())
    assert shards == ["test-00000-of-00004.parquet", "test-00001-of-00004.parquet"]
    for name in shards:
        pq.read_table(out / "data" / "spiral" / name)  # complete, readable
    cached = sorted(p.name for p in (out / ".spiral-build" / "cache").iterdir())
    assert cached == ["00002.flac", "00002.json"]  # the dialogue made before the kill is kept

    # 3. started again (with two worker processes this time): only the missing dialogue is made
    monkeypatch.setattr(datasets.Dataset, "to_parquet", real_to_parquet)
    summary = _build(out, inputs, workers=2)
    assert (summary["made"], summary["reused"]) == (1, 3)
    assert _files(out) == _files(reference)
    assert json.loads((out / ".spiral-build" / "summary.json").read_text())["rows"] == 4
    hard = pq.read_table(out / "data" / "spiral_h" / "test-00000-of-00002.parquet")
    assert hard["id"].to_pylist() == ["lecture_3"]  # spiral order, not the list's order
