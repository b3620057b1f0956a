"""Results helpers: aggregation against a naive computation, results.json round trip, hashing, JSONL reading."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import re
import tempfile
from pathlib import Path

import pytest

from speechprune.evaluation.fileio import append_jsonl, read_jsonl
from speechprune.evaluation.provenance import content_hash, git_hash, is_pinned
from speechprune.evaluation.results import (
    aggregate,
    build_results,
    make_config,
    parse_result_key,
    read_results,
    result_key,
    samples_path,
    write_results,
)

SETTINGS = [("original", None), ("speechprune", 0.2), ("speechprune", 0.4), ("random", 0.2)]


def _records(seed=0, n=40, circular=False, configs=("spiral", "spiral_h")):
    """Random but valid records: answers are letters or invalid, costs vary per record."""
    rng = random.Random(seed)
    records = []
    for config in configs:
        for method, rate in SETTINGS:
            for i in range(n if config == "spiral" else n // 2):
                gold = rng.choice("ABCDB")
                for rotation in range(4) if circular else [None]:
                    rotated_gold = "ABCD"[("ABCD".index(gold) + (rotation or 0)) % 4]
                    parsed = rng.choice([rotated_gold, rotated_gold, rotated_gold, "A", "C", None])
                    record = {
                        "id": f"{config}_{i}",
                        "config": config,
                        "method": method,
                        "rate": rate,
                        "prompt_hash": f"h{i}",
                        "raw_output": str(parsed),
                        "parsed": parsed,
                        "gold": rotated_gold,
                        "correct": parsed == rotated_gold,
                        "category": ["lecture", "meeting", "conversation"][i % 3],
                        "audio_tokens_before": 2250,
                        "audio_tokens_after": rng.randint(100, 750),
                        "prefill_ms": rng.uniform(100, 800),
                        "llm_flops": rng.uniform(1e12, 12e12),
                    }
                    if circular:
                        record["rotation"] = rotation
                    records.append(record)
    return records


def _naive(records, config, method, rate):
    """SPEC's accuracy, stderr and majority baseline, written independently of the package."""
    group = [r for r in records if (r["config"], r["method"], r["rate"]) == (config, method, rate)]
    ids = sorted({r["id"] for r in group})
    right = {i: all(r["parsed"] == r["gold"] for r in group if r["id"] == i) for i in ids}
    p = sum(right.values()) / len(ids)
    # always answering one letter: right on a question only if every asked rotation has that gold letter
    always = {x: sum(all(r["gold"] == x for r in group if r["id"] == i) for i in ids) for x in "ABCD"}
    majority = max(always.values()) / len(ids)
    return {
        "accuracy": p,
        "accuracy_stderr": math.sqrt(p * (1 - p) / (len(ids) - 1)),
        "n": len(ids),
        "n_invalid": sum(r["parsed"] is None for r in group),
        "majority_baseline": majority,
        "prefill_ms": sum(r["prefill_ms"] for r in group) / len(group),
        "llm_tflops": sum(r["llm_flops"] for r in group) / len(group) / 1e12,
        "audio_tokens_after": sum(r["audio_tokens_after"] for r in group) / len(group),
    }


@pytest.mark.parametrize("circular", [False, True])
def test_aggregate_matches_naive_computation(circular):
    records = _records(circular=circular)
    results = aggregate(records)
    assert sorted(results) == ["spiral", "spiral_h"]
    for config in results:
        assert list(results[config]) == ["original", "speechprune@0.2", "speechprune@0.4", "random@0.2"]
        for method, rate in SETTINGS:
            row = results[config][result_key(method, rate)]
            for name, value in _naive(records, config, method, rate).items():
                assert row[name] == pytest.approx(value), (config, method, rate, name)


def test_circular_needs_all_four_rotations_right_and_kills_the_letter_baseline():
    base = {"config": "spiral", "method": "full", "rate": None, "id": "q"}
    records = [{**base, "rotation": k, "gold": "ABCD"[k], "parsed": "ABCD"[k], "correct": True} for k in range(4)] + [
        {**base, "id": "r", "rotation": k, "gold": "BCDA"[k], "parsed": "B", "correct": k == 0} for k in range(4)
    ]
    row = aggregate(records)["spiral"]["full"]
    assert (row["accuracy"], row["n"]) == (0.5, 2)
    assert row["majority_baseline"] == 0.0
    # the same records read without rotation grouping would be a different (and wrong) count
    with pytest.raises(ValueError, match="duplicate"):
        aggregate(records, circular=False)
    with pytest.raises(ValueError, match="rotations"):
        aggregate(records[:7])


