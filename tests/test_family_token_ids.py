"""The released template-token ids the family adapters assume, against what transformers' own configs say.

The adapters' ``default_special_token_ids`` stand for the released tokenizers, which cannot be read offline.
Where a stock config class carries a release's ids as its defaults (its docstring names the checkpoint),
those defaults are an independent reference for the placeholder and end-of-turn ids.
"""

import pytest
import transformers

from speechprune.modeling.families import ADAPTERS

# family -> (config class, placeholder name); only the classes whose defaults are the release's ids.
PLACEHOLDERS = {
    "qwen2_5_omni_thinker": ("Qwen2_5OmniThinkerConfig", "<|AUDIO|>"),
    "audioflamingo3": ("AudioFlamingo3Config", "<sound>"),
    "musicflamingo": ("MusicFlamingoConfig", "<sound>"),
    "gemma4": ("Gemma4Config", "<|audio|>"),
    "glmasr": ("GlmAsrConfig", "<|pad|>"),
    "qwen3_asr": ("Qwen3ASRConfig", "<|audio_pad|>"),
}


@pytest.mark.parametrize("family", sorted(PLACEHOLDERS))
def test_the_placeholder_id_is_the_stock_configs_default(family):
    config_class, name = PLACEHOLDERS[family]
    config = getattr(transformers, config_class)()
    default = getattr(config, "audio_token_id", None) or config.audio_token_index
    assert ADAPTERS[family].default_special_token_ids[name] == default


def test_glmasr_end_of_turn_ids_are_the_configs_eos_ids():
    # GlmAsrConfig's text defaults stop generation on <|endoftext|>, <|user|> and <|observation|>.
    ids = ADAPTERS["glmasr"].default_special_token_ids
    eos = transformers.GlmAsrConfig().text_config.eos_token_id
    assert eos == [ids["<|endoftext|>"], ids["<|user|>"], ids["<|observation|>"]]


def test_qwen3_asr_end_of_turn_ids_are_the_configs_eos_and_pad_ids():
    ids = ADAPTERS["qwen3_asr"].default_special_token_ids
    config = transformers.Qwen3ASRConfig()
    assert tuple(config.eos_token_id) == (ids["<|endoftext|>"], ids["<|im_end|>"])
    assert config.pad_token_id == ids["<|im_end|>"]
