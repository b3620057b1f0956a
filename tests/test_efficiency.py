"""FLOP counts and the activation-memory estimate of speechprune.evaluation.efficiency.

The counts are checked three ways: against the paper's TFLOPs column (SPEC section 6), against
a closed-form count written here from the architecture, and (for the KV-cache term of the
memory estimate) against the cache a real prefill leaves behind.
"""

from __future__ import annotations

import doctest
import json

import pytest
import torch
from transformers import Qwen2AudioConfig, Qwen2Config, Qwen2ForCausalLM

from speechprune.evaluation import efficiency
from speechprune.evaluation.efficiency import (
    QWEN2_AUDIO_7B_CONFIG,
    activation_memory_estimate,
    audio_encoder_flops,
    llm_prefill_flops,
)

PAPER_TFLOPS = {0.0: 12.2, 0.2: 10.06, 0.4: 7.93, 0.6: 5.79, 0.8: 3.66}


def _seven_b() -> dict:
    return {k: v for k, v in json.loads(QWEN2_AUDIO_7B_CONFIG.read_text()).items() if not k.startswith("_")}


def _tiny_text(**overrides) -> Qwen2Config:
    kwargs = dict(
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=123,
    )
    return Qwen2Config(**{**kwargs, **overrides})


def analytic_llm_flops(text: dict, n: int, all_logits: bool = True) -> int:
    """Closed form: 2 FLOPs per multiply-add of every projection, the two attention products, the head."""
    hidden, inter, layers = text["hidden_size"], text["intermediate_size"], text["num_hidden_layers"]
    heads = text["num_attention_heads"]
    kv_heads = text.get("num_key_value_heads") or heads
    head_dim = hidden // heads
    projections = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2  # q, o and k, v
    mlp = 3 * hidden * inter
    attention = 2 * heads * n * n * head_dim  # scores Q K^T and the weighted sum A V
    per_layer = 2 * (n * (projections + mlp) + attention)
    head = 2 * (n if all_logits else 1) * hidden * text["vocab_size"]
    return layers * per_layer + head


def analytic_encoder_flops(audio: dict, windows: int) -> int:
    d, ffn, layers, mels = audio["d_model"], audio["encoder_ffn_dim"], audio["encoder_layers"], audio["num_mel_bins"]
    positions = audio["max_source_positions"]
    conv1 = 2 * (2 * positions) * mels * 3 * d  # stride 1 over 3000 frames, kernel 3
    conv2 = 2 * positions * d * 3 * d  # stride 2 down to 1500 positions
    per_layer = 2 * positions * (4 * d * d + 2 * d * ffn) + 2 * 2 * positions * positions * d
    return windows * (conv1 + conv2 + layers * per_layer)


@pytest.mark.parametrize("rate", sorted(PAPER_TFLOPS))
def test_7b_matches_paper_column(rate):
    # The column's implied token counts: 720 * (1 - rate) audio tokens + 112 text tokens.
    tokens = round(720 * (1 - rate)) + 112
    tflops = llm_prefill_flops(QWEN2_AUDIO_7B_CONFIG, tokens) / 1e12
    assert abs(tflops - PAPER_TFLOPS[rate]) / PAPER_TFLOPS[rate] < 0.03


def test_last_position_only_misses_paper():
    # The observation: without the head at every position the count is ~9% low at rate 0.
    tflops = llm_prefill_flops(QWEN2_AUDIO_7B_CONFIG, 832, logits="last") / 1e12
    assert 0.07 < (PAPER_TFLOPS[0.0] - tflops) / PAPER_TFLOPS[0.0] < 0.11


@pytest.mark.parametrize("n", [1, 262, 2362])
def test_7b_matches_closed_form(n):
    text = _seven_b()["text_config"]
    assert llm_prefill_flops(QWEN2_AUDIO_7B_CONFIG, n) == analytic_llm_flops(text, n)
    assert llm_prefill_flops(QWEN2_AUDIO_7B_CONFIG, n, logits="last") == analytic_llm_flops(text, n, False)


@pytest.mark.parametrize("n", [1, 7, 50])
def test_grouped_query_closed_form(n):
    cfg = _tiny_text()
    assert llm_prefill_flops(cfg, n) == analytic_llm_flops(cfg.to_dict(), n)


@pytest.mark.parametrize("logits", ["all", "last"])
def test_polynomial_equals_a_trace_at_any_length(logits):
    # Lengths off the probes, far beyond them and below them: the polynomial is the traced count.
    cfg = _tiny_text(vocab_size=131)
    key = efficiency._key(efficiency._sub_config(cfg, "text_config", "qwen2"))
    for n in (3, 100, 1000, 3001):
        assert llm_prefill_flops(cfg, n, logits=logits) == efficiency._traced_llm_flops(key, n, logits)


