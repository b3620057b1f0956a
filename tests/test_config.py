"""SpeechPruneConfig and the one settings validator (pruning_settings.py) that it, pruning.py, the model's
per-call settings and efficiency.py share: the same values pass and fail everywhere."""

import json
import math

import numpy as np
import pytest
import torch
from transformers import Qwen2AudioConfig

from speechprune.evaluation import efficiency
from speechprune.modeling import pruning, pruning_settings
from speechprune.modeling.configuration_speechprune import SpeechPruneConfig
from speechprune.modeling.pruning_settings import resolve_settings, split_settings, with_family_defaults


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
        "positions": "compact",
        "attention_layer": 2,
        "dart_pivots": 8,
    }
    assert set(config.pruning_settings()) == set(pruning_settings.SETTING_NAMES)
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
        ("phase1_temperature", float("inf")),  # regression: the config accepted inf
        ("phase1_temperature", float("nan")),
        ("phase1_tokens", True),
        ("query", "everything"),
        ("pruning_seed", "seven"),
        ("pruning_seed", 1.5),
        ("positions", "absolute"),
        ("attention_layer", -1),
        ("attention_layer", 1.0),
        ("dart_pivots", 0),
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


def test_new_fields_and_family_default_round_trip(tmp_path):
    config = SpeechPruneConfig(
        pruning_method="dart", positions="original", attention_layer=0, dart_pivots=4, phase1_tokens=None
    )
    assert (config.positions, config.attention_layer, config.dart_pivots) == ("original", 0, 4)
    assert config.phase1_tokens is None  # "the family's default", filled in by the model
    config.save_pretrained(tmp_path)
    loaded = SpeechPruneConfig.from_pretrained(tmp_path)
    assert loaded.pruning_settings() == config.pruning_settings()


def test_numpy_scalars_are_accepted_and_stored_as_python_numbers(tmp_path):
    """Regression: pruning.py accepted numpy.int64 where the config refused it; now both accept and normalise."""
    config = SpeechPruneConfig(
        phase1_tokens=np.int64(500), pruning_rate=np.float32(0.25), pruning_seed=np.int64(-3), dart_pivots=np.int32(2)
    )
    assert type(config.phase1_tokens) is int and type(config.pruning_rate) is float and config.pruning_seed == -3
    config.save_pretrained(tmp_path)  # json holds Python numbers only
    assert json.loads((tmp_path / "config.json").read_text())["phase1_tokens"] == 500
    assert pruning.final_count(np.int64(2250), np.float64(0.2), np.int64(750)) == 600


def test_assignment_is_validated_too():
    config = SpeechPruneConfig()
    config.pruning_method = "none"
    assert config.pruning_method == "full"
    with pytest.raises(ValueError, match="pruning_rate"):
        config.pruning_rate = 1.5
    with pytest.raises(ValueError, match="phase1_temperature"):
        config.phase1_temperature = math.inf


# The same rule everywhere: (value, accepted) for each kind of setting, checked through every entry point.
COUNTS = [
    (1, True),
    (750, True),
    (np.int64(3), True),
    (0, False),
    (-2, False),
    (2.0, False),
    (True, False),
    ("3", False),
]
RATES = [(0, True), (0.5, True), (np.float64(0.2), True), (1.0, False), (-0.1, False), (math.nan, False),
         (True, False), ("0.2", False)]  # fmt: skip
TEMPERATURES = [(0.5, True), (2, True), (np.float32(0.5), True), (0.0, False), (-1.0, False), (math.inf, False),
                (math.nan, False), (True, False), ("1", False)]  # fmt: skip


def _accepts(call) -> bool:
    try:
        call()
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("value, accepted", COUNTS)
def test_counts_follow_one_rule_everywhere(value, accepted):
    audio = torch.randn(40, 8)
    text = audio[:2]
    entry_points = {
        "config": lambda: SpeechPruneConfig(phase1_tokens=value),
        "resolve_settings": lambda: resolve_settings({}, {"tokens_per_frame": value}),
        "final_count": lambda: pruning.final_count(100, 0.5, value),
        "phase1_select": lambda: pruning.phase1_select(audio, text, value),
        "uniform_select": lambda: pruning.uniform_select(100, value),
        "efficiency": lambda: efficiency.activation_memory_estimate(efficiency.QWEN2_AUDIO_7B_CONFIG, value),
    }
    assert {name: _accepts(call) for name, call in entry_points.items()} == dict.fromkeys(entry_points, accepted)


