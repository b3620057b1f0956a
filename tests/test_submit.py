"""`speechprune submit`: the written eval results and card, and each check refusing to write anything."""

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
        limit=None,
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
    for result in card.data.eval_results:  # each model-index field keeps its meaning (see test_model_index_fields)
        assert result.metric_config is None and result.dataset_args is None
        assert "speechprune@0.2, espeak-ng audio" in result.metric_name
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


# ---- nothing is written unless everything parses (issue 12) -------------------------------------------------


def test_a_corrupt_card_writes_nothing_and_a_retry_after_fixing_it_succeeds(run, capsys):
    results, model, _ = run
    corrupt = "---\nlicense: apache-2.0\ntags: [speechprune\n---\n\n# my model\n"
    (model / "README.md").write_text(corrupt)
    assert _submit(results, model, "--method", "original") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "nothing written" in err and "README.md" in err and "YAML front matter" in err
    assert not (model / ".eval_results").exists()
    assert (model / "README.md").read_text() == corrupt
    (model / "README.md").write_text(corrupt.replace("[speechprune\n", "[speechprune]\n"))
    assert _submit(results, model, "--method", "original") == 0  # not refused as a duplicate
    card = ModelCard.load(model / "README.md")
    assert card.data.license == "apache-2.0" and "# my model" in card.text
    assert [r.dataset_config for r in card.data.eval_results] == ["spiral", "spiral_h"]


def test_a_corrupt_eval_results_file_is_reported_not_overwritten(run, capsys):
    results, model, _ = run
    path = model / ".eval_results" / "spiral.yaml"
    path.parent.mkdir()
    path.write_text("- dataset: {id: someone/spiral, task_id: spiral\n  value: 1\n")
    before = path.read_bytes()
    assert _submit(results, model, "--method", "original") == 2
    err = capsys.readouterr().err
    assert "spiral.yaml is not valid YAML" in err and err.count("\n") == 1
    assert path.read_bytes() == before and not (model / "README.md").exists()


def test_submit_error_is_a_usage_error():
    from speechprune.errors import UsageError
    from speechprune.evaluation.submit import SubmitError

    assert issubclass(SubmitError, UsageError)


# ---- dataset revisions that a Hub commit matches (issue 13, point 2) -----------------------------------------


def _local_run(results: Path, tmp_path: Path) -> str:
    """Make ``results`` a run on a local dataset folder: its id a path, its revision the folder's content hash."""
    folder = tmp_path / "spiral-build"
    (folder / "data" / "spiral").mkdir(parents=True)
    (folder / "data" / "spiral" / "test-00000.parquet").write_bytes(b"PAR1 not really")
    digest = content_hash(folder)
    _edit_results(results, lambda doc: doc["config"]["dataset"].update(id=str(folder), revision=digest))
    return digest


def test_a_local_run_needs_the_commit_of_its_upload(run, tmp_path, capsys):
    results, model, _ = run
    digest = _local_run(results, tmp_path)
    assert _submit(results, model, "--method", "original", "--dataset-id", DATASET) == 2
    err = capsys.readouterr().err
    assert "--dataset-revision" in err and "local dataset folder" in err
    for bad in ("main", digest, "C" * 40, "c" * 39):
        assert _submit(results, model, "--method", "original", "--dataset-id", DATASET, "--dataset-revision", bad) == 2
        assert "40-hex commit" in capsys.readouterr().err
    _nothing_written(model)
    commit = "0123456789abcdef0123456789abcdef01234567"
    argv = ["--method", "original", "--dataset-id", DATASET, "--dataset-revision", commit]
    assert _submit(results, model, *argv) == 0
    data = yaml.safe_load((model / ".eval_results" / "spiral.yaml").read_text())
    entries = parse_eval_result_entries(data)
    assert {e.dataset_revision for e in entries} == {commit}  # what the Hub and EvalResultEntry expect
    assert {parse_notes(e.notes)["dataset_content_hash"] for e in entries} == {digest}  # the claim stays checkable
    assert all(len(e.dataset_revision) == 40 for e in ModelCard.load(model / "README.md").data.eval_results)
    # the content hash is provenance, not setup: the same run again is a duplicate
    assert _submit(results, model, *argv) == 2
    assert "no duplicates" in capsys.readouterr().err