@pytest.mark.parametrize(
    ("count", "traces_every_length"),
    [(lambda n: 7 + 3 * n + 2 * n * n, False), (lambda n: n**3 + n, True)],
)
def test_counts_off_the_polynomial_are_traced(monkeypatch, count, traces_every_length):
    traced = []

    def fake_trace(key, n, logits):
        traced.append(n)
        return count(n)

    monkeypatch.setattr(efficiency, "_traced_llm_flops", fake_trace)
    efficiency._llm_flops_polynomial.cache_clear()
    try:
        assert llm_prefill_flops(_tiny_text(), 1000) == count(1000)
    finally:
        efficiency._llm_flops_polynomial.cache_clear()  # forget the fake coefficients
    assert (1000 in traced) == traces_every_length
    assert set(traced) - {1000} == set(efficiency._PROBES)


def test_meta_count_equals_real_forward_count():
    # The meta-device shortcut must count what a real forward with weights counts. Eager
    # attention, because torch's counter has no formula for the CPU flash kernel that sdpa picks.
    cfg = _tiny_text()
    cfg._attn_implementation = "eager"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Qwen2ForCausalLM(cfg).eval()
    counter = torch.utils.flop_counter.FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(inputs_embeds=torch.randn(1, 9, cfg.hidden_size))
    assert llm_prefill_flops(cfg, 9) == counter.get_total_flops()


def test_config_forms_agree(tmp_path):
    data = _seven_b()
    (tmp_path / "config.json").write_text(json.dumps(data))
    composite = Qwen2AudioConfig(**data)
    forms = [QWEN2_AUDIO_7B_CONFIG, str(QWEN2_AUDIO_7B_CONFIG), tmp_path, data, data["text_config"], composite]
    forms.append(composite.text_config)
    counts = {llm_prefill_flops(form, 300) for form in forms}
    assert len(counts) == 1


def test_encoder_matches_closed_form_and_is_linear_in_windows():
    audio = _seven_b()["audio_config"]
    one, three = audio_encoder_flops(QWEN2_AUDIO_7B_CONFIG, 1), audio_encoder_flops(QWEN2_AUDIO_7B_CONFIG, 3)
    assert one == analytic_encoder_flops({**audio, "max_source_positions": 1500}, 1)
    assert three == 3 * one


def test_kv_cache_term_equals_real_cache():
    cfg = _tiny_text(num_hidden_layers=2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Qwen2ForCausalLM(cfg).to(torch.bfloat16).eval()
    n = 17
    with torch.no_grad():
        out = model(inputs_embeds=torch.randn(1, n, cfg.hidden_size, dtype=torch.bfloat16), use_cache=True)
    cache_bytes = sum(
        layer.keys.numel() * layer.keys.element_size() + layer.values.numel() * layer.values.element_size()
        for layer in out.cache.layers
    )
    assert activation_memory_estimate(cfg, n, dtype_bytes=2)["kv_cache"] == cache_bytes


def test_memory_estimate_terms():
    cfg = _tiny_text()
    small, large = activation_memory_estimate(cfg, 10), activation_memory_estimate(cfg, 20)
    assert large["kv_cache"] == 2 * small["kv_cache"] and large["mlp"] == 2 * small["mlp"]
    assert small["total"] == small["kv_cache"] + small["hidden"] + small["layer_peak"] + small["logits"]
    eager, sdpa = activation_memory_estimate(cfg, 10), activation_memory_estimate(cfg, 10, attention="sdpa")
    # The eager score matrix: heads * n^2 in bf16 plus its float32 softmax.
    assert eager["attention"] - sdpa["attention"] == 4 * 10 * 10 * (2 + 4)
    assert activation_memory_estimate(cfg, 10, logits="all")["logits"] == 10 * cfg.vocab_size * 4


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: llm_prefill_flops(_tiny_text(), 0), "num_tokens"),
        (lambda: llm_prefill_flops(_tiny_text(), 5, logits="first"), "logits"),
        (lambda: llm_prefill_flops("/nonexistent/config.json", 5), "config"),
        (lambda: audio_encoder_flops(QWEN2_AUDIO_7B_CONFIG, 0), "num_windows"),
        (lambda: llm_prefill_flops(_seven_b()["audio_config"], 5), "config"),
        (lambda: activation_memory_estimate(_tiny_text(), 5, attention="flash"), "attention"),
    ],
)
def test_bad_arguments(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_docstring_examples():
    result = doctest.testmod(efficiency)
    assert result.attempted > 0 and result.failed == 0
