"""A small SPIRAL build, loaded back with `datasets` through TorchCodec, checked against the sources."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pyloudnorm
import pytest
import yaml
from datasets import Audio, load_dataset
from huggingface_hub import DatasetCard
from scipy.signal import resample_poly

from speechprune import cli
from speechprune.dataset_script import SAMPLE_ANNOTATIONS
from speechprune.dataset_script import build as build_module
from speechprune.dataset_script.build import BuildStateError, build_spiral
from speechprune.dataset_script.records import parse_record
from speechprune.dataset_script.tts import EspeakEngine
from speechprune.errors import UsageError

IDS = ["lecture_0", "lecture_3", "meeting_1", "meeting_6"]  # lecture_3 and meeting_1 are in the official SPIRAL-H
HARD_IDS = ["meeting_1", "conversation_1", "lecture_3"]  # the official SPIRAL-H ids among the first 12 samples
MALFORMED_REASON = "must hold 4 choices, got 3"


def _source() -> dict[str, dict]:
    records = [json.loads(line) for line in SAMPLE_ANNOTATIONS.read_text().splitlines()]
    return {r["metadata"]["id"]: r for r in records}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """4 good records and one malformed one (line 3), built with a hard subset given as annotation records.

    ``hard`` is written in the published ``data_h.jsonl`` format (whole records, the builder takes their ids),
    holding some official SPIRAL-H records, one of them (conversation_1) not in this build.

    ``cache`` is a datasets cache of this module's own: datasets 5.2 caches a local folder by its name, so the
    shared cache could hand back the rows of another folder called ``spiral`` (the folder is never rebuilt
    with other contents here, so one fresh cache is enough; a temporary one leaves nothing in the user's cache).
    """
    source = _source()
    bad = json.loads(json.dumps(source["lecture_1"]))
    bad["test_question"]["choices"] = [
        c for c in bad["test_question"]["choices"] if c == bad["test_question"]["correct_answer"]
    ] + ["A. one", "C. two"]
    lines = [source["lecture_0"], source["lecture_3"], bad, source["meeting_1"], source["meeting_6"]]
    root = tmp_path_factory.mktemp("build")
    annotations = root / "data.jsonl"
    annotations.write_text("".join(json.dumps(r) + "\n" for r in lines))
    hard = root / "data_h.jsonl"
    hard.write_text("".join(json.dumps(source[i]) + "\n" for i in HARD_IDS))
    out = root / "spiral"
    summary = build_spiral(annotations, out, hard=hard, rows_per_shard=3, progress=False)
    return {"out": out, "summary": summary, "source": source, "hard": hard, "cache": root / "hf-cache"}


def test_summary_counts(built):
    summary = built["summary"]
    assert summary["records_in"] == 5 == summary["rows"] + summary["rejects"]
    assert (summary["rows"], summary["rejects"], summary["hard_rows"]) == (4, 1, 2)
    rejects = [json.loads(line) for line in (built["out"] / "rejects.jsonl").read_text().splitlines()]
    assert len(rejects) == 1 and rejects[0]["line"] == 3 and rejects[0]["id"] == "lecture_1"
    assert MALFORMED_REASON in rejects[0]["reason"]


def test_folder_layout_and_nothing_left_behind(built):
    out = built["out"]
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == [
        ".spiral-build/state.json",
        ".spiral-build/summary.json",
        "README.md",
        "data/spiral/test-00000-of-00002.parquet",
        "data/spiral/test-00001-of-00002.parquet",
        "data/spiral_h/test-00000-of-00001.parquet",
        "eval.yaml",
        "rejects.jsonl",
    ]


def test_load_dataset_spiral_rows_match_the_sources(built):
    ds = load_dataset(str(built["out"]), "spiral", split="test", cache_dir=str(built["cache"]))
    assert ds["id"] == IDS
    assert isinstance(ds.features["audio"], Audio) and ds.features["audio"].sampling_rate == 24000
    assert {name: ds.features[name].dtype for name in ("key_start", "key_end", "duration")} == dict.fromkeys(
        ("key_start", "key_end", "duration"), "float64"
    )
    assert set(ds.column_names) == {
        "id", "audio", "category", "main_topic", "subtopic", "question", "choices", "answer", "key_sentence",
        "key_start", "key_end", "transcript", "duration", "audio_source",
    }  # fmt: skip
    meter = pyloudnorm.Meter(24000)
    for row in ds:
        src = built["source"][row["id"]]
        question = src["test_question"]
        assert row["category"] == src["metadata"]["transcript_type"]
        assert (row["main_topic"], row["subtopic"]) == (src["metadata"]["main_topic"], src["metadata"]["subtopic"])
        assert row["question"] == question["question"]
        assert row["choices"] == [c[3:] for c in question["choices"]]
        assert f"{row['answer']}. {row['choices']['ABCD'.index(row['answer'])]}" == question["correct_answer"]
        assert row["key_sentence"] == src["original_key_sentence"]
        assert row["transcript"] == [{"speaker": t["speaker"], "text": " ".join(t["text"])} for t in src["transcript"]]
        assert row["audio_source"] == "espeak-ng"
        samples = row["audio"].get_all_samples()  # decoded by TorchCodec
        assert samples.sample_rate == 24000 and samples.data.shape[0] == 1
        wave = samples.data[0].numpy().astype(np.float64)
        assert len(wave) / 24000 == pytest.approx(row["duration"], abs=1 / 24000)
        assert meter.integrated_loudness(wave) == pytest.approx(-23.0, abs=0.1)
        assert 0 < row["key_start"] < row["key_end"] < row["duration"]
    durations = ds["duration"]
    assert 60 < np.mean(durations) < 120


def test_audio_is_stored_as_flac(built):
    table = pq.read_table(built["out"] / "data" / "spiral" / "test-00000-of-00002.parquet")
    audio = table.column("audio").to_pylist()
    assert all(a["bytes"][:4] == b"fLaC" and a["path"].endswith(".flac") for a in audio)


def test_spiral_h_holds_the_hard_rows(built):
    hard_ids = {json.loads(line)["metadata"]["id"] for line in built["hard"].read_text().splitlines()}
    spiral = load_dataset(str(built["out"]), "spiral", split="test", cache_dir=str(built["cache"]))
    hard = load_dataset(str(built["out"]), "spiral_h", split="test", cache_dir=str(built["cache"]))
    assert hard["id"] == [i for i in IDS if i in hard_ids] == ["lecture_3", "meeting_1"]
    raw_spiral = spiral.cast_column("audio", Audio(decode=False))
    raw_hard = hard.cast_column("audio", Audio(decode=False))
    by_id = {row["id"]: row for row in raw_spiral}
    for row in raw_hard:
        assert row == by_id[row["id"]]


def test_key_times_are_the_synthesised_sentence_boundaries(built):
    ds = load_dataset(str(built["out"]), "spiral", split="test", cache_dir=str(built["cache"]))
    engine = EspeakEngine()
    for row in ds:
        record = parse_record(built["source"][row["id"]])
        start, end = record.key_indices
        if end - start != 1:
            continue
        # speak the key sentence alone with the same voice, independently of the builder
        speaker = record.sentence_speakers[start]
        alone = engine.synthesize(record.sentences[start], engine.voices(record)[speaker], seed=0)[:-50]
        assert row["key_end"] - row["key_start"] == pytest.approx(len(alone) / 22050, abs=1e-9)
        wave = row["audio"].get_all_samples().data[0].numpy()
        a, b = round(row["key_start"] * 24000), round(row["key_end"] * 24000)
        segment = wave[a:b]
        reference = resample_poly(alone, 160, 147)[: len(segment)]
        correlation = np.dot(segment, reference) / (np.linalg.norm(segment) * np.linalg.norm(reference))
        assert correlation > 0.98
        # the pauses around the key sentence are silent
        assert np.abs(wave[a - 4000 : a - 100]).max() < 2e-3 and np.abs(wave[b + 100 : b + 4000]).max() < 2e-3


def test_card_and_eval_yaml(built):
    out = built["out"]
    card = DatasetCard.load(out / "README.md")
    configs = {c["config_name"]: c for c in card.data.configs}
    assert configs["spiral"]["default"] is True
    assert configs["spiral"]["data_files"] == [{"split": "test", "path": "data/spiral/test-*.parquet"}]
    assert configs["spiral_h"]["data_files"] == [{"split": "test", "path": "data/spiral_h/test-*.parquet"}]
    assert card.data.license == "unknown"
    text = card.text
    assert "state no licence" in text and "@inproceedings{lin2025speechprune" in text
    assert "espeak-ng 1." in text and "150 words per minute" in text and "-23 LUFS" in text
    # the letter bias of this build: answers of the 4 rows and of the 2 hard rows, recomputed here
    answers = [built["source"][i]["test_question"]["correct_answer"][0] for i in IDS]
    top = max("ABCD", key=answers.count)
    assert f"always `{top}`: {100 * answers.count(top) / 4:.1f}%" in text
    durations = [
        d
        for p in sorted((out / "data" / "spiral").glob("*.parquet"))
        for d in pq.read_table(p)["duration"].to_pylist()
    ]
    assert len(durations) == 4
    assert (
        f"| {np.mean(durations):.2f} | {np.median(durations):.2f} | {min(durations):.2f} | {max(durations):.2f} |"
        in text
    )
    spec = yaml.safe_load((out / "eval.yaml").read_text())
    assert spec["evaluation_framework"] == "inspect-ai" and spec["name"] == "SPIRAL"
    assert [(t["id"], t["config"], t["split"]) for t in spec["tasks"]] == [
        ("spiral", "spiral", "test"),
        ("spiral_h", "spiral_h", "test"),
    ]
    columns = set(load_dataset(str(out), "spiral", split="test", cache_dir=str(built["cache"])).column_names)
    for task in spec["tasks"]:
        spec_fields = task["field_spec"]
        assert {spec_fields[k] for k in ("id", "input", "choices", "target")} <= columns


def test_rerun_of_a_finished_build_changes_nothing(built, tmp_path):
    out = built["out"]
    before = {p: p.read_bytes() for p in out.rglob("*.parquet")} | {
        out / "README.md": (out / "README.md").read_bytes()
    }
    annotations = out.parent / "data.jsonl"
    summary = build_spiral(annotations, out, hard=built["hard"], rows_per_shard=3, progress=False)
    assert summary["made"] == 0 and summary["reused"] == 4
    assert {p: p.read_bytes() for p in before} == before
    with pytest.raises(BuildStateError, match="other inputs or arguments"):
        build_spiral(annotations, out, hard=built["hard"], rows_per_shard=2, progress=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    with pytest.raises(BuildStateError, match="not empty"):
        build_spiral(annotations, tmp_path / "other", progress=False)


def test_push_to_hub_needs_the_publishing_flag(built, tmp_path, monkeypatch, capsys):
    out = tmp_path / "never"
    code = cli.main(
        ["build-spiral", "--annotations", str(SAMPLE_ANNOTATIONS), "--out", str(out), "--push-to-hub", "me/x"]
    )
    assert code == 2 and not out.exists()
    assert "--i-have-the-right-to-publish" in capsys.readouterr().err

    calls = []

    class FakeApi:
        def create_repo(self, repo_id, **kwargs):
            calls.append(("create_repo", repo_id, kwargs))

        def upload_folder(self, **kwargs):
            calls.append(("upload_folder", kwargs["repo_id"], kwargs))

    monkeypatch.setattr("huggingface_hub.HfApi", FakeApi)
    url = build_module.push_to_hub(built["out"], "me/spiral")
    assert url.endswith("datasets/me/spiral")
    assert calls[0][2]["repo_type"] == "dataset" and calls[1][2]["ignore_patterns"] == [".spiral-build/**"]


def test_free_space_is_checked_before_anything_is_written(tmp_path, monkeypatch):
    class Usage:
        free = 10_000_000

    monkeypatch.setattr(build_module.shutil, "disk_usage", lambda path: Usage)
    with pytest.raises(UsageError, match="--out: not enough free disk space"):
        build_spiral(SAMPLE_ANNOTATIONS, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