@pytest.mark.parametrize("count", [2, 10])
def test_circular_with_k_choices(count):
    letters = "ABCDEFGHIJ"[:count]
    base = {"config": "t", "method": "full", "rate": None}

    def question(qid, gold_index, wrong_at=None):
        golds = [letters[(gold_index - r) % count] for r in range(count)]  # the gold moves with its option
        return [
            {**base, "id": qid, "rotation": r, "gold": g, "parsed": "A" if r == wrong_at and g != "A" else g,
             "correct": not (r == wrong_at and g != "A"), "logprobs": dict.fromkeys(letters, -1.0)}
            for r, g in enumerate(golds)
        ]  # fmt: skip

    records = question("q", 1) + question("r", 0, wrong_at=1)
    row = aggregate(records)["t"]["full"]
    assert (row["accuracy"], row["n"], row["majority_baseline"]) == (0.5, 2, 0.0)
    with pytest.raises(ValueError, match="rotations"):  # a missing last rotation, whatever its gold letter
        aggregate(question("q", 1)[:-1])


def test_per_category_matches_naive():
    records = _records(configs=("spiral",))
    row = aggregate(records)["spiral"]["speechprune@0.2"]
    group = [r for r in records if r["method"] == "speechprune" and r["rate"] == 0.2]
    for category in ("lecture", "meeting", "conversation"):
        mine = [r["correct"] for r in group if r["category"] == category]
        assert row["per_category"][category] == {"accuracy": pytest.approx(sum(mine) / len(mine)), "n": len(mine)}


def test_missing_costs_are_none():
    records = [
        {"id": "a", "config": "spiral", "method": "full", "rate": None, "parsed": "A", "gold": "A", "correct": 1}
    ]
    row = aggregate(records)["spiral"]["full"]
    assert row["prefill_ms"] is None and row["llm_tflops"] is None and row["accuracy_stderr"] is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda rs: rs.clear(), "empty"),
        (lambda rs: rs[0].pop("gold"), "lacks fields"),
        (lambda rs: rs[0].update(correct=not rs[0]["correct"]), "says correct"),
        (lambda rs: rs[0].update(gold="K"), "not a letter"),
        (lambda rs: rs[0].update(parsed="Z", correct=False), "parsed"),
        (lambda rs: rs.append(dict(rs[0])), "duplicate"),
        (lambda rs: (rs[0].update(audio_source="espeak-ng"), rs[1].update(audio_source="authors")), "audio sources"),
    ],
)
def test_aggregate_errors(change, message):
    records = _records(n=6, configs=("spiral",))
    change(records)
    with pytest.raises(ValueError, match=message):
        aggregate(records)


def test_result_keys_round_trip():
    for method, rate in [("speechprune", 0.2), ("crop", 0.8), ("full", None), ("phase1", 0.0)]:
        assert parse_result_key(result_key(method, rate)) == (method, rate)
    assert result_key("speechprune", 0.2) == "speechprune@0.2"


def test_result_keys_never_collide_and_keep_the_short_form():
    rates = [0.1234567, 0.1234568, 0.2, 0.2000001, 1e-7, 1.5e-7, 0.0, 0.5, 1 / 3]
    keys = [result_key("random", rate) for rate in rates]
    assert len(set(keys)) == len(rates)  # ":g" alone gives 0.123457 twice
    assert [parse_result_key(key)[1] for key in keys] == rates
    assert keys[2] == "random@0.2" and keys[6] == "random@0" and keys[7] == "random@0.5"  # unchanged forms


def test_method_order_is_the_pruning_modules():
    from speechprune.evaluation import results
    from speechprune.modeling import pruning

    assert results.METHOD_ORDER is pruning.METHODS


def _config(**overrides):
    kwargs = dict(
        model_id="tiny",
        model_revision="a" * 64,
        dataset_id="speechprune/spiral",
        dataset_revision="b" * 40,
        audio_source="espeak-ng",
        pruning={"methods": ["speechprune"], "rates": [0.2, 0.4]},
        seeds={"pruning_seed": 0},
    )
    kwargs.update(overrides)
    return make_config(**kwargs)


def test_build_and_write_results_round_trip(tmp_path):
    records = _records()
    doc = build_results(records, config=_config(), dataset_sizes={"spiral": 1012})
    assert set(doc) >= {"results", "configs", "n-samples", "config", "versions", "git_hash", "date", "samples_file"}
    assert doc["n-samples"]["spiral"] == {"original": 1012, "effective": 40}
    assert doc["n-samples"]["spiral_h"] == {"original": 20, "effective": 20}
    assert doc["versions"]["evaluate"] and doc["versions"]["python"]
    assert doc["config"]["model"]["revision"] == "a" * 64
    assert doc["results"] == aggregate(records)
    path = write_results(tmp_path / "out" / "results.json", doc)
    assert read_results(path) == json.loads(json.dumps(doc))
    assert samples_path(path, doc) == tmp_path / "out" / "samples.jsonl"