def test_a_hub_run_keeps_its_own_commit(run, capsys):
    results, model, _ = run
    assert _submit(results, model, "--method", "original", "--dataset-revision", "d" * 40) == 2
    assert "evaluated on dataset commit " + DATASET_REV in capsys.readouterr().err
    assert _submit(results, model, "--method", "original", "--dataset-revision", DATASET_REV) == 0
    entries = parse_eval_result_entries(yaml.safe_load((model / ".eval_results" / "spiral.yaml").read_text()))
    assert {e.dataset_revision for e in entries} == {DATASET_REV}
    assert all("dataset_content_hash" not in parse_notes(e.notes) for e in entries)


def test_eval_results_file_round_trips_through_huggingface_hub(run):
    from huggingface_hub import EvalResultEntry, eval_result_entries_to_yaml

    results, model, _ = run
    assert _submit(results, model, "--method", "speechprune", "--rate", "0.2") == 0
    data = yaml.safe_load((model / ".eval_results" / "spiral.yaml").read_text())
    entries = parse_eval_result_entries(data)
    assert all(isinstance(e, EvalResultEntry) for e in entries)
    assert eval_result_entries_to_yaml(entries) == data  # nothing in the file that the format does not hold
    rebuilt = [EvalResultEntry(**{k: getattr(e, k) for k in e.__dataclass_fields__}) for e in entries]
    assert rebuilt == entries


# ---- runs on a subset (issue 12) -----------------------------------------------------------------------------


def test_a_limit_run_is_refused_unless_allowed_and_then_marked_partial(run, capsys):
    results, model, _ = run
    _edit_results(results, lambda doc: doc["config"].update(limit=8))
    assert _submit(results, model, "--method", "original") == 2
    err = capsys.readouterr().err
    assert "check 'whole split' failed" in err and "first 8 samples" in err and "--allow-partial" in err
    _nothing_written(model)
    assert _submit(results, model, "--method", "original", "--allow-partial") == 0
    entries = parse_eval_result_entries(yaml.safe_load((model / ".eval_results" / "spiral.yaml").read_text()))
    assert all(parse_notes(e.notes)["partial"] == "true" for e in entries)
    card = ModelCard.load(model / "README.md")
    assert all(r.metric_name.endswith("partial)") for r in card.data.eval_results)
    # a partial entry and a whole-split entry of the same method are different setups
    _edit_results(results, lambda doc: doc["config"].update(limit=None))
    assert _submit(results, model, "--method", "original") == 0
    entries = parse_eval_result_entries(yaml.safe_load((model / ".eval_results" / "spiral.yaml").read_text()))
    assert sorted(parse_notes(e.notes).get("partial", "-") for e in entries) == ["-", "-", "true", "true"]


def test_a_run_that_does_not_say_whether_it_was_whole_is_refused(run, capsys):
    results, model, _ = run
    _edit_results(results, lambda doc: doc["config"].pop("limit"))
    assert _submit(results, model, "--method", "original") == 2
    assert "no config.limit" in capsys.readouterr().err
    _nothing_written(model)


@pytest.mark.slow
def test_the_whole_local_path_export_eval_submit(spiral_small, tmp_path, capsys):
    """A real run: export the tiny model, evaluate it on a local SPIRAL folder with --limit, then submit."""
    model = tmp_path / "speechprune-tiny"
    assert cli.main(["export-model", "--base", "tiny", "--out", str(model), "--repo-id", "me/speechprune-tiny"]) == 0
    run_dir = tmp_path / "run"
    argv = ["eval", "--model", str(model), "--dataset", str(spiral_small), "--config", "spiral"]
    assert cli.main([*argv, "--methods", "original", "--limit", "2", "--output", str(run_dir)]) == 0
    results = run_dir / "results.json"
    config = json.loads(results.read_text())["config"]
    assert config["limit"] == 2 and len(config["dataset"]["revision"]) == 64  # a subset of a local folder
    capsys.readouterr()
    assert _submit(results, model) == 2
    assert "--dataset-id" in capsys.readouterr().err
    assert _submit(results, model, "--dataset-id", DATASET) == 2
    assert "--dataset-revision" in capsys.readouterr().err
    commit = "a" * 40
    assert _submit(results, model, "--dataset-id", DATASET, "--dataset-revision", commit) == 2
    assert "check 'whole split' failed" in capsys.readouterr().err
    assert (model / "README.md").read_text().count("SPIRAL results") == 0  # nothing written so far
    assert _submit(results, model, "--dataset-id", DATASET, "--dataset-revision", commit, "--allow-partial") == 0
    (entry,) = parse_eval_result_entries(yaml.safe_load((model / ".eval_results" / "spiral.yaml").read_text()))
    notes = parse_notes(entry.notes)
    assert (entry.dataset_revision, notes["partial"], notes["n"]) == (commit, "true", "2")
    assert notes["dataset_content_hash"] == config["dataset"]["revision"]
    card = ModelCard.load(model / "README.md")
    assert card.data.model_name == "me/speechprune-tiny" and card.data.datasets == [DATASET]
    assert "trust_remote_code=True" in card.text  # export-model's text is kept
    assert not (model / ".cache").exists()


