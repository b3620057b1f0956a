"""Tasks as data: every preset on a folder written here in its dataset's layout, a YAML task over an
AudioBench-layout folder, K = 2 and 10 choices through every scoring mode, rejected rows, resume and torchrun.

The fixtures are written by this file with plain ``datasets`` calls, column by column as each public loader
reads them, with synthetic audio (sine tones as WAV): the presets are checked against these layouts, not
against code of the package.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import subprocess
import sys
import wave
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch

from speechprune.errors import UsageError
from speechprune.evaluate_metric.spiral_accuracy.spiral_accuracy import parse_answer
from speechprune.evaluation import runner
from speechprune.evaluation.evaluator import MEASURED_FIELDS
from speechprune.evaluation.tasks import load_task, preset_names
from speechprune.evaluation.tasks.data import load_task_data
from speechprune.testing import tiny_qwen2_audio, tiny_speechprune

LETTERS = "ABCDEFGHIJ"


def wav(seconds: float, freq: float = 440.0, rate: int = 16000) -> dict:
    """A mono 16-bit WAV of a sine tone, as an ``Audio`` cell."""
    t = np.arange(int(seconds * rate)) / rate
    pcm = (0.3 * np.sin(2 * math.pi * freq * t) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return {"bytes": buffer.getvalue(), "path": None}


def broken_audio() -> dict:
    return {"bytes": b"this is not audio at all" * 10, "path": None}


def write_parquet(path: Path, columns: dict, features: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict(columns, features=datasets.Features(features)).to_parquet(str(path))


STR = datasets.Value("string")


def table(rows: list[tuple], names: list[str]) -> dict:
    """Rows of values in ``names`` order -> the column dict ``Dataset.from_dict`` takes."""
    return {name: [row[i] for row in rows] for i, name in enumerate(names)}


def eval_args(task: str, dataset: Path | None, output: Path, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    runner.configure(parser)
    where = [] if dataset is None else ["--dataset", str(dataset)]
    argv = ["--model", "tiny", "--task", task, *where, "--output", str(output), "--map-samples", "0", *extra]
    return parser.parse_args(argv)


def without_measurements(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in MEASURED_FIELDS} for r in records]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def prompt_hash(question: str, choices: list[str]) -> str:
    _, processor = tiny_speechprune()
    return hashlib.sha256(processor.spiral_prompt(question, choices).encode()).hexdigest()


# Each layout: the folder's rows as the dataset has them, and what each row must become: (question, choices,
# gold) for an accepted row, the rejection reason for a left-out one.
def dream_tts_layout(folder: Path, long: bool) -> list:
    short, longer = (5.0, 61.0) if long else (2.0, 3.0)
    rows = [
        (wav(longer), "What did the man buy?", "(A) bread\n(B) milk\n(C) eggs", "(B) milk"),
        (wav(longer, 330), "Where are they?", "(A) at home (B) at school (C) in a shop", "at school"),
        (wav(short, 550), "Who called?", "(A) Tom (B) Ann (C) Joe", "C"),
    ]
    write_parquet(
        folder / "data" / "test-00000-of-00001.parquet",
        table(rows, ["context", "instruction", "choices", "answer"]),
        {"context": datasets.Audio(), "instruction": STR, "choices": STR, "answer": STR},
    )
    expected = [
        ("What did the man buy?", ["bread", "milk", "eggs"], "B"),
        ("Where are they?", ["at home", "at school", "in a shop"], "B"),
        "shorter_than_min_seconds" if long else ("Who called?", ["Tom", "Ann", "Joe"], "C"),
    ]
    return expected


def cn_college_listen_layout(folder: Path, long: bool) -> list:
    short, longer = (5.0, 61.0) if long else (2.0, 3.0)
    rows = [
        (wav(longer), "What does the woman mean? (A) She is busy. (B) She is tired. (C) She is happy.",
         "(A) She is busy."),
        (wav(longer, 330), "Question: Where will they meet?\nA. At the gate.\nB. In the library.\nC. At noon.\n"
         "D. Later.", "B"),
        (wav(short, 550), "How old is he? A) Ten. B) Twelve.", "(B)"),
    ]  # fmt: skip
    write_parquet(
        folder / "data" / "test-00000-of-00001.parquet",
        table(rows, ["context", "instruction", "answer"]),
        {"context": datasets.Audio(), "instruction": STR, "answer": STR},
    )
    return [
        ("What does the woman mean?", ["She is busy.", "She is tired.", "She is happy."], "A"),
        ("Question: Where will they meet?", ["At the gate.", "In the library.", "At noon.", "Later."], "B"),
        "shorter_than_min_seconds" if long else ("How old is he?", ["Ten.", "Twelve."], "B"),
    ]


def mmau_mini_layout(folder: Path) -> list:
    rows = [
        ("mmau-1", wav(2.0), "Which instrument plays?", json.dumps(["piano", "guitar", "drums", "violin"]), "drums",
         "music", "Instrument Recognition"),
        ("mmau-2", wav(2.0, 300), "Is the speaker male or female?", json.dumps(["male", "female"]), "female",
         "speech", "Speaker Identification"),
        ("mmau-3", wav(2.0, 500), "What sound is this?", json.dumps(["dog", "cat", "bird"]), "a horse",
         "sound", "Sound Event"),
    ]  # fmt: skip
    write_parquet(
        folder / "data" / "test_mini-00000-of-00001.parquet",
        table(rows, ["id", "audio", "question", "choices", "answer", "task", "category"]),
        {
            "id": STR,
            "audio": datasets.Audio(),
            "question": STR,
            "choices": STR,
            "answer": STR,
            "task": STR,
            "category": STR,
        },  # fmt: skip
    )
    return [
        ("Which instrument plays?", ["piano", "guitar", "drums", "violin"], "C"),
        ("Is the speaker male or female?", ["male", "female"], "B"),
        "answer_matches_none",
    ]


def audiomarathon_race_layout(folder: Path) -> list:
    rows = [
        (wav(3.0), "What is the passage mainly about?", ["a trip", "a school", "a friend", "a game"], "B"),
        (wav(3.0, 300), "Why was Tom late?", ["rain", "traffic", "illness", "a dog"], "D"),
    ]
    write_parquet(
        folder / "race" / "test-00000-of-00001.parquet",
        {**table(rows, ["audio", "question", "options", "answer"]), "article_id": ["high1", "middle2"]},
        {"audio": datasets.Audio(), "question": STR, "options": datasets.List(STR), "answer": STR, "article_id": STR},
    )
    (folder / "README.md").write_text(
        "---\nconfigs:\n- config_name: race\n  data_files:\n  - split: test\n    path: race/test-*.parquet\n---\n"
    )
    return [(r[1], r[2], r[3]) for r in rows]


LAYOUTS = {
    "dream_tts": lambda folder: dream_tts_layout(folder, long=False),
    "dream_tts_long": lambda folder: dream_tts_layout(folder, long=True),
    "cn_college_listen": lambda folder: cn_college_listen_layout(folder, long=False),
    "cn_college_listen_long": lambda folder: cn_college_listen_layout(folder, long=True),
    "mmau_mini": mmau_mini_layout,
    "audiomarathon_race": audiomarathon_race_layout,
}


def check_run(done: dict, output: Path, expected: list, task: str) -> None:
    """Every accepted row asked with the expected prompt and gold letter; every other one counted and listed."""
    records = done["records"]
    accepted = [(i, e) for i, e in enumerate(expected) if not isinstance(e, str)]
    assert len(records) == len(accepted)
    for record, (_, (question, choices, gold)) in zip(records, accepted):
        assert record["config"] == task
        assert record["gold"] == gold
        assert record["prompt_hash"] == prompt_hash(question, choices)
        assert set(record["logprobs"]) == set(LETTERS[: len(choices)])
        assert record["parsed"] == max(record["logprobs"], key=lambda k: (record["logprobs"][k], -ord(k)))
    rejected = [(i, e) for i, e in enumerate(expected) if isinstance(e, str)]
    listed = read_jsonl(output / "rejects.jsonl")
    assert [(r["index"], r["reason"]) for r in listed] == rejected
    summary = json.loads((output / "results.json").read_text())["rejected"]
    assert summary["total"] == len(rejected)
    assert summary["by_reason"] == {reason: sum(e == reason for _, e in rejected) for _, reason in rejected}


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(LAYOUTS))
def test_preset_on_its_layout(task, tmp_path):
    expected = LAYOUTS[task](tmp_path / "data")
    done = runner.evaluate(eval_args(task, tmp_path / "data", tmp_path / "run", "--methods", "original"))
    check_run(done, tmp_path / "run", expected, task)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert set(results["results"]) == {task}
    if task == "mmau_mini":  # the preset files MMAU's `task` column (sound / music / speech) as the category
        assert set(results["results"][task]["original"]["per_category"]) == {"music", "speech"}


def test_every_preset_has_a_layout_test_and_a_doc_card():
    assert set(preset_names()) == set(LAYOUTS) | {"spiral", "spiral_h"}
    for name in preset_names():
        task = load_task(name)
        assert task.name == name and task.doc
        if name not in ("spiral", "spiral_h"):
            doc = " ".join(task.doc.lower().split())
            assert "taken from public loader code and not verified against the live dataset" in doc


def test_a_missing_column_names_the_column_and_the_preset_file(tmp_path):
    write_parquet(
        tmp_path / "data" / "test-00000-of-00001.parquet",
        {"context": [wav(1.0)], "question": ["Who?"], "choices": ["(A) x (B) y"], "answer": ["A"]},
        {"context": datasets.Audio(), "question": STR, "choices": STR, "answer": STR},
    )
    with pytest.raises(UsageError, match=r"columns\.question names column 'instruction'.*dream_tts\.yaml"):
        load_task_data(load_task("dream_tts"), str(tmp_path / "data"))


AUDIOBENCH_TASK = """\
task: listening_mcq
dataset: {dataset}
config: null
split: test
columns:
  audio: context
  question: instruction
  choices: choices
  answer: answer
  id: null
  category: null
