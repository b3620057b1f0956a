"""FLOP counts of every family's language model and audio encoder (speechprune.evaluation.efficiency).

Each shortcut is checked against something independent: a real forward with weights and real
routing counted by torch's FlopCounterMode, a closed form written here, and the stock length
formulas of transformers for the token counts.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import Gemma4AudioFeatureExtractor, Gemma4Processor
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
from transformers.models.qwen2_5_omni import modeling_qwen2_5_omni
from transformers.models.qwen3_omni_moe import modeling_qwen3_omni_moe

from speechprune.evaluation import architectures, efficiency
from speechprune.evaluation.architectures import FAMILIES, audio_tokens, released_architecture
from speechprune.evaluation.efficiency import QWEN2_AUDIO_7B_CONFIG, family_audio_encoder_flops, llm_prefill_flops
from speechprune.modeling.processing_speechprune import window_token_count


def _real_count(model: torch.nn.Module, **inputs) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(**inputs)
    return int(counter.get_total_flops())


def _seeded(build):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build().eval()


TINY_MOE = {
    "model_type": "qwen3_omni_moe_text",
    "hidden_size": 32,
    "intermediate_size": 48,
    "moe_intermediate_size": 24,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "num_experts": 6,
    "num_experts_per_tok": 2,
    "vocab_size": 50,
}


def test_moe_meta_count_equals_a_routed_forward():
    # Real routing on real weights sends each token through k experts: the meta count must match.
    data = dict(TINY_MOE)
    config = CONFIG_MAPPING[data.pop("model_type")](**data)
    config._attn_implementation = "eager"
    config._experts_implementation = "eager"
    stack = _seeded(lambda: modeling_qwen3_omni_moe.Qwen3OmniMoeThinkerTextModel(config))
    n = 11
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        hidden = stack(inputs_embeds=torch.randn(1, n, 32)).last_hidden_state
        torch.nn.functional.linear(hidden, torch.randn(50, 32))  # the thinker's lm_head
    assert llm_prefill_flops(TINY_MOE, n) == counter.get_total_flops()


def test_moe_closed_form():
    n, h, heads, kv, hd, e, k, i, v = 13, 32, 4, 2, 16, 6, 2, 24, 50
    per_token = h * heads * hd * 2 + h * kv * hd * 2 + h * e + k * 3 * h * i  # q, o; k, v; router; experts
    attention = 2 * heads * n * n * hd
    expected = 2 * (2 * (n * per_token + attention) + n * h * v)
    assert llm_prefill_flops(TINY_MOE, n) == expected


def test_omni_thinker_stack_counts_like_qwen2():
    # Qwen2.5-Omni's thinker decoder is Qwen2 with M-RoPE (no products): same count as the Qwen2 stack.
    sizes = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4)
    sizes.update(num_key_value_heads=2, vocab_size=77)
    rope = {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]}  # sums to head_dim / 2
    omni = llm_prefill_flops({"model_type": "qwen2_5_omni_text", "rope_parameters": rope, **sizes}, 40)
    assert omni == llm_prefill_flops({"model_type": "qwen2", **sizes}, 40)
    thinker = {"text_config": {"model_type": "qwen2_5_omni_text", "rope_parameters": rope, **sizes}}
    assert llm_prefill_flops({"thinker_config": thinker}, 40) == omni


def test_gemma4_meta_count_equals_a_real_forward():
    data = {
        "model_type": "gemma4_text",
        "vocab_size": 64,
        "vocab_size_per_layer_input": 64,
        "hidden_size": 32,
        "intermediate_size": 48,
        "num_hidden_layers": 4,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 16,
        "global_head_dim": 32,
        "hidden_size_per_layer_input": 8,
        "num_kv_shared_layers": 2,
        "use_double_wide_mlp": True,
        "sliding_window": 512,
        "layer_types": ["sliding_attention", "full_attention"] * 2,
    }
    config = CONFIG_MAPPING["gemma4_text"](**{k: v for k, v in data.items() if k != "model_type"})
    config._attn_implementation = "eager"
    from transformers import Gemma4ForCausalLM

    model = _seeded(lambda: Gemma4ForCausalLM(config))
    n = 9
    inputs = dict(inputs_embeds=torch.randn(1, n, 32), per_layer_inputs=torch.randn(1, n, 4, 8), use_cache=False)
    assert llm_prefill_flops(data, n) == _real_count(model, **inputs)


def test_windowed_layer_formula_equals_a_traced_whisper_encoder():
    # The closed form used for the Omni encoders, with one window spanning everything, is Whisper.
    audio = released_architecture("qwen2_audio").audio_config
    d, mel = audio["d_model"], audio["num_mel_bins"]
    convs = 2 * 3000 * d * mel * 3 + 2 * 1500 * d * d * 3
    traced = efficiency.audio_encoder_flops(QWEN2_AUDIO_7B_CONFIG, 1)
    assert traced == convs + efficiency._windowed_layers_flops(audio, 1500, 1500)


def test_voxtral_encoder_is_whisper_on_every_chunk_plus_projector():
    audio = released_architecture("voxtral").audio_config
    d, mel = audio["d_model"], audio["num_mel_bins"]
    whisper = 2 * 3000 * d * mel * 3 + 2 * 1500 * d * d * 3 + efficiency._windowed_layers_flops(audio, 1500, 1500)
    projector = 2 * 1125 * (4 * 5120 // 4 * 4 * 3072 + 3072 * 3072)  # 4 frames stacked: 5120 -> 3072 -> 3072
    assert family_audio_encoder_flops("voxtral", 90) == 3 * whisper + projector


def test_gemma4_encoder_meta_count_equals_a_real_forward():
    tiny = {
        "model_type": "gemma4_audio",
        "hidden_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "subsampling_conv_channels": [128, 8],  # the first stays 128 (the mel bins)
        "output_proj_dims": 24,
    }
    config = CONFIG_MAPPING["gemma4_audio"](**{k: v for k, v in tiny.items() if k != "model_type"})
    config._attn_implementation = "eager"
    from transformers import Gemma4AudioModel

    model = _seeded(lambda: Gemma4AudioModel(config))
    features, mask = torch.randn(2, 2999, 128), torch.ones(2, 2999, dtype=torch.bool)
    real = _real_count(model, input_features=features, attention_mask=mask)
    assert efficiency._family_traced(efficiency._key(tiny), 2) == real > 0
    # 90 s are three 30 s clips (the model's cap), encoded as one batch.
    three = family_audio_encoder_flops("gemma4", 90)
    assert three == efficiency._family_traced(efficiency._key({"model_type": "gemma4_audio"}), 3) + 2 * 2250 * 1536**2


def test_glmasr_encoder_is_whisper_on_every_window_plus_projector():
    # No padding mask, RoPE positions (no products): every 30 s window costs a Whisper-large pass; the
    # projector maps 4 stacked positions (5120) to 2 x 2048 and then 2048, on all 375 rows of each window.
    audio = released_architecture("glmasr").audio_config
    d, f, mel, layers = audio["hidden_size"], audio["intermediate_size"], audio["num_mel_bins"], 32
    whisper = 2 * 3000 * d * mel * 3 + 2 * 1500 * d * d * 3
    whisper += layers * (2 * 1500 * (4 * d * d + 2 * d * f) + 4 * 1500 * 1500 * d)
    projector = 2 * 1125 * (5120 * 4096 + 4096 * 2048)
    assert family_audio_encoder_flops("glmasr", 90) == 3 * whisper + projector
    # Past the processor's 21 windows (630 s) nothing more reaches the model.
    assert family_audio_encoder_flops("glmasr", 700) == family_audio_encoder_flops("glmasr", 630)


def test_qwen3_asr_encoder_count_equals_a_real_forward(monkeypatch):
    """The closed form (shared with Qwen3-Omni) against a tiny Qwen3-ASR encoder and projector, run for real."""
    from transformers import Qwen3ASRConfig
    from transformers.models.qwen3_asr.modeling_qwen3_asr import Qwen3ASRModel

    tiny = {"d_model": 16, "encoder_layers": 2, "encoder_attention_heads": 2, "encoder_ffn_dim": 24}
    tiny |= {"num_mel_bins": 128, "downsample_hidden_size": 8, "output_dim": 32, "n_window": 50, "n_window_infer": 800}
    text = {"model_type": "qwen3", "hidden_size": 32, "intermediate_size": 8, "num_hidden_layers": 1}
    text |= {"num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16, "vocab_size": 10}
    config = Qwen3ASRConfig(audio_config=tiny, text_config=text)
    config.audio_config._attn_implementation = "eager"  # its matrix products are what the counter sees
    model = _seeded(lambda: Qwen3ASRModel(config))
    seconds = 16.0  # two whole 8 s attention windows (the closed form counts a last window as full)
    features, mask = torch.randn(1, 128, 1600), torch.ones(1, 1600, dtype=torch.long)
    real = _real_count(model.get_audio_features, input_features=features, input_features_mask=mask)
    arch = released_architecture("qwen3_asr")
    fake = types.SimpleNamespace(**{**vars(arch), "audio_config": {"model_type": "qwen3_asr_encoder", **tiny}})
    fake.text_config = {**arch.text_config, "hidden_size": 32}
    monkeypatch.setattr(architectures, "released_architecture", lambda family: fake)
    assert family_audio_encoder_flops("qwen3_asr", seconds) == real > 0


@pytest.mark.parametrize("seconds", [0.5, 7.3, 30, 31.2, 90, 125.04])
def test_token_counts_follow_the_stock_formulas(seconds):
    samples = round(seconds * 16000)
    frames = samples // 160
    qwen3 = modeling_qwen3_omni_moe._get_feat_extract_output_lengths(torch.tensor(frames), n_window=50)
    assert audio_tokens("qwen3_omni_moe", seconds) == int(qwen3)
    encoder = modeling_qwen2_5_omni.Qwen2_5OmniAudioEncoder
    _, omni = encoder._get_feat_extract_output_lengths(None, torch.tensor(frames))
    assert audio_tokens("qwen2_5_omni", seconds) == int(omni)
    windows = [window_token_count(min(3000, frames - s)) for s in range(0, frames, 3000)]
    assert audio_tokens("qwen2_audio", seconds) == sum(windows) == audio_tokens("audioflamingo3", seconds)
    fake = types.SimpleNamespace(feature_extractor=Gemma4AudioFeatureExtractor(), audio_seq_length=750)
    clips = [min(480000, samples - s) for s in range(0, samples, 480000)]
    stock = sum(Gemma4Processor._compute_audio_num_tokens(fake, np.zeros(c), 16000) for c in clips)
    assert audio_tokens("gemma4", seconds) == stock
    assert audio_tokens("voxtral", seconds) == 375 * len(range(0, frames, 3000))
    from transformers import GlmAsrProcessor, Qwen3ASRProcessor

    # Both stock processors count from the mel frames alone (methods that read nothing from the instance).
    assert audio_tokens("glmasr", seconds) == int(GlmAsrProcessor._get_audio_token_length(None, torch.tensor(frames)))
    assert audio_tokens("qwen3_asr", seconds) == int(
        Qwen3ASRProcessor._get_audio_token_length(None, torch.tensor(frames))
    )


def test_released_architectures_build_and_name_their_source():
    for family in FAMILIES:
        arch = released_architecture(family)
        assert arch.family == family and arch.source and arch.checkpoint
        assert arch.tokens_per_30s == audio_tokens(family, 30)
    assert released_architecture("qwen2_audio").text_config == efficiency._sub_config(
        QWEN2_AUDIO_7B_CONFIG, "text_config", "qwen2"
    ) | {"model_type": "qwen2"}
    with pytest.raises(ValueError, match="known: qwen2_audio"):
        released_architecture("kyutai")


def test_families_table_row_per_family():
    from benchmarks.flops_table import families_table

    lines = families_table(["qwen2_audio", "voxtral"])
    assert len(lines) == 4
    qwen = lines[2].split(" | ")
    assert qwen[3] == f"{llm_prefill_flops(QWEN2_AUDIO_7B_CONFIG, 750 + 112) / 1e12:.2f}"


def test_docstring_examples():
    import doctest

    assert doctest.testmod(architectures).failed == 0


def test_bench_prefill_runs_a_family_on_a_scaled_shape(capsys):
    from benchmarks import bench_prefill

    args = ["--family", "gemma4", "--repeats", "1", "--layer-factor", "0.06", "--width-factor", "0.07"]
    assert bench_prefill.main(args) == 0
    out = capsys.readouterr().out
    assert "| full | 2362 |" in out and "| 0.8 | 262 |" in out  # N = 2250 and W = 750 for 90 s, + 112 text
    scaled = bench_prefill.scaled_text_config("gemma4", 0.06, 0.07)
    assert scaled["layer_types"][-1] == "full_attention" and len(scaled["layer_types"]) == scaled["num_hidden_layers"]
