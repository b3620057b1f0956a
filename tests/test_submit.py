"""`speechprune submit`: the written eval results and card, and each of the five checks refusing to write."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from huggingface_hub import ModelCard, parse_eval_result_entries

from speechprune import cli
from speechprune.evaluation.fileio import append_jsonl
from speechprune.evaluation.provenance import content_hash
from speechprune.evaluation.results import build_results, make_config, write_results
from speechprune.evaluation.submit import parse_notes

DATASET = "someone/spiral"
DATASET_REV = "c" * 40


def _records(seed=0, source="espeak-ng"):
    rng = random.Random(seed)
    records = []
    for config, n in [("spiral", 30), ("spiral_h", 12)]:
        for method, rate in [("original", None), ("speechprune", 0.2)]:
            for i in range(n):
                gold = rng.choice("ABCD")
                parsed = rng.choice([gold, gold, "A", None])
                records.append(
                    {
                        "id": f"q{i}",
                        "config": config,
                        "method": method,
                        "rate": rate,
                        "parsed": parsed,
                        "gold": gold,
                        "correct": parsed == gold,
                        "audio_source": source,
                    }
                )
    return records


@pytest.fixture()
def run(tmp_path):
    """A model folder and a run evaluated on it: (results.json, model folder, records)."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "qwen2_audio"}')
    (model / "model.safetensors").write_bytes(b"\x00" * 64)
    records = _records()
    out = tmp_path / "run"
    append_jsonl(out / "samples.jsonl", records)
    config = make_config(
        model_id="someone/tiny-speechprune",
        model_revision=content_hash(model),
        dataset_id=DATASET,
        dataset_revision=DATASET_REV,
        audio_source="espeak-ng",
        pruning={"methods": ["original", "speechprune"], "rates": [0.2], "phase1_tokens": 750},
    )
    path = write_results(out / "results.json", build_results(records, config=config))
    return path, model, records


def _submit(results, model, *extra):
    return cli.main(["submit", str(results), "--model-repo", str(model), *extra])


def _edit_results(path: Path, change):
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def _nothing_written(model: Path):
    assert not (model / ".eval_results").exists()
    assert not (model / "README.md").exists()


def test_submit_writes_entries_and_card(run, capsys):
    results, model, records = run
    before = content_hash(model)
    assert _submit(results, model, "--method", "speechprune", "--rate", "0.2") == 0
    entries = parse_eval_result_entries(yaml.safe_load((model / ".eval_results" / "spiral.yaml").read_text()))
    assert [e.task_id for e in entries] == ["spiral", "spiral_h"]
    for entry in entries:
        mine = [r for r in records if r["config"] == entry.task_id and r["method"] == "speechprune"]
        assert entry.value == round(100 * sum(r["parsed"] == r["gold"] for r in mine) / len(mine), 2)
        assert entry.dataset_id == DATASET and entry.dataset_revision == DATASET_REV
        notes = parse_notes(entry.notes)
        assert notes["audio_source"] == "espeak-ng"  # the source is named in the entry
        assert (notes["method"], notes["rate"], notes["n"]) == ("speechprune", "0.2", str(len(mine)))
    card = ModelCard.load(model / "README.md")
    assert [(r.dataset_config, r.metric_value) for r in card.data.eval_results] == [
        (e.task_id, e.value) for e in entries
    ]
    assert card.data.eval_results[0].dataset_args == {"audio_source": "espeak-ng"}
    assert "## SPIRAL results" in card.text
    assert content_hash(model) == before  # publishing does not change the model's identity
    # the same setup again is a duplicate; --overwrite replaces it in place
    assert _submit(results, model, "--method", "speechprune", "--rate", "0.2") == 2
    assert "no duplicates" in capsys.readouterr().err
    assert _submit(results, model, "--method", "speechprune", "--rate", "0.2", "--overwrite") == 0
    assert _submit(results, model, "--method", "original") == 0  # another setup is a new entry
    entries = parse_eval_result_entries(yaml.safe_load((model / ".eval_results" / "spiral.yaml").read_text()))
    assert len(entries) == 4
    card = ModelCard.load(model / "README.md")
    assert len(card.data.eval_results) == 4 and card.text.count("## SPIRAL results") == 1


