"""speechprune export-model: a Hub-ready folder with config, code, safetensors, processor and card."""

import argparse
import json

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import load_file

from speechprune import cli, export_model
from speechprune.modeling.modeling_speechprune import Qwen2AudioSpeechPruneForConditionalGeneration
from speechprune.modeling.processing_speechprune import SpeechPruneProcessor
from speechprune.testing import tiny_qwen2_audio

CODE_FILES = {
    "configuration_speechprune.py",
    "modeling_speechprune.py",
    "processing_speechprune.py",
    "pruning.py",
    "audio_spans.py",
}


def parse(*argv):
    parser = argparse.ArgumentParser()
    export_model.configure(parser)
    return parser.parse_args(list(argv))


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "speechprune-tiny"
    argv = ["export-model", "--base", "tiny", "--out", str(out), "--pruning-rate", "0.4", "--query", "question"]
    argv += ["--repo-id", "someone/speechprune-tiny", "--card-revision", "0123abcd"]
    assert cli.main(argv) == 0
    return out


def test_folder_holds_config_code_weights_processor_and_card(tiny_repo):
    names = {p.name for p in tiny_repo.iterdir()}
    assert CODE_FILES <= names
    assert {"config.json", "model.safetensors", "processor_config.json", "tokenizer.json", "README.md"} <= names
    config = json.loads((tiny_repo / "config.json").read_text())
    assert config["model_type"] == "qwen2_audio_speechprune"
    assert (config["pruning_method"], config["pruning_rate"], config["query"]) == ("speechprune", 0.4, "question")
    assert config["auto_map"]["AutoModel"] == "modeling_speechprune.Qwen2AudioSpeechPruneForConditionalGeneration"
    assert config["auto_map"]["AutoConfig"] == "configuration_speechprune.SpeechPruneConfig"
    processor_config = json.loads((tiny_repo / "processor_config.json").read_text())
    assert processor_config["auto_map"]["AutoProcessor"] == "processing_speechprune.SpeechPruneProcessor"
    assert processor_config["query"] == "question"


def test_weights_are_the_base_weights(tiny_repo):
    stock, _ = tiny_qwen2_audio(seed=0)
    model, info = Qwen2AudioSpeechPruneForConditionalGeneration.from_pretrained(tiny_repo, output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    ours, theirs = model.state_dict(), stock.state_dict()
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    assert len(load_file(str(tiny_repo / "model.safetensors"))) == len(theirs)


def test_the_exported_processor_keeps_long_audio_and_its_query(tiny_repo):
    processor = SpeechPruneProcessor.from_pretrained(tiny_repo)
    assert processor.query == "question"
    prompt = processor.spiral_prompt("Who spoke first?", ["Ann", "Bob", "Cy", "Di"])
    inputs = processor(text=[prompt], audio=[np.zeros(16000 * 65, np.float32)], sampling_rate=16000)
    assert len(inputs["input_features"]) == 3
    kept = [i for i, m in zip(inputs["input_ids"][0], inputs["query_mask"][0]) if m]
    assert processor.tokenizer.decode(kept) == "Who spoke first?"


def test_card_metadata_usage_and_citation(tiny_repo):
    card = ModelCard.load(tiny_repo / "README.md")
    assert card.data.library_name == "transformers" and card.data.license == "apache-2.0"
    assert "custom_code" in card.data.tags
    text = card.text
    assert 'repo, revision = "someone/speechprune-tiny", "0123abcd"' in text
    assert "trust_remote_code=True" in text and "revision=revision" in text
    assert "## Limitations" in text and "random weights" in text
    assert "2412.12009" in text and "@inproceedings" in text
    assert "| `pruning_rate` | 0.4 |" in text


def test_export_from_a_stock_checkpoint_folder(tmp_path):
    stock, stock_processor = tiny_qwen2_audio(seed=1)
    base = tmp_path / "stock"
    stock.save_pretrained(base)
    stock_processor.save_pretrained(base)
    out = export_model.export_model(parse("--base", str(base), "--out", str(tmp_path / "out")))
    model = Qwen2AudioSpeechPruneForConditionalGeneration.from_pretrained(out)
    ours, theirs = model.state_dict(), stock.state_dict()
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    tokenizer = stock_processor.tokenizer
    assert model.config.special_token_ids["<|audio_eos|>"] == tokenizer.convert_tokens_to_ids("<|audio_eos|>")
    assert model.config.special_token_ids["<|endoftext|>"] == tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert ModelCard.load(out / "README.md").data.base_model is None  # a local folder is no Hub id
    assert "random weights" not in (out / "README.md").read_text()


def test_refuses_bad_settings_and_a_non_empty_folder(tmp_path):
    with pytest.raises(ValueError, match="--pruning-rate"):
        export_model.export_model(parse("--base", "tiny", "--out", str(tmp_path / "a"), "--pruning-rate", "1.5"))
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        export_model.export_model(parse("--base", "tiny", "--out", str(busy)))


def test_export_any_supported_family_from_a_stock_folder(tmp_path):
    """A Qwen3-Omni thinker folder becomes a repo of its pruning class, with that family's defaults."""
    from transformers import AutoModel

    from speechprune.testing import tiny_family, tiny_family_inputs

    stock = tiny_family("qwen3_omni_moe_thinker", seed=2)
    stock.save_pretrained(tmp_path / "stock")
    out = export_model.export_model(parse("--base", str(tmp_path / "stock"), "--out", str(tmp_path / "out")))
    config = json.loads((out / "config.json").read_text())
    expected_class = "modeling_speechprune.Qwen3OmniMoeThinkerSpeechPruneForConditionalGeneration"
    assert config["auto_map"]["AutoModel"] == expected_class
    assert (config["pruning_method"], config["phase1_tokens"], config["tokens_per_frame"]) == ("speechprune", 390, 13)
    model = AutoModel.from_pretrained(out, trust_remote_code=True)
    assert type(model).__module__.startswith("transformers_modules.")
    ours, theirs = model.state_dict(), stock.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in theirs)
    with torch.no_grad():
        kept = model(**tiny_family_inputs(stock, [40.0])).selection[0]["num_kept"]
    assert kept == round(0.8 * 390)  # --pruning-rate 0.2 of k1 = 390


def test_export_a_family_without_text_config(tmp_path):
    """Phi-4-multimodal's config is its language model's (no text_config): the card asks the adapter."""
    from speechprune.testing import tiny_family

    tiny_family("phi4_multimodal").save_pretrained(tmp_path / "stock")
    out = export_model.export_model(parse("--base", str(tmp_path / "stock"), "--out", str(tmp_path / "out")))
    config = json.loads((out / "config.json").read_text())
    assert config["auto_map"]["AutoModel"] == "modeling_speechprune.Phi4MultimodalSpeechPruneForCausalLM"
    assert (config["phase1_tokens"], config["tokens_per_frame"]) == (375, 13)
    assert "8192" in (out / "README.md").read_text()  # the tiny decoder's max_position_embeddings
