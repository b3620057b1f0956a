"""The model card export-model writes is the family's: its name, classes, token rate, W, defaults and processor."""

from __future__ import annotations

import functools

import pytest
from huggingface_hub import ModelCard

from speechprune.export_model import render_card
from speechprune.modeling.families import ADAPTERS
from speechprune.testing import tiny_family, tiny_speechprune

# Written from SPEC section 7 and docs/families.md, not read from the adapters:
# model_type -> (name, ms per token, W, tokens_per_frame default, project processor, fallback query start token)
EXPECTED = {
    "qwen2_audio": ("Qwen2-Audio", "40", 750, 25, "SpeechPruneProcessor", "<|audio_eos|>"),
    "qwen2_5_omni_thinker": (
        "Qwen2.5-Omni thinker",
        "40",
        750,
        25,
        "Qwen2_5OmniSpeechPruneProcessor",
        "<|audio_eos|>",
    ),
    "qwen3_omni_moe_thinker": (
        "Qwen3-Omni-MoE thinker",
        "76.92",
        390,
        13,
        "Qwen3OmniMoeSpeechPruneProcessor",
        "<|audio_end|>",
    ),
    "audioflamingo3": ("AudioFlamingo3", "40", 750, 25, "AudioFlamingo3SpeechPruneProcessor", "<sound>"),
    "musicflamingo": ("MusicFlamingo", "40", 750, 25, "MusicFlamingoSpeechPruneProcessor", "<|sound_eos|>"),
    "voxtral": ("Voxtral", "80", 375, 13, "VoxtralSpeechPruneProcessor", "[AUDIO]"),
    "gemma4": ("Gemma 4", "40", 750, 25, "Gemma4SpeechPruneProcessor", "<audio|>"),
    # Families without a project processor: the card says to pass query_mask.
    "glmasr": ("GLM-ASR", "80", 375, 13, None, "<|end_of_audio|>"),
    "qwen3_asr": ("Qwen3-ASR", "76.92", 390, 13, None, "<|audio_end|>"),
    "granite_speech": ("Granite Speech", "100", 300, 10, None, "<|audio|>"),
    "phi4_multimodal": ("Phi-4-multimodal", "80", 375, 13, None, "<|audio|>"),
}


@functools.cache
def _card(model_type: str) -> str:
    model = tiny_speechprune()[0] if model_type == "qwen2_audio" else tiny_family(model_type, pruning_method="full")
    settings = {**model.pruning_settings(), "pruning_method": "speechprune", "pruning_rate": 0.3, "query": "question"}
    return str(render_card(model, "tiny", settings, "me/tiny", "0123abcd", tiny=True))


@pytest.mark.parametrize("model_type", sorted(EXPECTED))
def test_the_card_states_the_familys_facts(model_type):
    name, ms, window, frame, processor, query_start = EXPECTED[model_type]
    adapter = ADAPTERS[model_type]
    card = _card(model_type)
    text = ModelCard(card).text
    assert f"| family (`model_type`) | {name} (`{model_type}`) |" in text
    assert f"one token per {ms} ms ({window} per 30 s)" in text
    assert f"| `phase1_tokens` | {window} |" in text and f"| `tokens_per_frame` | {frame} |" in text
    assert f"`original` the first {window} tokens" in text
    assert f"is the stock {name} (`{adapter.stock_class}`), bit for bit" in text
    assert f"`{adapter.pruning_class}`, a subclass of `{adapter.stock_class}`" in text
    for auto_class in ("AutoModel", *adapter.generation_auto_classes):
        assert f"`{auto_class}`" in text
    if processor:
        assert f"| processor (`AutoProcessor`) | `{processor}`: " in text
    else:
        assert f"| processor | the base's own ({name} has no SpeechPrune processor yet): pass `query_mask`" in text
    assert f"after the last `{query_start}` up to `{adapter.query_end_token}`" in text
    assert "| `pruning_rate` | 0.3 |" in text and "| `query` (processor) | `question` |" in text
    assert 'repo, revision = "me/tiny", "0123abcd"' in text
    assert model_type.replace("_", "-") in ModelCard(card).data.tags


@pytest.mark.parametrize("model_type", sorted(ADAPTERS))
def test_only_qwen2_audios_card_names_qwen2_audio(model_type):
    card = _card(model_type)
    assert ADAPTERS[model_type].name in card
    assert ("qwen2-audio" in card.lower()) == (model_type == "qwen2_audio")


def test_a_capped_familys_example_stays_under_its_cap():
    # Gemma 4 takes at most 30 s per clip: the usage example must not feed it 90 s.
    assert "np.zeros(16000 * 30, dtype=np.float32)  # your recording: 16 kHz mono, at most 30 s" in _card("gemma4")
    assert "np.zeros(16000 * 90, dtype=np.float32)  # your recording: 16 kHz mono, any length" in _card("voxtral")