def test_make_config_and_build_results_validate():
    with pytest.raises(ValueError, match="audio_source"):
        _config(audio_source="festival")
    with pytest.raises(ValueError, match="scoring"):
        _config(scoring="vibes")
    records = _records(n=4, configs=("spiral",))
    records[0]["audio_source"] = "authors"
    with pytest.raises(ValueError, match="config says"):
        build_results(records, config=_config())


def test_write_results_is_atomic_and_writes_no_nan(tmp_path):
    path = tmp_path / "results.json"
    write_results(path, {"results": {"x": float("nan")}, "ok": 1})
    assert json.loads(path.read_text()) == {"results": {"x": None}, "ok": 1}
    before = path.read_bytes()
    with pytest.raises(TypeError):
        write_results(path, {"results": {}, "bad": object()})
    assert path.read_bytes() == before  # the old file survives a failed write
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]  # no temporary left behind


def test_read_records_drops_a_truncated_last_line(tmp_path, caplog):
    path = tmp_path / "samples.jsonl"
    lines = [json.dumps({"id": i, "x": "é"}) for i in range(3)]
    path.write_bytes(("\n".join(lines) + "\n").encode() + lines[0].encode()[:-4])
    with caplog.at_level(logging.WARNING):
        assert [r["id"] for r in read_jsonl(path)] == [0, 1, 2]
    assert "truncated" in caplog.text
    path.write_text("\n".join(lines))  # a complete last line without its newline is kept
    assert len(read_jsonl(path)) == 3
    path.write_text(lines[0] + "\n{broken\n" + lines[1] + "\n")
    with pytest.raises(ValueError, match="line 2"):
        read_jsonl(path)
    path.write_text("[1, 2]\n")
    with pytest.raises(ValueError, match="JSON object"):
        read_jsonl(path)


def test_append_records_repairs_a_killed_write(tmp_path):
    path = tmp_path / "samples.jsonl"
    append_jsonl(path, [{"id": "a"}, {"id": "b"}])
    with open(path, "ab") as handle:
        handle.write(b'{"id": "c", "par')  # killed mid-record
    append_jsonl(path, [{"id": "c"}, {"id": "d"}])
    assert [r["id"] for r in read_jsonl(path)] == ["a", "b", "c", "d"]


def _independent_hash(
    root: Path, skip=(".git", ".gitattributes", ".eval_results", ".cache", "__pycache__", "README.md")
):
    files = sorted(
        p for p in root.rglob("*") if p.is_file() and not any(part in skip for part in p.relative_to(root).parts)
    )
    h = hashlib.sha256()
    for p in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        h.update(p.relative_to(root).as_posix().encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest() + b"\n")
    return h.hexdigest()


def test_content_hash(tmp_path):
    repo = tmp_path / "repo"
    (repo / "sub").mkdir(parents=True)
    (repo / "config.json").write_text('{"a": 1}')
    (repo / "sub" / "weights.bin").write_bytes(bytes(range(256)) * 10)
    first = content_hash(repo)
    assert re.fullmatch(r"[0-9a-f]{64}", first) and is_pinned(first)
    assert first == _independent_hash(repo)
    # publishing results (card, .eval_results) and git metadata leave the hash alone
    (repo / "README.md").write_text("---\nlicense: mit\n---\n")
    (repo / ".eval_results").mkdir()
    (repo / ".eval_results" / "spiral.yaml").write_text("- value: 1\n")
    (repo / ".git").mkdir()
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    assert content_hash(repo) == first
    # a snapshot made of symlinks hashes like the files
    snapshot = tmp_path / "snapshot"
    (snapshot / "sub").mkdir(parents=True)
    (snapshot / "config.json").symlink_to(repo / "config.json")
    (snapshot / "sub" / "weights.bin").symlink_to(repo / "sub" / "weights.bin")
    assert content_hash(snapshot) == first
    # content and names both count
    (repo / "config.json").write_text('{"a": 2}')
    assert content_hash(repo) != first
    (repo / "config.json").write_text('{"a": 1}')
    (repo / "sub" / "weights.bin").rename(repo / "sub" / "weights2.bin")
    assert content_hash(repo) != first
    with pytest.raises(ValueError, match="not a directory"):
        content_hash(repo / "config.json")


