"""The exported model card's metadata as huggingface_hub's ModelCard reads it: base_model, datasets, language."""

from __future__ import annotations

import json

import pytest
import yaml
from huggingface_hub import ModelCard

from speechprune import cli
from speechprune.hub_cards.model_card import base_model_of, languages_of
from speechprune.testing import tiny_qwen2_audio


def _header(path) -> dict:
    return yaml.safe_load(path.read_text().split("---")[1])


@pytest.fixture(scope="module")
def stock_folder(tmp_path_factory):
    """A stock tiny Qwen2-Audio saved by transformers, whose own card names its base and languages."""
    folder = tmp_path_factory.mktemp("stock") / "my-qwen2-audio"
    model, processor = tiny_qwen2_audio(seed=2)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    (folder / "README.md").write_text(
        "---\nbase_model: Qwen/Qwen2-Audio-7B-Instruct\nlanguage:\n- en\n- zh\n---\n# x\n"
    )
    return folder


def test_tiny_export_names_its_repo_dataset_and_language(tmp_path):
    out = tmp_path / "speechprune-tiny"
    argv = ["export-model", "--base", "tiny", "--out", str(out), "--repo-id", "me/speechprune-tiny"]
    assert cli.main([*argv, "--dataset-id", "me/spiral"]) == 0
    card = ModelCard.load(out / "README.md")
    assert card.data.datasets == ["me/spiral"] and card.data.language == ["en"]
    assert card.data.model_name == "me/speechprune-tiny"
    header = _header(out / "README.md")
    assert "base_model" not in header  # random weights derive from no published model
    assert "base_model_relation" not in header


def test_a_folder_export_takes_base_model_and_language_from_the_folders_card(stock_folder, tmp_path):
    out = tmp_path / "out"
    assert cli.main(["export-model", "--base", str(stock_folder), "--out", str(out), "--repo-id", "me/x"]) == 0
    card = ModelCard.load(out / "README.md")
    assert card.data.base_model == "Qwen/Qwen2-Audio-7B-Instruct" and card.data.language == ["en", "zh"]
    assert "[Qwen/Qwen2-Audio-7B-Instruct](https://huggingface.co/Qwen/Qwen2-Audio-7B-Instruct)" in card.text
    assert "base_model_relation" not in _header(out / "README.md")  # the weights are the base's, unchanged
    assert "datasets" not in _header(out / "README.md")  # none given; `submit` adds the one it publishes to


def test_base_model_flag_wins_and_bad_flags_write_nothing(stock_folder, tmp_path, capsys):
    assert base_model_of(str(stock_folder), "me/fine-tuned") == "me/fine-tuned"
    out = tmp_path / "out"
    argv = ["export-model", "--base", "tiny", "--out", str(out)]
    assert cli.main([*argv, "--base-model", "not a repo id"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--base-model" in err and "Traceback" not in err
    assert cli.main([*argv, "--dataset-id", "spiral"]) == 2  # a dataset id needs its owner
    assert "--dataset-id" in capsys.readouterr().err
    assert not out.exists()


def test_what_a_folder_can_say_about_its_base(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "config.json").write_text(json.dumps({"model_type": "qwen2_audio"}))
    assert base_model_of(str(plain)) is None and languages_of(str(plain)) == ["en"]
    # transformers 4 saved the id it loaded from; a local path there names nothing
    (plain / "config.json").write_text(json.dumps({"_name_or_path": "Qwen/Qwen2-Audio-7B"}))
    assert base_model_of(str(plain)) == "Qwen/Qwen2-Audio-7B"
    (plain / "config.json").write_text(json.dumps({"_name_or_path": str(tmp_path)}))
    assert base_model_of(str(plain)) is None
    # a Hub cache snapshot names its repo in the path
    snapshot = tmp_path / "hub" / "models--Qwen--Qwen2-Audio-7B-Instruct" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    assert base_model_of(str(snapshot)) == "Qwen/Qwen2-Audio-7B-Instruct"
    # a card whose YAML is broken names nothing (and does not stop the export)
    (plain / "README.md").write_text("---\nbase_model: [oops\n---\n")
    assert base_model_of(str(plain)) is None and languages_of(str(plain)) == ["en"]
    assert base_model_of("Qwen/Qwen2-Audio-7B-Instruct") == "Qwen/Qwen2-Audio-7B-Instruct"
    assert base_model_of("tiny") is None
