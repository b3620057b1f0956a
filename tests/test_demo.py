"""`speechprune demo` at reduced size: builds into its cache, reuses it, reports honestly."""

from __future__ import annotations

import json
from collections import Counter

from speechprune import cli
from speechprune.evaluation import demo, report


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

    # --output: a folder of the user's; the demo says where it wrote, and never replaces a folder of someone else's
    output = tmp_path / "my-demo"
    code = cli.main(
        ["demo", "--output", str(output), "--dialogues", "2", "--methods", "original", "--rates", "0.8"]
    )  # the same two dialogues: reused from the cache
    printed = capsys.readouterr().out
    assert code == 0 and f"wrote everything into {output}" in printed
    assert (output / "results.json").is_file() and (output / demo.DEMO_MARKER).is_file()
    assert report.random_weights(json.loads((output / "results.json").read_text()))  # caveat on the figure
    assert cli.main(["demo", "--output", str(output), "--dialogues", "2", "--methods", "original"]) == 0  # replaced
    capsys.readouterr()
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("keep")
    assert cli.main(["demo", "--output", str(theirs), "--dialogues", "2"]) == 2
    assert "holds no earlier demo" in capsys.readouterr().err and (theirs / "notes.txt").read_text() == "keep"