def test_is_pinned_and_git_hash(tmp_path):
    assert not is_pinned("main") and not is_pinned("v1.0") and not is_pinned(None) and not is_pinned("A" * 40)
    assert is_pinned("0123456789abcdef0123456789abcdef01234567")
    assert git_hash(tmp_path) is None
    here = git_hash()
    assert here is None or re.fullmatch(r"[0-9a-f]{40}", here)


# ---- report: the Table-1 markdown and the plots ------------------------------------------------------------


def _table_cells(markdown: str) -> list[list[str]]:
    rows = [line.strip("|").split("|") for line in markdown.strip().splitlines()]
    return [[cell.strip() for cell in row] for row in rows]


def test_results_table_rows_match_results(tmp_path):
    from speechprune.evaluation.report import results_table

    records = _records()
    for record in records:
        record["peak_memory_gb"] = 13.0
    doc = build_results(records, config=_config())
    doc["results"]["spiral"]["full"] = {"accuracy": 0.5, "accuracy_stderr": None, "majority_baseline": 0.25}
    cells = _table_cells(results_table(doc))
    header, rows = cells[0], cells[2:]
    assert header[:6] == ["method", "rate", "LLM TFLOPs", "prefill ms", "total mem GB", "activation GB"]
    assert header[6:] == ["SPIRAL acc %", "SPIRAL majority %", "SPIRAL-H acc %", "SPIRAL-H majority %"]
    assert [row[:2] for row in rows] == [
        ["full", "-"],
        ["original", "-"],
        ["speechprune", "0.2"],
        ["speechprune", "0.4"],
        ["random", "0.2"],
    ]
    assert rows[0][2:] == ["-", "-", "-", "-", "50.00", "25.00", "-", "-"]  # unmeasured costs, no SPIRAL-H row
    for row in rows[1:]:
        method, rate = row[0], (None if row[1] == "-" else float(row[1]))
        key = result_key(method, rate)
        spiral, hard = doc["results"]["spiral"][key], doc["results"]["spiral_h"][key]
        assert row[2] == f"{spiral['llm_tflops']:.2f}" and row[3] == f"{spiral['prefill_ms']:.0f}"
        assert row[4] == "13.00" and row[5] == "-"
        assert row[6] == f"{100 * spiral['accuracy']:.2f} ± {100 * spiral['accuracy_stderr']:.2f}"
        assert row[7] == f"{100 * spiral['majority_baseline']:.2f}"
        assert row[8] == f"{100 * hard['accuracy']:.2f} ± {100 * hard['accuracy_stderr']:.2f}"


def _png_is_drawn(path: Path) -> tuple[int, int]:
    import matplotlib.image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(path)
    assert pixels[..., :3].std() > 0.05  # not a blank canvas
    return pixels.shape[:2]


def test_write_report_and_plots(tmp_path):
    from speechprune.evaluation.report import write_report

    path = write_results(tmp_path / "results.json", build_results(_records(), config=_config()))
    paths = write_report(path, tmp_path / "report")
    assert paths["table"].read_text().startswith("| method | rate |")
    height, width = _png_is_drawn(paths["accuracy"])
    assert width > 1.5 * height  # two panels side by side: SPIRAL and SPIRAL-H
    _png_is_drawn(paths["cost"])


def test_plot_pruning_map(tmp_path):
    import torch

    from speechprune.evaluation.report import plot_pruning_map

    samples = [
        {
            "kept_times": torch.arange(0, 600).float() * 0.04,
            "duration": 90.0,
            "key_start": 40.0,
            "key_end": 44.5,
            "label": "lecture_3 crop@0.2",
            "num_audio_tokens": 2250,
        },
        {"kept_times": [1.0, 2.5, 70.0], "duration": 75.0, "key_start": None, "key_end": None},
    ]
    height, width = _png_is_drawn(plot_pruning_map(tmp_path / "map.png", samples))
    assert width > height
    with pytest.raises(ValueError, match="samples"):
        plot_pruning_map(tmp_path / "empty.png", [])


def test_docs_examples_run(tmp_path, monkeypatch, capsys):
    """docs/evaluation.md promises runnable examples: its python blocks (each self-contained) run, in order."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "evaluation.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 5
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the example's mkdtemp lands in tmp_path
    for block in blocks:
        exec(compile(block, "docs/evaluation.md", "exec"), {})
    out = capsys.readouterr().out
    assert "0.75 0.25 1" in out and "| speechprune | 0.2 |" in out
    # the publishing path is a bash block (build, export, eval, submit): test_submit runs the same flow
