"""`speechprune demo` at reduced size: builds into its cache, reuses it, reports honestly."""

from __future__ import annotations

import json
from collections import Counter

from speechprune.evaluation import demo


def test_packaged_annotations_are_balanced_published_records():
    path = demo.demo_annotations()
    assert path == demo.SAMPLE_ANNOTATIONS
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(records) == demo.DEMO_DIALOGUES
    ids = demo.balanced_ids(path, demo.DEMO_DIALOGUES)
    assert ids == [r["metadata"]["id"] for r in records]  # the file is already in round-robin order
    assert Counter(r["metadata"]["transcript_type"] for r in records) == {
        "lecture": 8,
        "meeting": 8,
        "conversation": 8,
    }
    # unchanged published records: checked in test_dataset_records.test_sample_and_hard_records_are_published_records


def test_balanced_ids_takes_categories_in_turn(tmp_path):
    path = tmp_path / "a.jsonl"
    kinds = ["lecture"] * 3 + ["meeting"] + ["conversation"] * 2
    path.write_text(
        "".join(json.dumps({"metadata": {"id": f"{k}_{i}", "transcript_type": k}}) + "\n" for i, k in enumerate(kinds))
    )
    assert demo.balanced_ids(path, 5) == ["lecture_0", "meeting_3", "conversation_4", "lecture_1", "conversation_5"]


def test_demo_runs_reuses_its_dataset_and_says_what_is_real(tmp_path, capsys):
    small = {"count": 2, "methods": ("original", "speechprune"), "rates": (0.8,)}
    first = demo.run_demo(tmp_path, **small)
    assert first["summary"]["made"] == 2
    printed = capsys.readouterr().out
    assert "MEANINGLESS" in printed and "Qwen2-Audio-7B" in printed and "not measured on CPU" in printed
    paths = first["paths"]
    for name in ("results", "table", "accuracy", "cost"):
        assert paths[name].is_file() and str(paths[name]) in printed
    table = paths["table"].read_text()
    assert "| original | - |" in table and "| speechprune | 0.8 |" in table
    # The 7B-architecture FLOPs fall with pruning: the one column of the demo that is a real number.
    rows = json.loads(paths["results"].read_text())["results"]["spiral"]
    assert rows["speechprune@0.8"]["llm_tflops"] < rows["original"]["llm_tflops"]

    second = demo.run_demo(tmp_path, **small)
    assert (second["summary"]["made"], second["summary"]["reused"]) == (0, 2)