# ---- model-index fields and the model name (issue 13, point 4) -----------------------------------------------


def test_model_index_fields_keep_their_meaning(run):
    results, model, _ = run
    assert _submit(results, model, "--method", "speechprune", "--rate", "0.2") == 0
    card = ModelCard.load(model / "README.md")
    header = yaml.safe_load((model / "README.md").read_text().split("---")[1])
    for result in header["model-index"][0]["results"]:
        assert set(result["dataset"]) == {"type", "name", "config", "split", "revision"}  # no `args`
        assert {k for metric in result["metrics"] for k in metric} == {"type", "value", "name"}  # no `config`
    assert card.data.datasets == [DATASET]
    assert card.data.model_name == "someone/tiny-speechprune"  # the run's Hub id, not the folder's name


def test_model_name_defaults_to_the_repo_id(run):
    results, model, _ = run
    _edit_results(results, lambda doc: doc["config"]["model"].update(id=str(model)))  # a local run
    assert _submit(results, model, "--method", "original", "--repo-id", "me/my-model") == 0
    assert ModelCard.load(model / "README.md").data.model_name == "me/my-model"
    # without --repo-id the name already on the card stays
    assert _submit(results, model, "--method", "speechprune", "--rate", "0.2") == 0
    assert ModelCard.load(model / "README.md").data.model_name == "me/my-model"


def test_a_card_written_by_export_model_names_the_repo(tmp_path):
    from speechprune.hub_cards.model_card import model_card_data

    model = tmp_path / "model"
    model.mkdir()
    card = ModelCard.from_template(
        model_card_data("tiny", repo_id="me/exported"), template_str="---\n{{ card_data }}\n---\n"
    )
    card.save(model / "README.md")
    from speechprune.evaluation.submit import _model_name, _read_card

    assert _model_name(None, None, _read_card(model), {"model": {"id": str(model)}}, model) == "me/exported"


# ---- the model folder stays clean (issue 13, point 7) ---------------------------------------------------------


def test_submit_leaves_no_cache_or_lock_files_in_a_plain_folder(run):
    results, model, _ = run
    assert _submit(results, model, "--method", "original") == 0
    assert not (model / ".cache").exists()
    assert sorted(p.name for p in model.iterdir()) == [
        ".eval_results",
        "README.md",
        "config.json",
        "model.safetensors",
    ]


def test_submit_leaves_no_lock_files_in_a_downloaded_folder(run):
    from huggingface_hub._local_folder import write_download_metadata

    results, model, _ = run
    commit = "e" * 40
    for name in ("config.json", "model.safetensors"):
        write_download_metadata(model, name, commit, etag="x")
    records = model / ".cache" / "huggingface" / "download"
    for lock in records.rglob("*.lock"):  # as a finished download leaves it: its records, no locks of ours
        lock.unlink()
    before = sorted(p.relative_to(model) for p in (model / ".cache").rglob("*"))
    _edit_results(results, lambda doc: doc["config"]["model"].update(revision=commit, content_hash=None))
    assert _submit(results, model, "--method", "original") == 0  # matched by the download records
    assert sorted(p.relative_to(model) for p in (model / ".cache").rglob("*")) == before
    assert not list(model.rglob("*.lock"))


def test_a_refused_submit_leaves_the_download_records_as_they_were(run, capsys):
    from huggingface_hub._local_folder import write_download_metadata

    results, model, _ = run
    write_download_metadata(model, "config.json", "e" * 40, etag="x")
    (model / "weights").mkdir()
    (model / "weights" / "extra.bin").write_bytes(b"\x02")  # no record: the reader makes a folder and a lock for it
    for lock in model.rglob("*.lock"):
        lock.unlink()
    before = sorted(p.relative_to(model) for p in (model / ".cache").rglob("*"))
    _edit_results(results, lambda doc: doc["config"]["model"].update(revision="e" * 40, content_hash=None))
    assert _submit(results, model, "--method", "original") == 2
    assert "check 'same model' failed" in capsys.readouterr().err
    assert sorted(p.relative_to(model) for p in (model / ".cache").rglob("*")) == before
