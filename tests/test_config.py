"""SpeechPruneConfig: pruning defaults, validation naming the field, config.json round trip."""

import json

import pytest
from transformers import Qwen2AudioConfig

from speechprune.modeling.configuration_speechprune import SpeechPruneConfig


def test_defaults_and_model_type():
    config = SpeechPruneConfig()
    assert isinstance(config, Qwen2AudioConfig)
    assert config.model_type == "qwen2_audio_speechprune"
    assert config.pruning_settings() == {
        "pruning_method": "full",
        "pruning_rate": 0.0,
        "phase1_tokens": 750,
        "tokens_per_frame": 25,
        "phase1_temperature": 1.0,
        "query": "user_text",
        "pruning_seed": 0,
    }
    assert config.special_token_ids["<|audio_eos|>"] == 151648


def test_none_is_an_alias_of_full():
    assert SpeechPruneConfig(pruning_method="none").pruning_method == "full"


@pytest.mark.parametrize(
    "field, value",
    [
        ("pruning_method", "fastv"),
        ("pruning_rate", 1.0),
        ("pruning_rate", -0.1),
        ("pruning_rate", "0.2"),
        ("phase1_tokens", 0),
        ("tokens_per_frame", 2.5),
        ("phase1_temperature", 0.0),
        ("query", "everything"),
        ("pruning_seed", "seven"),
    ],
)
def test_invalid_values_fail_at_construction_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        SpeechPruneConfig(**{field: value})


def test_round_trip_through_config_json(tmp_path):
    config = SpeechPruneConfig(
        pruning_method="phase2",
        pruning_rate=0.6,
        phase1_tokens=500,
        tokens_per_frame=10,
        phase1_temperature=0.5,
        query="question",
        pruning_seed=7,
        special_token_ids={"<|im_end|>": 3, "<|audio_eos|>": 4},
        text_config={"model_type": "qwen2", "hidden_size": 64, "num_attention_heads": 4, "vocab_size": 100},
    )
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "qwen2_audio_speechprune"
    assert saved["pruning_method"] == "phase2" and saved["pruning_rate"] == 0.6
    loaded = SpeechPruneConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == config.to_dict()
    assert loaded.pruning_settings() == config.pruning_settings()
    assert loaded.text_config.hidden_size == 64


def test_a_stock_qwen2_audio_config_json_gets_pruning_defaults(tmp_path):
    stock = Qwen2AudioConfig(text_config={"model_type": "qwen2", "hidden_size": 64, "num_attention_heads": 4})
    stock.save_pretrained(tmp_path)
    loaded = SpeechPruneConfig.from_pretrained(tmp_path, pruning_method="speechprune", pruning_rate=0.2)
    assert loaded.model_type == "qwen2_audio_speechprune"
    assert (loaded.pruning_method, loaded.pruning_rate) == ("speechprune", 0.2)
    assert loaded.text_config.to_dict() == stock.text_config.to_dict()
    assert loaded.audio_config.to_dict() == stock.audio_config.to_dict()
    assert loaded.audio_token_id == stock.audio_token_id