filter:
  min_seconds: 2
  max_seconds: 4
"""


def test_yaml_task_over_an_audiobench_folder(tmp_path):
    """Three choices, answers as "(B) text" and as plain text, and a duration filter on both sides."""
    rows = [
        (wav(3.0), "Where is the cat?", ["on the mat", "under the bed", "in the box"], "(B) under the bed"),
        (wav(2.5, 300), "What colour is it?", ["red", "green", "blue"], "Blue"),
        (wav(1.0, 500), "Too short?", ["yes", "no", "maybe"], "yes"),
        (wav(5.0, 600), "Too long?", ["yes", "no", "maybe"], "(A) yes"),
        (wav(3.5, 700), "Which day?", ["Monday", "Tuesday", "Friday"], "(C) Friday"),
    ]
    write_parquet(
        tmp_path / "ab" / "data" / "test-00000-of-00001.parquet",
        table(rows, ["context", "instruction", "choices", "answer"]),
        {"context": datasets.Audio(), "instruction": STR, "choices": datasets.List(STR), "answer": STR},
    )
    task_file = tmp_path / "listening.yaml"
    task_file.write_text(AUDIOBENCH_TASK.format(dataset=tmp_path / "ab"))
    done = runner.evaluate(eval_args(str(task_file), None, tmp_path / "run", "--methods", "original,random"))
    expected = [
        ("Where is the cat?", rows[0][2], "B"),
        ("What colour is it?", rows[1][2], "C"),
        "shorter_than_min_seconds",
        "longer_than_max_seconds",
        ("Which day?", rows[4][2], "C"),
    ]
    originals = [r for r in done["records"] if r["method"] == "original"]
    check_run({"records": originals}, tmp_path / "run", expected, "listening_mcq")
    assert [r["id"] for r in originals] == ["0", "1", "4"]  # the row index when the task maps no id column
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["results"]["listening_mcq"]["original"]["n"] == 3
    assert results["config"]["task"]["filter"] == {"min_seconds": 2.0, "max_seconds": 4.0}


def k_choices_folder(folder: Path) -> list[tuple[str, list[str], str]]:
    """Two questions with 2 choices and two with 10."""
    ten = [f"option number {i}" for i in range(10)]
    rows = [
        ("q2a", wav(2.0), "Is it raining?", ["yes", "no"], "B"),
        ("q10a", wav(2.0, 300), "Which number was said?", ten, "J"),
        ("q2b", wav(2.0, 500), "Is it loud?", ["no", "yes"], "A"),
        ("q10b", wav(2.0, 700), "Which number came last?", ten, "E"),
    ]
    write_parquet(
        folder / "data" / "test-00000-of-00001.parquet",
        table(rows, ["qid", "wave", "prompt", "options", "label"]),
        {"qid": STR, "wave": datasets.Audio(), "prompt": STR, "options": datasets.List(STR), "label": STR},
    )
    task = folder / "k.yaml"
    task.write_text(
        f"task: k_choices\ndataset: {folder}\nsplit: test\ncolumns:\n  audio: wave\n  question: prompt\n"
        "  choices: options\n  answer: label\n  id: qid\n"
    )
    return [(r[0], r[2], r[3], r[4]) for r in rows]


@pytest.fixture(scope="module")
def k_task(tmp_path_factory):
    folder = tmp_path_factory.mktemp("k_choices")
    return folder / "k.yaml", k_choices_folder(folder)


def stock_prompt_inputs(question, choices, wave_cell):
    _, processor = tiny_speechprune()
    decoded = datasets.Audio(sampling_rate=16000).decode_example(wave_cell)
    audio = decoded.get_all_samples().data.mean(0).numpy()
    prompt = processor.spiral_prompt(question, choices)
    return processor, processor(text=[prompt], audio=[audio], sampling_rate=16000, return_tensors="pt")


@pytest.mark.slow
def test_k_2_and_10_through_loglik(k_task, tmp_path):
    task_file, rows = k_task
    done = runner.evaluate(eval_args(str(task_file), None, tmp_path, "--methods", "full"))
    stock, _ = tiny_qwen2_audio(seed=0)
    waves = {0: wav(2.0), 1: wav(2.0, 300), 2: wav(2.0, 500), 3: wav(2.0, 700)}
    for index, (record, (sample_id, question, choices, gold)) in enumerate(zip(done["records"], rows)):
        processor, inputs = stock_prompt_inputs(question, choices, waves[index])
        letters = [processor.tokenizer.convert_tokens_to_ids(letter) for letter in LETTERS[: len(choices)]]
        plain = {k: v for k, v in inputs.items() if k != "query_mask"}
        with torch.no_grad():
            logprobs = torch.log_softmax(stock(**plain).logits[0, -1], -1)[letters].tolist()
        assert record["id"] == sample_id and record["gold"] == gold
        assert record["logprobs"] == pytest.approx(dict(zip(LETTERS, logprobs)), abs=1e-5)
        best = max(range(len(choices)), key=lambda i: (logprobs[i], -i))
        assert record["parsed"] == LETTERS[best]
    results = json.loads((tmp_path / "results.json").read_text())["results"]["k_choices"]["full"]
    assert results["accuracy"] == sum(r["correct"] for r in done["records"]) / 4


@pytest.mark.slow
def test_k_2_and_10_through_generate(k_task, tmp_path):
    task_file, rows = k_task
    extra = ["--methods", "full", "--scoring", "generate", "--max-new-tokens", "4"]
    done = runner.evaluate(eval_args(str(task_file), None, tmp_path, *extra))
    for record, (_, _, choices, gold) in zip(done["records"], rows):
        assert record["parsed"] == parse_answer(record["raw_output"], choices)
        assert record["parsed"] is None or record["parsed"] in LETTERS[: len(choices)]
        assert record["correct"] == (record["parsed"] == gold)


@pytest.mark.slow
def test_k_2_and_10_through_circular(k_task, tmp_path):
    task_file, rows = k_task
    done = runner.evaluate(eval_args(str(task_file), None, tmp_path, "--methods", "random", "--rates", "0.5",
                                     "--circular"))  # fmt: skip
    records = done["records"]
    assert len(records) == 2 + 10 + 2 + 10  # K rotations per question
    correct_all = []
    for sample_id, question, choices, gold in rows:
        mine = sorted((r for r in records if r["id"] == sample_id), key=lambda r: r["rotation"])
        assert [r["rotation"] for r in mine] == list(range(len(choices)))
        gold_text = choices[LETTERS.index(gold)]
        for rotation, record in enumerate(mine):
            rotated = choices[rotation:] + choices[:rotation]
            assert record["prompt_hash"] == prompt_hash(question, rotated)
            assert record["gold"] == LETTERS[rotated.index(gold_text)]
        assert sorted(r["gold"] for r in mine) == list(LETTERS[: len(choices)])
        correct_all.append(all(r["correct"] for r in mine))
    results = json.loads((tmp_path / "results.json").read_text())["results"]["k_choices"]["random@0.5"]
    assert results["accuracy"] == sum(correct_all) / 4 and results["n"] == 4
    assert results["majority_baseline"] == 0.0


def test_rejected_rows_are_counted_and_listed(tmp_path):
    good = ["red", "green", "blue"]
    rows = [
        ("ok", wav(2.0), "Which colour?", json.dumps(good), "green"),
        ("none", wav(2.0), "Which colour?", json.dumps(good), "purple"),
        ("several", wav(2.0), "Which letter?", json.dumps(["B", "A"]), "B"),
        ("few", wav(2.0), "Only one?", json.dumps(["alone"]), "alone"),
        ("broken", broken_audio(), "Which colour?", json.dumps(good), "red"),
        ("short", wav(0.5), "Which colour?", json.dumps(good), "red"),
        ("ok", wav(2.0), "Again?", json.dumps(good), "red"),
        ("ok2", wav(2.0), "Which colour?", "(A) red (B) green", "(B) green"),
    ]
    write_parquet(
        tmp_path / "data" / "data" / "test-00000-of-00001.parquet",
        table(rows, ["id", "audio", "question", "choices", "answer"]),
        {"id": STR, "audio": datasets.Audio(), "question": STR, "choices": STR, "answer": STR},
    )
    task = tmp_path / "t.yaml"
    task.write_text(
        f"task: rejects\ndataset: {tmp_path / 'data'}\ncolumns:\n  audio: audio\n  question: question\n"
        "  choices: choices\n  answer: answer\n  id: id\nfilter:\n  min_seconds: 1\n"
    )
    done = runner.evaluate(eval_args(str(task), None, tmp_path / "run", "--methods", "original"))
    assert [r["id"] for r in done["records"]] == ["ok", "ok2"]
    listed = read_jsonl(tmp_path / "run" / "rejects.jsonl")
    assert [(r["index"], r["id"], r["reason"]) for r in listed] == [
        (1, "none", "answer_matches_none"),
        (2, "several", "answer_matches_several"),
        (3, "few", "too_few_choices"),
        (4, "broken", "unreadable_audio"),
        (5, "short", "shorter_than_min_seconds"),
        (6, "ok", "duplicate_id"),
    ]
    rejected = json.loads((tmp_path / "run" / "results.json").read_text())["rejected"]
    assert rejected == {
        "total": 6,
        "by_reason": {
            "too_few_choices": 1,
            "answer_matches_none": 1,
            "answer_matches_several": 1,
            "duplicate_id": 1,
            "unreadable_audio": 1,
            "shorter_than_min_seconds": 1,
        },
        "file": "rejects.jsonl",
    }


@pytest.mark.slow
def test_resume_and_two_processes_on_a_non_spiral_task(k_task, tmp_path):
    """A resumed run and a torchrun run with 2 processes (batches of 2) equal one uninterrupted process."""
    task_file, _ = k_task
    extra = ["--methods", "original,speechprune", "--rates", "0.5"]
    whole = runner.evaluate(eval_args(str(task_file), None, tmp_path / "one", *extra))["records"]

    (tmp_path / "resumed" / "records").mkdir(parents=True)
    (tmp_path / "resumed" / "run_config.json").write_text((tmp_path / "one" / "run_config.json").read_text())
    lines = (tmp_path / "one" / "records" / "rank-00000.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "resumed" / "records" / "rank-00000.jsonl").write_text("".join(lines[:3]) + lines[3][:20])
    resumed = runner.evaluate(eval_args(str(task_file), None, tmp_path / "resumed", *extra))["records"]
    assert without_measurements(resumed) == without_measurements(whole)

    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "speechprune.cli", "eval", "--model", "tiny", "--task", str(task_file), *extra, "--map-samples", "0",
        "--batch-size", "2", "--output", str(tmp_path / "two"),
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "two" / "records").iterdir()) == ["rank-00000.jsonl", "rank-00001.jsonl"]
    two = without_measurements(read_jsonl(tmp_path / "two" / "samples.jsonl"))
    one = without_measurements(whole)
    assert [{k: v for k, v in r.items() if k != "logprobs"} for r in two] == [
        {k: v for k, v in r.items() if k != "logprobs"} for r in one
    ]
    for a, b in zip(two, one):  # batches of 2 pad the shorter prompt: last-bit differences at most
        assert a["logprobs"] == pytest.approx(b["logprobs"], abs=1e-4)


@pytest.mark.slow
def test_spiral_h_preset_on_a_built_hard_subset(spiral_small, tmp_path):
    """spiral_h reads the hard config `build-spiral --hard` writes; its rows checked against the parquet itself."""
    import pyarrow.parquet as pq

    from speechprune.dataset_script.build import build_spiral
    from speechprune.evaluation.demo import SAMPLE_ANNOTATIONS

    shards = sorted((spiral_small / "data" / "spiral").glob("*.parquet"))
    rows = [row for shard in shards for row in pq.read_table(shard, columns=["id", "question", "choices", "answer"])
            .to_pylist()]  # fmt: skip
    hard = [rows[1]["id"], rows[3]["id"]]
    (tmp_path / "hard.txt").write_text("\n".join(hard) + "\n")
    build_spiral(SAMPLE_ANNOTATIONS, tmp_path / "spiral", hard=tmp_path / "hard.txt", limit=4, progress=False)
    done = runner.evaluate(eval_args("spiral_h", tmp_path / "spiral", tmp_path / "run", "--methods", "original"))
    expected = [(row["question"], row["choices"], row["answer"]) for row in rows if row["id"] in hard]
    check_run(done, tmp_path / "run", expected, "spiral_h")
    assert [r["id"] for r in done["records"]] == hard
    assert {r["audio_source"] for r in done["records"]} == {"espeak-ng"}
    config = json.loads((tmp_path / "run" / "results.json").read_text())["config"]
    assert config["audio_source"] == "espeak-ng"


def test_a_preset_name_wins_over_a_folder_of_that_name(tmp_path, monkeypatch):
    """`--dataset spiral --task spiral` run beside the built folder `spiral`: the folder is not a task file."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spiral").mkdir()
    assert load_task("spiral").name == "spiral"
    (tmp_path / "mine.yaml").mkdir()  # a folder with a task file's name is still an unreadable task file
    with pytest.raises(UsageError, match="cannot read"):
        load_task("mine.yaml")
