"""Key recall (SPEC section 8) in a real run's records, results and plots, against a naive reading of SPEC."""

from __future__ import annotations

import json
import math
import statistics
from fractions import Fraction

import pytest
from datasets import load_dataset

from speechprune.evaluation import report, results
from speechprune.evaluation.evaluator import record_key_recall
from speechprune.evaluation.kept import decode_mask
from speechprune.evaluation.loading import local_cache_dir

METHODS = "full,original,random,crop,phase1,phase2,speechprune,uniform,dart"
RATES = "0.4,0.9"  # k2 = 450 holds these key sentences whole, k2 = 75 does not
pytestmark = pytest.mark.slow  # one tiny-model run on 2 dialogues, every method


def naive_key_set(num_tokens: int, start: float, end: float, t: Fraction = Fraction(1, 25)) -> set[int]:
    """Token j covers [j t, (j + 1) t); it is a key token when that interval overlaps [start, end)."""
    start, end = Fraction(str(start)), Fraction(str(end))
    return {j for j in range(num_tokens) if j * t < end and (j + 1) * t > start}


@pytest.fixture(scope="module")
def run(spiral_small, tiny_eval, tmp_path_factory):
    output = tmp_path_factory.mktemp("key_recall_run")
    args = ["--methods", METHODS, "--rates", RATES, "--limit", "2", "--map-samples", "0"]
    done = tiny_eval(spiral_small, output, *args)
    ds = load_dataset(str(spiral_small), "spiral", split="test", cache_dir=str(local_cache_dir(spiral_small)))
    rows = {row["id"]: row for row in ds.select_columns(["id", "key_start", "key_end"])}
    return {"output": output, "records": done["records"], "rows": rows}


def test_every_record_carries_its_key_recall(run):
    for record in run["records"]:
        row = run["rows"][record["id"]]
        assert row["key_start"] is not None  # the synthesised SPIRAL knows when each key sentence is spoken
        n = record["audio_tokens_before"]
        key = naive_key_set(n, row["key_start"], row["key_end"])
        kept = set(decode_mask(record["kept_mask"], n))
        assert record["key_recall"] == pytest.approx(len(kept & key) / len(key), abs=1e-12)
        if record["method"] == "full":
            assert record["key_recall"] == 1.0
        if record["method"] == "original":  # the first W = 750 tokens
            assert record["key_recall"] == pytest.approx(len(key & set(range(750))) / len(key), abs=1e-12)
    # the key sentences of these two dialogues lie past 30 s: original misses part of one at least
    assert any(r["key_recall"] < 1 for r in run["records"] if r["method"] == "original")


def test_results_carry_mean_and_standard_error(run):
    document = json.loads((run["output"] / "results.json").read_text())
    for key, row in document["results"]["spiral"].items():
        method, rate = results.parse_result_key(key)
        values = [r["key_recall"] for r in run["records"] if (r["method"], r["rate"]) == (method, rate)]
        assert row["key_recall_n"] == len(values) == 2
        assert row["key_recall"] == pytest.approx(statistics.mean(values), abs=1e-12)
        assert row["key_recall_stderr"] == pytest.approx(statistics.stdev(values) / math.sqrt(2), abs=1e-12)
    for name in ("key_recall.png", "accuracy_vs_key_recall.png"):
        assert (run["output"] / name).stat().st_size > 10_000


def test_points_per_method_and_rate(run):
    document = json.loads((run["output"] / "results.json").read_text())
    figure = report.accuracy_vs_key_recall_figure(document)
    (ax,) = figure.axes
    drawn = sorted(round(float(bars.lines[0].get_xdata()[0]), 9) for bars in ax.containers)  # errorbar points
    expected = sorted(round(100 * row["key_recall"], 9) for row in document["results"]["spiral"].values())
    assert drawn == expected  # one point per method and rate at its mean key recall


def test_a_task_without_key_times_gives_null_and_plots_say_so():
    row = {"id": "q", "key_start": None, "key_end": None}
    selection = {"kept": [0, 1], "num_audio_tokens": 10}
    assert record_key_recall(selection, row, 0.04) is None
    assert record_key_recall(selection, {"id": "q"}, 0.04) is None  # a task whose dataset has no such column
    records = [
        {"id": i, "config": "task", "method": "uniform", "rate": 0.5, "parsed": "A", "gold": g, "correct": g == "A"}
        for i, g in [("a", "A"), ("b", "B")]
    ]
    for record in records:
        record["key_recall"] = None
    row = results.aggregate(records)["task"]["uniform@0.5"]
    assert (row["key_recall"], row["key_recall_stderr"], row["key_recall_n"]) == (None, None, 0)
    document = {"results": {"task": {"uniform@0.5": row}}}
    for figure in (report.key_recall_figure(document), report.accuracy_vs_key_recall_figure(document)):
        assert [t.get_text() for ax in figure.axes for t in ax.texts] == [report.NO_KEY_TIMES]


def test_every_method_runs_with_the_final_count(run):
    counts = {}
    for record in run["records"]:
        n, k = record["audio_tokens_before"], record["audio_tokens_after"]
        expected = {"full": n, "original": min(n, 750)}.get(record["method"], round((1 - (record["rate"] or 0)) * 750))
        assert k == expected and len(decode_mask(record["kept_mask"], n)) == k
        counts[record["method"]] = counts.get(record["method"], 0) + 1
        if record["method"] == "uniform":  # SPEC 8: index i of k2 is floor((i + 0.5) N / k2)
            assert decode_mask(record["kept_mask"], n) == [math.floor((i + 0.5) * n / k) for i in range(k)]
    assert counts == {m: 2 if m in ("full", "original") else 4 for m in METHODS.split(",")}
