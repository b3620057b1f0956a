"""derive-hard: a hard subset from a run's per-sample predictions, readable by the builder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from speechprune import cli
from speechprune.dataset_script import SAMPLE_ANNOTATIONS
from speechprune.dataset_script.hard import derive_hard, read_id_list


def _write(path: Path, records: list[dict], tail: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail)
    return path


def _rec(sample: str, method: str, rate, correct: bool, rotation: int = 0) -> dict:
    return {"id": sample, "config": "spiral", "method": method, "rate": rate, "rotation": rotation, "correct": correct}


@pytest.fixture
def run(tmp_path) -> Path:
    """Two ranks of a run with two methods; speechprune at rates 0.2 and 0.4; a rank file cut short."""
    rank0 = [
        _rec("a", "full", None, True),
        _rec("b", "full", None, False),
        _rec("c", "full", None, True),
        _rec("a", "speechprune", 0.2, False),
        _rec("b", "speechprune", 0.2, True),
        _rec("a", "speechprune", 0.4, True),
    ]
    rank1 = [
        _rec("d", "full", None, True, rotation=0),
        _rec("d", "full", None, False, rotation=1),  # circular: one wrong rotation makes it wrong
        _rec("c", "speechprune", 0.2, False),
    ]
    _write(tmp_path / "run" / "records" / "rank-00000.jsonl", rank0)
    _write(tmp_path / "run" / "records" / "rank-00001.jsonl", rank1, tail='{"id": "e", "meth')
    return tmp_path / "run" / "records"


def test_derive_hard_picks_the_wrong_answers(run):
    ids, info = derive_hard(run, method="full")
    assert ids == ["b", "d"]
    assert (info["samples"], info["wrong"], info["skipped_lines"]) == (4, 2, 1)
    ids, info = derive_hard(run, method="speechprune", rate=0.2)
    assert ids == ["a", "c"] and info["rate"] == 0.2


def test_derive_hard_refuses_an_ambiguous_file(run):
    with pytest.raises(ValueError, match=r"several runs \(full@none, speechprune@0.2, speechprune@0.4\)"):
        derive_hard(run)
    with pytest.raises(ValueError, match="several runs"):
        derive_hard(run, method="speechprune")
    with pytest.raises(ValueError, match="no per-sample record matches"):
        derive_hard(run, method="random")


def test_cli_writes_an_id_list_the_builder_reads(run, tmp_path, capsys):
    out = tmp_path / "hard_ids.txt"
    assert cli.main(["derive-hard", "--predictions", str(run), "--out", str(out)]) == 2
    assert "pick one with --method" in capsys.readouterr().err
    assert cli.main(["derive-hard", "--predictions", str(run), "--method", "full", "--out", str(out)]) == 0
    assert out.read_text().startswith("# hard subset: ids answered wrongly by method=full rate=none (2 of 4)")
    assert read_id_list(out) == ["b", "d"]


def _ids(path: Path) -> list[str]:
    return [json.loads(line)["metadata"]["id"] for line in path.read_text().splitlines()]


def test_read_id_list_reads_annotation_files_too():
    ids = read_id_list(SAMPLE_ANNOTATIONS)
    assert ids == _ids(SAMPLE_ANNOTATIONS) and len(ids) == 24


def test_read_id_list_reads_the_published_hard_subset(published_spiral):
    ids = read_id_list(published_spiral / "data_h.jsonl")
    assert ids == _ids(published_spiral / "data_h.jsonl") and len(ids) == 401