@pytest.mark.parametrize("value, accepted", RATES)
def test_rates_follow_one_rule_everywhere(value, accepted):
    entry_points = {
        "config": lambda: SpeechPruneConfig(pruning_rate=value),
        "resolve_settings": lambda: resolve_settings({}, {"pruning_rate": value}),
        "final_count": lambda: pruning.final_count(100, value),
    }
    assert {name: _accepts(call) for name, call in entry_points.items()} == dict.fromkeys(entry_points, accepted)


@pytest.mark.parametrize("value, accepted", TEMPERATURES)
def test_temperatures_follow_one_rule_everywhere(value, accepted):
    audio = torch.randn(40, 8)
    entry_points = {
        "config": lambda: SpeechPruneConfig(phase1_temperature=value),
        "resolve_settings": lambda: resolve_settings({}, {"phase1_temperature": value}),
        "phase1_select": lambda: pruning.phase1_select(audio, audio[:2], 5, temperature=value),
    }
    assert {name: _accepts(call) for name, call in entry_points.items()} == dict.fromkeys(entry_points, accepted)


def test_unknown_setting_names_are_errors_listing_the_known_ones():
    for misspelt in ("phase1_token", "tokens_per_frames", "phase1_temp", "pruning_rat", "dart_pivot", "rate"):
        with pytest.raises(ValueError, match="known settings: pruning_method, pruning_rate, phase1_tokens") as err:
            split_settings({misspelt: 0, "attention_mask": None})
        assert repr(misspelt) in str(err.value)
        with pytest.raises(ValueError, match="unknown pruning setting"):
            resolve_settings({}, {misspelt: 0})
    with pytest.raises(ValueError, match="did you mean 'phase1_tokens'"):
        resolve_settings({}, {"phase1_token": 0})
    # Arguments of the stock model and of generate pass through untouched.
    stock = {"attention_mask": 1, "position_ids": 2, "temperature": 0.7, "input_features": 3, "labels": 4}
    assert split_settings({**stock, "positions": "original"}) == ({"positions": "original"}, stock)


def test_resolve_settings_layers_defaults_config_and_call():
    config = SpeechPruneConfig(pruning_method="speechprune", pruning_rate=0.2)
    settings = resolve_settings(config.pruning_settings(), {"pruning_rate": 0.6, "pruning_seed": None})
    assert settings == {**config.pruning_settings(), "pruning_rate": 0.6}
    assert resolve_settings({}, {}) == pruning_settings.SETTING_DEFAULTS


def test_family_defaults_follow_spec_section_7():
    """k1 = W; f = floor(1 / t + 0.5); given values are kept."""
    for t, window, f in [(0.04, 750, 25), (0.08, 375, 13), (1 / 13, 390, 13), (0.1, 300, 10), (0.16, 188, 6)]:
        filled = with_family_defaults({"phase1_tokens": None, "tokens_per_frame": None}, window_tokens=window,
                                      seconds_per_token=t)  # fmt: skip
        assert (filled["phase1_tokens"], filled["tokens_per_frame"]) == (window, f)
        assert filled["tokens_per_frame"] == math.floor(1 / t + 0.5)
    kept = with_family_defaults(
        {"phase1_tokens": 100, "tokens_per_frame": 5}, window_tokens=750, seconds_per_token=0.04
    )
    assert (kept["phase1_tokens"], kept["tokens_per_frame"]) == (100, 5)


def test_the_model_refuses_misspelt_per_call_settings_and_takes_the_new_ones():
    """Regression: `phase1_token=0` and friends ran silently with the defaults."""
    from speechprune.testing import tiny_speechprune

    model, processor = tiny_speechprune(pruning_method="speechprune", pruning_rate=0.5)
    wave = np.random.default_rng(0).standard_normal(16000 * 35).astype(np.float32) * 0.1
    prompt = processor.spiral_prompt("Which city?", ["Oslo", "Rome", "Lima", "Kyiv"])
    inputs = processor(text=[prompt], audio=[wave], sampling_rate=16000, return_tensors="pt")
    for misspelt in ("phase1_token", "tokens_per_frames", "phase1_temp"):
        with pytest.raises(ValueError, match=f"unknown pruning setting '{misspelt}'.*known settings"):
            model(**inputs, **{misspelt: 0})
    model(**inputs, pruning_method="dart", dart_pivots=3)
    tokens = model.last_selection[0]["num_audio_tokens"]
    assert model.last_selection[0]["num_kept"] == pruning.final_count(tokens, 0.5)
    with pytest.raises(ValueError, match="dart_pivots"):
        model(**inputs, pruning_method="dart", dart_pivots=0)
    with pytest.raises(ValueError, match="positions"):  # not yet built here: refused, never ignored
        model(**inputs, positions="original")