def test_a_row_must_be_chosen(run, capsys):
    results, model, _ = run
    assert _submit(results, model) == 2
    assert "--method" in capsys.readouterr().err
    assert _submit(results, model, "--method", "crop", "--rate", "0.2") == 2
    _nothing_written(model)


@pytest.mark.parametrize("what", ["model", "dataset"])
@pytest.mark.parametrize("revision", ["main", None, "v1.0"])
def test_check_pinned(run, capsys, what, revision):
    results, model, _ = run
    _edit_results(results, lambda doc: doc["config"][what].update(revision=revision))
    assert _submit(results, model, "--method", "original") == 2
    assert "check 'pinned' failed" in capsys.readouterr().err
    _nothing_written(model)


def test_check_duplicates_in_existing_file(run, capsys):
    results, model, _ = run
    assert _submit(results, model, "--method", "original") == 0
    path = model / ".eval_results" / "spiral.yaml"
    data = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump(data + data[:1]))
    before = path.read_bytes()
    assert _submit(results, model, "--method", "speechprune", "--rate", "0.2") == 2
    assert "twice" in capsys.readouterr().err
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        ("accuracy", "accuracy is"),
        ("n_invalid", "n_invalid is"),
        ("drop_row", "has rows"),
        ("no_samples", "no per-sample file"),
        ("flip_sample", "recomputed"),
        ("broken_samples", "cannot be aggregated"),
    ],
)
def test_check_recomputable(run, capsys, tamper, message):
    results, model, _ = run
    samples = results.parent / "samples.jsonl"
    if tamper == "accuracy":
        _edit_results(results, lambda doc: doc["results"]["spiral"]["speechprune@0.2"].update(accuracy=0.99))
    elif tamper == "n_invalid":
        _edit_results(results, lambda doc: doc["results"]["spiral_h"]["original"].update(n_invalid=0))
    elif tamper == "drop_row":
        _edit_results(results, lambda doc: doc["results"]["spiral"].pop("original"))
    elif tamper == "no_samples":
        samples.unlink()
    elif tamper == "flip_sample":
        lines = samples.read_text().splitlines()
        record = json.loads(lines[0])
        record["parsed"] = "ABCD"[("ABCD".index(record["gold"]) + 1) % 4] if record["correct"] else record["gold"]
        record["correct"] = not record["correct"]
        samples.write_text("\n".join([json.dumps(record), *lines[1:]]) + "\n")
    elif tamper == "broken_samples":
        lines = samples.read_text().splitlines()
        record = json.loads(lines[0])
        record["correct"] = not record["correct"]  # disagrees with parsed vs gold
        samples.write_text("\n".join([json.dumps(record), *lines[1:]]) + "\n")
    assert _submit(results, model, "--method", "speechprune", "--rate", "0.2") == 2
    err = capsys.readouterr().err
    assert "check 'recomputable' failed" in err and message in err
    _nothing_written(model)


def test_check_same_model(run, capsys):
    results, model, _ = run
    (model / "model.safetensors").write_bytes(b"\x01" * 64)  # other weights than the run used
    assert _submit(results, model, "--method", "original") == 2
    assert "check 'same model' failed" in capsys.readouterr().err
    _nothing_written(model)


