"""`speechprune eval` on the tiny model and a real 4-dialogue SPIRAL, checked against independent computations."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from datasets import Audio, load_dataset

from speechprune.evaluate_metric.spiral_accuracy.spiral_accuracy import parse_answer
from speechprune.evaluation import checkpoint, fileio, runner
from speechprune.evaluation.efficiency import QWEN2_AUDIO_7B_CONFIG, llm_prefill_flops
from speechprune.evaluation.evaluator import MEASURED_FIELDS, Variant
from speechprune.evaluation.loading import local_cache_dir
from speechprune.modeling import pruning
from speechprune.testing import tiny_qwen2_audio, tiny_speechprune

BASE = ["--methods", "full,original,random,crop,speechprune", "--rates", "0.5", "--limit", "3", "--map-samples", "2"]
RECORD_FIELDS = {
    "id", "config", "category", "audio_source", "method", "rate", "rotation", "prompt_hash", "raw_output", "parsed",
    "gold", "correct", "audio_tokens_before", "audio_tokens_after", "text_tokens", "llm_tokens", "llm_flops",
    "activation_estimate_gb", "prefill_ms", "batch_size", "peak_memory_gb", "activation_memory_gb",
}  # fmt: skip
TIMED_RESULT_FIELDS = ("prefill_ms", "peak_memory_gb", "activation_memory_gb")


def eval_args(dataset: Path, output: Path, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    runner.configure(parser)
    return parser.parse_args(
        ["--model", "tiny", "--dataset", str(dataset), "--config", "spiral", "--output", str(output), *extra]
    )


def without_measurements(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in MEASURED_FIELDS} for r in records]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def read_rank_file(path: Path) -> list[dict]:
    """The records of a rank file, checked to carry one run stamp, without it (records in memory have none)."""
    records = read_jsonl(path)
    assert len({r.pop(checkpoint.RUN_FIELD) for r in records}) <= 1
    return records


def untimed_results(path: Path) -> dict:
    doc = json.loads(path.read_text())
    return {
        config: {key: {f: v for f, v in row.items() if f not in TIMED_RESULT_FIELDS} for key, row in rows.items()}
        for config, rows in doc["results"].items()
    }


@pytest.fixture(scope="module")
def rows(spiral_small):
    # A cache of this build's own: datasets 5.2 keys local folders by name, so an earlier session's
    # `spiral_small0` could otherwise be read back.
    cache = str(local_cache_dir(spiral_small))
    ds = load_dataset(str(spiral_small), "spiral", split="test", cache_dir=cache)
    ds = ds.cast_column("audio", Audio(sampling_rate=16000))
    return [dict(row, wave=row["audio"].get_all_samples().data.mean(0).numpy()) for row in ds.select(range(3))]


@pytest.fixture(scope="module")
def base_run(spiral_small, tmp_path_factory):
    output = tmp_path_factory.mktemp("base_run")
    done = runner.evaluate(eval_args(spiral_small, output, *BASE))
    return {"output": output, "records": done["records"], "paths": done["paths"]}


def stock_inputs(processor, row, choices):
    prompt = processor.spiral_prompt(row["question"], choices)
    return prompt, processor(text=[prompt], audio=[row["wave"]], sampling_rate=16000, return_tensors="pt")


def test_records_fields_counts_and_selections(base_run, rows):
    records = base_run["records"]
    assert len(records) == len(rows) * 5
    _, processor = tiny_speechprune()
    audio_id = processor.tokenizer.convert_tokens_to_ids("<|AUDIO|>")
    by_row = {row["id"]: row for row in rows}
    asked = {row["id"]: stock_inputs(processor, row, list(row["choices"])) for row in rows}
    for r in records:
        assert RECORD_FIELDS <= set(r)
        row = by_row[r["id"]]
        prompt, inputs = asked[r["id"]]
        n = int((inputs.input_ids == audio_id).sum())
        k = {"full": n, "original": min(n, 750)}.get(r["method"], pruning.final_count(n, 0.5))
        assert (r["audio_tokens_before"], r["audio_tokens_after"]) == (n, k)
        assert r["text_tokens"] == inputs.input_ids.shape[1] - n
        assert r["llm_tokens"] == r["text_tokens"] + k
        assert r["prompt_hash"] == hashlib.sha256(prompt.encode()).hexdigest()
        assert r["gold"] == row["answer"] and r["rotation"] == 0 and r["config"] == "spiral"
        assert r["correct"] == (r["parsed"] == r["gold"]) and r["parsed"] in "ABCD"
        assert r["audio_source"] == "espeak-ng" and r["category"] == row["category"]
        assert r["peak_memory_gb"] is None and r["activation_memory_gb"] is None  # CPU: not measured
        # Per-sample seeds: the kept tokens are SPEC's draw for this id, whatever the batch or shard.
        seed = pruning.sample_seed(0, r["id"])
        expected_kept = {
            "full": torch.arange(n),
            "original": torch.arange(min(n, 750)),
            "random": pruning.random_select(n, k, seed),
            "crop": pruning.crop_select(n, k, seed),
        }.get(r["method"])
        if r["id"] in {row["id"] for row in rows[:2]}:  # --map-samples 2: the first two ids
            if expected_kept is not None:
                assert r["kept_times"] == [round(0.04 * int(i), 3) for i in expected_kept]
            assert len(r["kept_times"]) == k
        else:
            assert "kept_times" not in r
    # FLOPs at the 7B architecture (the tiny model's default), against a direct count for one sample.
    for r in [r for r in records if r["id"] == rows[0]["id"]][:3]:
        assert r["llm_flops"] == llm_prefill_flops(QWEN2_AUDIO_7B_CONFIG, r["llm_tokens"])


def test_outputs_written(base_run):
    out = base_run["output"]
    results = json.loads((out / "results.json").read_text())
    assert set(results["results"]["spiral"]) == {"full", "original", "speechprune@0.5", "random@0.5", "crop@0.5"}
    assert results["config"]["model"]["revision"] == "tiny-seed0"
    assert results["config"]["audio_source"] == "espeak-ng"
    assert results["config"]["dataset"]["fingerprint"] and len(results["config"]["dataset"]["revision"]) == 64
    assert results["n-samples"]["spiral"] == {"original": 3, "effective": 3}
    table = (out / "table.md").read_text()
    assert "| speechprune | 0.5 |" in table and "random weights" in table and "not measured" in table
    assert "pruning rate: a rate r in [0, 1) counts against min(N, 750)" in table  # issue 12: say what a rate keeps
    assert {p.name for p in (out / "pruning_map").iterdir()} == {"lecture_0.png", "meeting_0.png"}
    assert (out / "accuracy.png").stat().st_size > 0 and (out / "cost.png").stat().st_size > 0
    assert read_jsonl(out / "samples.jsonl") == base_run["records"]


def test_loglik_is_the_stock_models_letter_choice(base_run, rows):
    stock, _ = tiny_qwen2_audio(seed=0)  # pruning off, SpeechPrune is the stock model bit for bit
    model, processor = tiny_speechprune(seed=0)
    letters = [processor.tokenizer.convert_tokens_to_ids(letter) for letter in "ABCD"]
    by_key = {(r["id"], r["method"]): r for r in base_run["records"]}
    for row in rows[:2]:
        _, inputs = stock_inputs(processor, row, list(row["choices"]))
        plain = {k: v for k, v in inputs.items() if k != "query_mask"}
        with torch.no_grad():
            full = torch.log_softmax(stock(**plain).logits[0, -1], -1)[letters].tolist()
            rand = model(**inputs, pruning_method="random", pruning_rate=0.5, sample_ids=[row["id"]]).logits
        rand = torch.log_softmax(rand[0, -1], -1)[letters].tolist()
        for method, logprobs in (("full", full), ("random", rand)):
            record = by_key[(row["id"], method)]
            assert record["logprobs"] == pytest.approx(dict(zip("ABCD", logprobs)), abs=1e-5)
            best = max(range(4), key=lambda i: (logprobs[i], -i))  # highest, ties to the earlier letter
            assert record["parsed"] == record["raw_output"] == "ABCD"[best]


def test_generate_scoring_parses_greedy_output(spiral_small, rows, tmp_path):
    extra = ["--scoring", "generate", "--max-new-tokens", "5", "--methods", "full", "--limit", "1"]
    records = runner.evaluate(eval_args(spiral_small, tmp_path, *extra))["records"]
    assert len(records) == 1
    stock, processor = tiny_qwen2_audio(seed=0)
    _, sp_processor = tiny_speechprune(seed=0)
    for record, row in zip(records, rows):
        _, inputs = stock_inputs(sp_processor, row, list(row["choices"]))
        plain = {k: v for k, v in inputs.items() if k != "query_mask"}
        out = stock.generate(**plain, max_new_tokens=5, do_sample=False)
        text = processor.tokenizer.decode(out[0, inputs.input_ids.shape[1] :], skip_special_tokens=True)
        assert record["raw_output"] == text
        assert record["parsed"] == parse_answer(text, list(row["choices"]))
        assert record["correct"] == (record["parsed"] is not None and record["parsed"] == row["answer"])
        assert "logprobs" not in record


def test_circular_rotates_choices_and_needs_all_four(spiral_small, rows, tmp_path):
    args = eval_args(
        spiral_small, tmp_path, "--circular", "--methods", "speechprune", "--rates", "0.5", "--limit", "2"
    )
    records = runner.evaluate(args)["records"]
    _, processor = tiny_speechprune()
    assert len(records) == 2 * 4
    for row in rows[:2]:
        mine = sorted((r for r in records if r["id"] == row["id"]), key=lambda r: r["rotation"])
        assert [r["rotation"] for r in mine] == [0, 1, 2, 3]
        choices = list(row["choices"])
        gold_text = choices["ABCD".index(row["answer"])]
        for r, rec in enumerate(mine):
            rotated = choices[r:] + choices[:r]
            prompt = processor.spiral_prompt(row["question"], rotated)
            assert rec["prompt_hash"] == hashlib.sha256(prompt.encode()).hexdigest()
            assert rec["gold"] == "ABCD"[rotated.index(gold_text)]
        assert sorted(r["gold"] for r in mine) == ["A", "B", "C", "D"]
    results = json.loads((tmp_path / "results.json").read_text())["results"]["spiral"]["speechprune@0.5"]
    all_four = [all(r["correct"] for r in records if r["id"] == row["id"]) for row in rows[:2]]
    assert results["accuracy"] == sum(all_four) / 2 and results["n"] == 2
    assert results["majority_baseline"] == 0.0  # one fixed letter is never right under all four rotations


def test_resume_after_kill_equals_uninterrupted(base_run, spiral_small, tmp_path, kept_lines=9):
    """A kill leaves run_config.json, a prefix of the records and maybe a cut-short line: resuming completes it."""
    (tmp_path / "records").mkdir()
    shutil.copy(base_run["output"] / checkpoint.RUN_CONFIG, tmp_path / checkpoint.RUN_CONFIG)
    lines = (base_run["output"] / "records" / "rank-00000.jsonl").read_text().splitlines(keepends=True)
    cut = lines[kept_lines][: len(lines[kept_lines]) // 2]
    rank_file = checkpoint.rank_file(tmp_path, 0)
    rank_file.write_text("".join(lines[:kept_lines]) + cut)

    records = runner.evaluate(eval_args(spiral_small, tmp_path, *BASE))["records"]
    assert without_measurements(records) == without_measurements(base_run["records"])
    assert without_measurements(read_rank_file(rank_file)[:kept_lines]) == without_measurements(
        base_run["records"][:kept_lines]
    )
    assert len(read_rank_file(rank_file)) == len(records)  # the cut line dropped, nothing redone, nothing lost
    assert untimed_results(tmp_path / "results.json") == untimed_results(base_run["output"] / "results.json")


def test_a_crash_leaves_a_resumable_prefix(spiral_small, tmp_path, monkeypatch):
    """Records are written as they are made: a crash mid-run leaves exactly the finished ones."""
    written = []
    append = fileio.JsonlAppender.append

    def dying_append(self, record):
        if len(written) == 1:
            raise KeyboardInterrupt("simulated kill")
        append(self, record)
        written.append({k: v for k, v in record.items() if k != checkpoint.RUN_FIELD})  # as kept in memory

    monkeypatch.setattr(fileio.JsonlAppender, "append", dying_append)
    args = ["--methods", "original,random", "--rates", "0.5", "--limit", "1"]
    with pytest.raises(KeyboardInterrupt):
        runner.evaluate(eval_args(spiral_small, tmp_path, *args))
    assert read_rank_file(checkpoint.rank_file(tmp_path, 0)) == written
    monkeypatch.setattr(fileio.JsonlAppender, "append", append)
    records = runner.evaluate(eval_args(spiral_small, tmp_path, *args))["records"]
    assert records[:1] == written and len(records) == 2


def test_changed_arguments_are_refused(base_run, spiral_small):
    with pytest.raises(ValueError, match=r"seed: stored 0, now 1"):
        runner.evaluate(eval_args(spiral_small, base_run["output"], *BASE, "--seed", "1"))


def test_check_complete_names_missing_foreign_and_duplicated_units():
    variants = [Variant("full", None), Variant("random", 0.5)]
    good = [{"id": i, "method": v.method, "rate": v.rate, "rotation": 0} for i in ("a", "b") for v in variants]
    runner.check_complete(good, ["a", "b"], variants, circular=False)
    with pytest.raises(RuntimeError, match=r"1 missing units"):
        runner.check_complete(good[:3], ["a", "b"], variants, circular=False)
    with pytest.raises(RuntimeError, match=r"2 missing units.*ids missing \['b'\]"):
        runner.check_complete(good[:2], ["a", "b"], variants, circular=False)
    with pytest.raises(RuntimeError, match=r"1 duplicated"):
        runner.check_complete(good + good[:1], ["a", "b"], variants, circular=False)
    with pytest.raises(RuntimeError, match=r"foreign ids \['c'\]"):
        runner.check_complete(good + [dict(good[0], id="c")], ["a", "b"], variants, circular=False)
    with pytest.raises(RuntimeError, match=r"6 missing units"):  # circular wants rotations 1-3 too
        runner.check_complete(good[:2], ["a"], variants, circular=True)


def test_two_processes_give_the_same_records(base_run, spiral_small, tmp_path):
    """torchrun, 2 CPU processes (gloo), batches of 2: the same records as one process, batches of 1."""
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "speechprune.cli", "eval", "--model", "tiny", "--dataset", str(spiral_small), "--config", "spiral",
        "--methods", "random,speechprune", "--rates", "0.5", "--limit", "3", "--map-samples", "2",
        "--batch-size", "2", "--output", str(tmp_path),
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = sorted(p.name for p in (tmp_path / "records").iterdir())
    assert ranks == ["rank-00000.jsonl", "rank-00001.jsonl"]
    # 3 samples split 2 + 1, times 2 variants
    assert [len(read_jsonl(tmp_path / "records" / name)) for name in ranks] == [4, 2]
    two = without_measurements(read_jsonl(tmp_path / "samples.jsonl"))
    one = [r for r in without_measurements(base_run["records"]) if r["method"] in ("random", "speechprune")]
    assert [{k: v for k, v in r.items() if k != "logprobs"} for r in two] == [
        {k: v for k, v in r.items() if k != "logprobs"} for r in one
    ]
    for a, b in zip(two, one):  # batches of 2 pad the shorter prompt: same answer, last-bit differences at most
        assert a["logprobs"] == pytest.approx(b["logprobs"], abs=1e-4)


def test_same_named_dataset_folders_do_not_share_a_cache(spiral_small, tmp_path):
    """datasets caches a local folder by its name; a task's rows are cached by the folder's files instead."""
    import pyarrow.parquet as pq

    from speechprune.evaluation.tasks import load_task
    from speechprune.evaluation.tasks.data import load_task_data

    def load_spiral(folder, _config):
        return load_task_data(load_task("spiral"), folder).accepted

    a, b = tmp_path / "a" / "spiral", tmp_path / "b" / "spiral"
    shutil.copytree(spiral_small, a)
    shutil.copytree(spiral_small, b)
    shard = next((b / "data" / "spiral").glob("*.parquet"))
    pq.write_table(pq.read_table(shard).slice(0, 1), shard)
    assert len(load_spiral(str(a), "spiral")) == 4
    assert list(load_spiral(str(b), "spiral")["id"]) == ["lecture_0"]
    pq.write_table(pq.read_table(next((a / "data" / "spiral").glob("*.parquet"))).slice(1, 2), shard)  # rebuilt
    assert list(load_spiral(str(b), "spiral")["id"]) == ["meeting_0", "conversation_0"]


def _eval_cli(dataset: Path, output: Path, *extra: str) -> list[str]:
    return [
        "eval",
        "--model",
        "tiny",
        "--dataset",
        str(dataset),
        "--config",
        "spiral",
        "--output",
        str(output),
        *extra,
    ]


def _one_line(capsys, code: int, *expected: str) -> None:
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert all(text in err for text in expected), err


def test_nothing_is_mixed_or_overwritten(base_run, spiral_small, tmp_path, capsys):
    from speechprune import cli

    # a resume with other arguments: one line naming the difference
    _one_line(capsys, cli.main(_eval_cli(spiral_small, base_run["output"], *BASE, "--seed", "1")), "seed: stored 0")

    # records of a --seed 0 run without their run_config.json: a --seed 1 run refuses them, nothing is written
    mixed = tmp_path / "mixed"
    shutil.copytree(base_run["output"] / "records", mixed / "records")
    before = (mixed / "records" / "rank-00000.jsonl").read_bytes()
    code = cli.main(_eval_cli(spiral_small, mixed, *BASE, "--seed", "1"))
    _one_line(capsys, code, "records made with other settings", "rank-00000.jsonl")
    assert (mixed / "records" / "rank-00000.jsonl").read_bytes() == before and not (mixed / "results.json").exists()

    # the same records and the arguments that made them: they are proven to be this run's, and nothing is left
    assert cli.main(_eval_cli(spiral_small, mixed, *BASE)) == 0
    assert "nothing left to do" in capsys.readouterr().out
    assert untimed_results(mixed / "results.json") == untimed_results(base_run["output"] / "results.json")

    # a folder holding something else is not overwritten; a file is no folder
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "results.json").write_text("mine")
    _one_line(capsys, cli.main(_eval_cli(spiral_small, theirs, *BASE)), "holds no speechprune eval run")
    assert (theirs / "results.json").read_text() == "mine"
    _one_line(capsys, cli.main(_eval_cli(spiral_small, theirs / "results.json", *BASE)), "is a file")

    # a cut-short run_config.json: named, not a JSONDecodeError
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / checkpoint.RUN_CONFIG).write_text((base_run["output"] / checkpoint.RUN_CONFIG).read_text()[:40])
    _one_line(
        capsys, cli.main(_eval_cli(spiral_small, cut, *BASE)), f"{cut / checkpoint.RUN_CONFIG} is not valid JSON"
    )