def test_same_model_by_git_head(run):
    results, model, _ = run
    git = ["git", "-C", str(model), "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "model"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    _edit_results(results, lambda doc: doc["config"]["model"].update(revision=head, content_hash=None))
    assert _submit(results, model, "--method", "original") == 0
    _edit_results(results, lambda doc: doc["config"]["model"].update(revision="d" * 40))
    assert _submit(results, model, "--method", "original", "--overwrite") == 2


def test_same_model_by_hub_download_records(run):
    from huggingface_hub._local_folder import write_download_metadata

    results, model, _ = run
    commit = "e" * 40
    for name in ("config.json", "model.safetensors"):
        write_download_metadata(model, name, commit, etag="x")  # what `hf download --local-dir` leaves
    _edit_results(results, lambda doc: doc["config"]["model"].update(revision=commit, content_hash=None))
    assert _submit(results, model, "--method", "original") == 0
    # a file edited after its download no longer vouches for the commit
    later = (model / "model.safetensors").stat().st_mtime + 30
    os.utime(model / "model.safetensors", (later, later))
    assert _submit(results, model, "--method", "original", "--overwrite") == 2


def test_same_model_by_cache_snapshot_name(run, tmp_path):
    results, model, _ = run
    commit = "f" * 40
    snapshot = tmp_path / "models--someone--tiny" / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        (snapshot / name).write_bytes((model / name).read_bytes())
    _edit_results(results, lambda doc: doc["config"]["model"].update(revision=commit, content_hash=None))
    assert _submit(results, snapshot, "--method", "original") == 0
    assert _submit(results, model, "--method", "original") == 2  # the same bytes elsewhere do not carry the sha


def test_check_audio_source(run, capsys):
    results, model, _ = run
    # the run says one source, its records another
    _edit_results(results, lambda doc: doc["config"].update(audio_source="authors"))
    assert _submit(results, model, "--method", "original") == 2
    assert "check 'audio source' failed" in capsys.readouterr().err
    _nothing_written(model)
    # no source named
    _edit_results(results, lambda doc: doc["config"].update(audio_source=None))
    assert _submit(results, model, "--method", "original") == 2
    assert "check 'audio source' failed" in capsys.readouterr().err
    _nothing_written(model)


def test_audio_sources_never_mix_in_a_repo(run, capsys):
    results, model, _ = run
    path = model / ".eval_results" / "spiral.yaml"
    path.parent.mkdir()
    other = [{"dataset": {"id": DATASET, "task_id": "spiral"}, "value": 50.0, "notes": "audio_source=authors"}]
    unrelated = [{"dataset": {"id": "cais/hle", "task_id": "default"}, "value": 1.0}]
    path.write_text(yaml.safe_dump(other + unrelated))
    before = path.read_bytes()
    assert _submit(results, model, "--method", "original") == 2
    assert "must not be mixed" in capsys.readouterr().err
    assert path.read_bytes() == before and not (model / "README.md").exists()
    # entries of other benchmarks are kept untouched
    path.write_text(yaml.safe_dump(unrelated))
    assert _submit(results, model, "--method", "original") == 0
    ids = [e.dataset_id for e in parse_eval_result_entries(yaml.safe_load(path.read_text()))]
    assert ids == ["cais/hle", DATASET, DATASET]


def test_dataset_id_must_be_a_hub_id(run, capsys):
    results, model, _ = run
    _edit_results(results, lambda doc: doc["config"]["dataset"].update(id="/data/spiral"))
    assert _submit(results, model, "--method", "original") == 2
    assert "--dataset-id" in capsys.readouterr().err
    assert _submit(results, model, "--method", "original", "--dataset-id", "me/spiral") == 0


def test_push_offline_fails_clearly_after_writing(run, capsys, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # never reach the real Hub from a test
    results, model, _ = run
    assert _submit(results, model, "--method", "original", "--push", "--token", "hf_fake") == 1
    err = capsys.readouterr().err
    assert "could not upload" in err and "offline" in err
    assert (model / ".eval_results" / "spiral.yaml").is_file()  # the local files stay


def test_push_to_unreachable_endpoint(run):
    results, model, _ = run
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "0", "HF_HUB_ETAG_TIMEOUT": "2"}
    command = [sys.executable, "-m", "speechprune.cli", "submit", str(results), "--model-repo", str(model)]
    done = subprocess.run(
        [*command, "--method", "original", "--push", "--repo-id", "someone/x", "--token", "hf_fake"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "could not upload to the Hub repo 'someone/x'" in done.stderr
    assert "127.0.0.1" in done.stderr or "refused" in done.stderr.lower()


def test_push_needs_a_repo_id(run, capsys):
    results, model, _ = run
    _edit_results(results, lambda doc: doc["config"]["model"].update(id=str(model)))
    assert _submit(results, model, "--method", "original", "--push") == 1
    assert "--repo-id" in capsys.readouterr().err
