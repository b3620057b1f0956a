"""What a prefill costs: FLOPs counted on the ``meta`` device, and an activation-memory estimate.

SpeechPrune shortens the sequence that the language model prefills. This module puts numbers on
that without loading weights: the model is built on the ``meta`` device (shapes only, no memory)
and run under :class:`torch.utils.flop_counter.FlopCounterMode`, which adds up ``2 * m * n * k``
for every matrix product, convolution and attention kernel it sees.

Conventions, chosen to match the paper's Table 1 (SPEC section 6):

- The LLM count covers the decoder layers and the output head applied at *every* position, as
  the paper's counter did (counting the last position only misses its column by 9% at rate 0).
  The input embedding lookup costs no FLOPs. The audio encoder is counted apart.
- FLOPs are counted for one sequence (batch 1) of ``num_tokens`` positions, attention dense
  and causal-agnostic (``torch`` counts a causal kernel as the full ``n x n`` product).
- The LLM count is a polynomial ``c + a n + b n^2`` in the length ``n``, so an architecture is
  traced at four lengths once and every other length is arithmetic (:func:`llm_prefill_flops`):
  a run can cost each sample's own token count.

Example:
    >>> from speechprune.evaluation.efficiency import QWEN2_AUDIO_7B_CONFIG, llm_prefill_flops
    >>> round(llm_prefill_flops(QWEN2_AUDIO_7B_CONFIG, 720 + 112) / 1e12, 2)  # the paper's 12.2 at rate 0
    12.2
"""

from __future__ import annotations

import functools
import importlib
import json
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoModel, AutoModelForCausalLM, PretrainedConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from speechprune.modeling.pruning_settings import check_count  # the one validator of counts

ConfigLike = PretrainedConfig | dict | str | os.PathLike

#: The public architecture of Qwen2-Audio-7B(-Instruct) (no weights), shipped with the package so
#: that FLOP counts and benchmarks work offline: a copy of the project's shared fixture.
QWEN2_AUDIO_7B_CONFIG = Path(__file__).with_name("qwen2-audio-7b-config.json")
# Sequence lengths traced to find an architecture's LLM count polynomial: three fix it, the fourth checks it.
_PROBES = (64, 128, 192, 256)


def _as_dict(config: ConfigLike) -> dict:
    """Read a config given as an object, a dict, a ``config.json`` path or a folder holding one."""
    if isinstance(config, PretrainedConfig):
        return config.to_dict()
    if isinstance(config, dict):
        return dict(config)
    if isinstance(config, (str, os.PathLike)):
        path = Path(config)
        if path.is_dir():
            path = path / "config.json"
        if not path.is_file():
            raise ValueError(f"config: no config.json at {str(config)!r}")
        return json.loads(path.read_text())
    raise ValueError(f"config: expected a PretrainedConfig, a dict or a path, got {type(config).__name__}")


def _sub_config(config: ConfigLike, key: str, default_type: str) -> dict:
    """The ``text_config`` / ``audio_config`` part of a composite config, or the config itself.

    An Omni model's parts sit one level deeper, in its ``thinker_config`` (the talker is never pruned).
    """
    data = _as_dict(config)
    thinker = data.get("thinker_config")
    if thinker is not None:
        data = thinker.to_dict() if isinstance(thinker, PretrainedConfig) else dict(thinker)
    sub = data.get(key, data)
    if isinstance(sub, PretrainedConfig):
        sub = sub.to_dict()
    sub = {k: v for k, v in sub.items() if not k.startswith("_")}
    sub.setdefault("model_type", default_type)
    return sub


def _key(data: dict) -> str:
    """A hashable, order-independent key for the lru caches (configs themselves are unhashable)."""
    return json.dumps(data, sort_keys=True, default=str)


def _build(data: dict, factory, device: str = "meta") -> torch.nn.Module:
    model_type = data["model_type"]
    if model_type not in CONFIG_MAPPING:
        raise ValueError(f"config: unknown model_type {model_type!r}")
    config = CONFIG_MAPPING[model_type](**{k: v for k, v in data.items() if k != "model_type"})
    # sdpa runs on `meta` (it falls back to its math form there); flash kernels would not.
    config._attn_implementation = "sdpa"
    try:
        with torch.device(device):
            model = factory.from_config(config, attn_implementation="sdpa")
    except ValueError as err:  # e.g. an encoder config where a causal LM is needed
        raise ValueError(f"config: cannot build a {factory.__name__} from model_type {model_type!r}: {err}") from err
    return model.eval()


# Text model types whose language model has no causal-LM auto class: the thinker's decoder stack
# (transformers class name), to which the thinker adds a plain ``lm_head``.
_TEXT_STACKS = {
    "qwen2_5_omni_text": ("qwen2_5_omni", "Qwen2_5OmniThinkerTextModel"),
    "qwen3_omni_moe_text": ("qwen3_omni_moe", "Qwen3OmniMoeThinkerTextModel"),
}


class _StackWithHead(torch.nn.Module):
    """A decoder stack and the ``hidden -> vocab`` output head, called like a causal LM (meta counts only)."""

    def __init__(self, stack: torch.nn.Module):
        super().__init__()
        self.model, self.config = stack, stack.config
        self.lm_head = torch.nn.Linear(stack.config.hidden_size, stack.config.vocab_size, bias=False)

    def forward(self, *, logits_to_keep: int, **kwargs):
        hidden = self.model(**kwargs).last_hidden_state
        return self.lm_head(hidden[:, -logits_to_keep:] if logits_to_keep else hidden)


def build_language_model(data: dict, device: str = "meta") -> torch.nn.Module:
    """The language model of a text config dict: its causal-LM class, or its thinker stack plus a head.

    On ``meta`` (default) it holds shapes only; on a real device it has random weights in the
    default dtype (``benchmarks/bench_prefill.py --family``). Call it with ``inputs_embeds``,
    ``logits_to_keep`` and (Gemma 4) ``per_layer_inputs``; a thinker stack returns the logits tensor.
    """
    if data["model_type"] not in _TEXT_STACKS:
        return _build(data, AutoModelForCausalLM, device)
    module_name, class_name = _TEXT_STACKS[data["model_type"]]
    module = importlib.import_module(f"transformers.models.{module_name}.modeling_{module_name}")
    config = CONFIG_MAPPING[data["model_type"]](**{k: v for k, v in data.items() if k != "model_type"})
    config._attn_implementation = "sdpa"
    with torch.device(device):
        return _StackWithHead(getattr(module, class_name)(config)).eval()


def _routed_experts(experts: torch.nn.Module, hidden: torch.Tensor, top_k_index: torch.Tensor, top_k_weights):
    """A mixture-of-experts block's products as routing makes them: every token through ``k`` experts.

    Routing reads values (which experts a token picks), which ``meta`` tensors lack; the count does
    not depend on the choice, so every token goes through the first ``k`` experts' weights.
    """
    out = torch.zeros_like(hidden)
    for expert in range(top_k_index.shape[-1]):
        gate, up = torch.nn.functional.linear(hidden, experts.gate_up_proj[expert]).chunk(2, dim=-1)
        out = out + torch.nn.functional.linear(experts.act_fn(gate) * up, experts.down_proj[expert])
    return out


@functools.lru_cache(maxsize=256)
def _traced_llm_flops(key: str, num_tokens: int, logits: str) -> int:
    """The count of one length, traced on the ``meta`` device (``key``: :func:`_key` of the text config)."""
    data = json.loads(key)
    model = build_language_model(data)
    for module in model.modules():  # mixture-of-experts blocks (Qwen3-Omni): k experts per token
        if hasattr(module, "gate_up_proj") and hasattr(module, "down_proj") and hasattr(module, "act_fn"):
            module.forward = functools.partial(_routed_experts, module)
    config = model.config
    embeds = torch.empty(1, num_tokens, config.hidden_size, device="meta")
    positions = torch.arange(num_tokens, device="meta").unsqueeze(0)
    # A ready-made 4-D mask (one per layer type where the config has layer types) skips
    # transformers' mask builder, which reads tensor values that `meta` tensors do not have.
    causal = torch.ones(num_tokens, num_tokens, dtype=torch.bool, device="meta").tril()[None, None]
    layer_types = getattr(config, "layer_types", None)
    masks = {layer_type: causal for layer_type in set(layer_types)} if layer_types else causal
    extra = {}
    if getattr(config, "hidden_size_per_layer_input", 0):  # Gemma 4: the per-layer inputs are a lookup (no FLOPs)
        shape = (1, num_tokens, config.num_hidden_layers, config.hidden_size_per_layer_input)
        extra["per_layer_inputs"] = torch.empty(shape, device="meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(
            inputs_embeds=embeds,
            attention_mask=masks,
            position_ids=positions,
            use_cache=False,
            logits_to_keep=0 if logits == "all" else 1,
            **extra,
        )
    return int(counter.get_total_flops())


@functools.lru_cache(maxsize=64)
def _llm_flops_polynomial(key: str, logits: str) -> tuple[Fraction, Fraction, Fraction] | None:
    """``(c, a, b)`` such that the traced count of ``n`` positions is ``c + a n + b n^2``; ``None`` if it is not.

    FlopCounterMode counts only matrix products: the projections, the MLP and (``logits="all"``) the
    output head once per position, the attention scores and their weighted sum once per pair of
    positions, and (``logits="last"``) the head once. So three traced lengths fix the three
    coefficients exactly (rational arithmetic), and a fourth checks the form: an architecture with
    other terms gets ``None`` and every length is traced.
    """
    (n1, n2, n3, n4), (f1, f2, f3, f4) = _PROBES, [_traced_llm_flops(key, n, logits) for n in _PROBES]
    # Divided differences of the quadratic through (n1, f1), (n2, f2), (n3, f3).
    slope12, slope23 = Fraction(f2 - f1, n2 - n1), Fraction(f3 - f2, n3 - n2)
    b = (slope23 - slope12) / (n3 - n1)
    a = slope12 - b * (n1 + n2)
    c = f1 - a * n1 - b * n1 * n1
    return (c, a, b) if c + a * n4 + b * n4 * n4 == f4 else None


def llm_prefill_flops(config: ConfigLike, num_tokens: int, *, logits: str = "all") -> int:
    """FLOPs of the language model's prefill over ``num_tokens`` positions (batch 1).

    Args:
        config: a ``Qwen2AudioConfig`` (its ``text_config`` is used), a text config such as
            ``Qwen2Config``, a dict of either, or a path to a ``config.json`` (or its folder).
        num_tokens: length of the prefilled sequence, audio and text tokens together.
        logits: ``"all"`` applies the output head at every position, as the paper's counter
            did; ``"last"`` only at the last one, as ``generate()`` does.

    Returns:
        The count from ``torch.utils.flop_counter`` (decoder layers + output head), exact. The
        count is a polynomial in ``num_tokens`` whose coefficients come from four traced lengths,
        cached per (architecture, ``logits``), so any further length costs no tracing (an
        architecture whose counts do not fit the polynomial is traced at every length).

    Example:
        >>> from transformers import Qwen2Config
        >>> cfg = Qwen2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        ...                   num_attention_heads=4, num_key_value_heads=2, vocab_size=100)
        >>> llm_prefill_flops(cfg, 10)  # 10 * 2 * 80128 multiply-adds + 2 layers * 4 * 4 * 10**2 * 16
        1653760
    """
    num_tokens = check_count("num_tokens", num_tokens)
    if logits not in ("all", "last"):
        raise ValueError(f"logits: expected 'all' or 'last', got {logits!r}")
    key = _key(_sub_config(config, "text_config", "qwen2"))
    polynomial = _llm_flops_polynomial(key, logits)
    if polynomial is None:
        return _traced_llm_flops(key, num_tokens, logits)
    c, a, b = polynomial
    return int(c + a * num_tokens + b * num_tokens * num_tokens)


@functools.lru_cache(maxsize=64)
def _encoder_flops(key: str, num_windows: int) -> int:
    data = json.loads(key)
    model = _build(data, AutoModel)
    config = model.config
    frames = config.max_source_positions * model.conv1.stride[0] * model.conv2.stride[0]
    features = torch.empty(num_windows, config.num_mel_bins, frames, device="meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(features)
    return int(counter.get_total_flops())


def audio_encoder_flops(config: ConfigLike, num_windows: int) -> int:
    """FLOPs of the Qwen2-Audio encoder over ``num_windows`` 30 s windows.

    Every window is encoded at its full 3000 mel frames (1500 encoder positions) whatever its
    content, as the stock model does, so the count is linear in ``num_windows``: a 90 s
    recording costs three windows. The audio-to-text projector (``d_model x hidden``, about
    0.3% of a window for the 7B model) is not included.

    Args:
        config: a ``Qwen2AudioConfig`` (its ``audio_config`` is used), a
            ``Qwen2AudioEncoderConfig``, a dict of either, or a path to a ``config.json``.
        num_windows: number of 30 s windows.

    Example:
        >>> from transformers import Qwen2AudioEncoderConfig
        >>> cfg = Qwen2AudioEncoderConfig(d_model=32, encoder_layers=1, encoder_attention_heads=2,
        ...                               encoder_ffn_dim=64, num_mel_bins=128, max_source_positions=1500)
        >>> audio_encoder_flops(cfg, 2) == 2 * audio_encoder_flops(cfg, 1)
        True
    """
    num_windows = check_count("num_windows", num_windows)
    return _encoder_flops(_key(_sub_config(config, "audio_config", "qwen2_audio_encoder")), num_windows)


def _meta_flops(module: torch.nn.Module, *args) -> int:
    """FLOPs of one call of ``module`` (already on ``meta``) on ``args``."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(*args)
    return int(counter.get_total_flops())


def _linear_flops(rows: int, *widths: int) -> int:
    """A chain of linear maps ``widths[0] -> widths[1] -> ...`` on ``rows`` rows (projectors, heads)."""
    return sum(2 * rows * a * b for a, b in zip(widths, widths[1:]))


def _windowed_layers_flops(audio: dict, positions: int, window: int) -> int:
    """Whisper-style encoder layers over ``positions``, each attending to the ``window`` positions of its block.

    Per layer: q, k, v and the output projection (``4 d^2`` multiply-adds per position), the MLP
    (``2 d f``), and attention scores plus weighted sum (``2 w d`` per position): the products
    :class:`FlopCounterMode` counts (a test checks this against a traced Whisper encoder).
    """
    d, f = audio["d_model"], audio["encoder_ffn_dim"]
    per_layer = 2 * positions * (4 * d * d + 2 * d * f) + 4 * positions * window * d
    return audio["encoder_layers"] * per_layer


def family_audio_encoder_flops(family: str, seconds: float) -> int:
    """FLOPs of ``family``'s released audio encoder and projector on ``seconds`` of audio (one recording).

    The count ends with the rows the language model receives (the projector into its embedding
    space included). How each family's encoder sees a long recording (SPEC section 2, ``families.md``):

    - Qwen2-Audio, AudioFlamingo3, MusicFlamingo: 30 s windows, each encoded at its full 3,000 mel
      frames (traced on ``meta``; AudioFlamingo3's encoder has Qwen2-Audio's layers and pooling).
    - Voxtral: 30 s chunks of 3,000 frames (the last one padded, as the model sees it), traced; GLM-ASR
      likewise (30 s windows padded to 3,000 frames, no padding mask; at most 21 windows, its processor's cap).
    - Gemma 4: clips of at most 30 s (the model's cap), traced (its conformer runs in eager mode).
    - Qwen2.5-Omni: one pass over the recording's frames, attention in 2 s blocks (100 positions);
      Qwen3-Omni and Qwen3-ASR: 100-frame chunks through three stride-2 2-D convolutions (13 positions each),
      attention in 8 s blocks (104 positions). These two are counted from their matrix products
      (the forward splits on tensor values, which ``meta`` lacks); every chunk is padded to full length.

    Example:
        >>> round(family_audio_encoder_flops("voxtral", 90) / 1e12, 2)
        6.98
    """
    from .architectures import audio_tokens, released_architecture

    arch = released_architecture(family)
    audio, hidden = arch.audio_config, arch.text_config["hidden_size"]
    tokens = audio_tokens(family, seconds)
    frames = round(seconds * 16000) // 160
    windows = -(-frames // 3000)
    key = _key(audio)
    if family in ("qwen2_audio", "audioflamingo3", "musicflamingo"):
        whisper = {**audio, "model_type": "qwen2_audio_encoder"}
        projector = (audio["d_model"], hidden) if family == "qwen2_audio" else (audio["d_model"], hidden, hidden)
        return _encoder_flops(_key(whisper), windows) + _linear_flops(tokens, *projector)
    if family == "voxtral":
        return _family_traced(key, windows) + _linear_flops(tokens, audio["intermediate_size"] * 4, hidden, hidden)
    if family == "glmasr":  # the kept windows, each at 3000 frames; the projector sees all 375 rows of each
        kept = min(windows, 21)
        return _family_traced(key, kept) + _linear_flops(kept * 375, audio["intermediate_size"], 2 * hidden, hidden)
    if family == "gemma4":
        clips = -(-round(seconds * 16000) // 480000)
        return _family_traced(key, clips) + _linear_flops(tokens, audio.get("output_proj_dims", 1536), hidden)
    d, mel = audio["d_model"], audio["num_mel_bins"]
    if family == "qwen2_5_omni":
        chunk = 2 * audio["n_window"]
        padded = -(-frames // chunk) * chunk
        convs = 2 * padded * d * mel * 3 + 2 * (padded // 2) * d * d * 3
        layers = _windowed_layers_flops(audio, padded // 2, audio["n_window"])
        return convs + layers + _linear_flops(tokens, d, audio["output_dim"])
    if family in ("qwen3_omni_moe", "qwen3_asr"):  # Qwen3-ASR's encoder and projector are Qwen3-Omni's shape
        chunk, channels = 2 * audio["n_window"], audio["downsample_hidden_size"]
        chunks = -(-frames // chunk)
        shapes = [(mel, chunk)]
        for _ in range(3):  # kernel 3, stride 2, padding 1 on both axes
            shapes.append(((shapes[-1][0] - 1) // 2 + 1, (shapes[-1][1] - 1) // 2 + 1))
        convs = sum(2 * channels * h * w * (1 if i == 0 else channels) * 9 for i, (h, w) in enumerate(shapes[1:]))
        per_chunk = shapes[-1][1]
        positions = chunks * per_chunk
        conv_out = _linear_flops(positions, channels * shapes[-1][0], d)
        window = per_chunk * (audio["n_window_infer"] // chunk)
        layers = _windowed_layers_flops(audio, positions, window)
        return chunks * convs + conv_out + layers + _linear_flops(positions, d, d, audio["output_dim"])
    raise ValueError(f"family: no audio encoder count for {family!r}")


@functools.lru_cache(maxsize=32)
def _family_traced(key: str, count: int) -> int:
    """Voxtral's or GLM-ASR's encoder on ``count`` 30 s windows, or Gemma 4's on ``count`` clips, on ``meta``."""
    data = json.loads(key)
    config = CONFIG_MAPPING[data["model_type"]](**{k: v for k, v in data.items() if k != "model_type"})
    with torch.device("meta"):
        if data["model_type"] == "gemma4_audio":
            config._attn_implementation = "eager"  # its chunked local attention exists only in eager
            model = AutoModel.from_config(config, attn_implementation="eager").eval()
            frames = 2999  # what the Gemma 4 feature extractor makes of 30 s
            mask = torch.ones(count, frames, dtype=torch.bool)
            return _meta_flops(model, torch.empty(count, frames, 128), mask)  # 128 mel bins
        config._attn_implementation = "sdpa"
        model = AutoModel.from_config(config, attn_implementation="sdpa").eval()
        # 30 s of mel frames: GLM-ASR's encoder config names no source positions (its positions are RoPE).
        frames = 3000 if data["model_type"] == "glmasr_encoder" else config.max_source_positions * 2
        return _meta_flops(model, torch.empty(count, config.num_mel_bins, frames))


def _text_config(config: ConfigLike) -> PretrainedConfig:
    data = _sub_config(config, "text_config", "qwen2")
    return CONFIG_MAPPING[data["model_type"]](**{k: v for k, v in data.items() if k != "model_type"})


def activation_memory_estimate(
    config: ConfigLike,
    num_tokens: int,
    dtype_bytes: int = 2,
    *,
    logits: str = "last",
    attention: str = "eager",
) -> dict[str, Any]:
    """An analytic estimate of the prefill's activation memory, in bytes (batch 1).

    An *estimate*, for machines without CUDA statistics: it counts tensors, not allocator
    blocks. The prefill keeps the KV cache of every layer and, at any moment, the transient
    tensors of one layer (layers run one after another and free their intermediates).

    Terms (``n`` = ``num_tokens``, ``H`` hidden, ``I`` MLP width, ``h`` query heads, ``d``
    head width, ``g`` key/value heads, ``L`` layers, ``V`` vocabulary):

    - ``kv_cache``: ``2 L n g d`` elements, kept for decoding.
    - ``hidden``: the residual stream and its normalised copy, ``2 n H``.
    - ``attention``: q, k, v and the output (``n (2 h d + 2 g d)``), plus for ``"eager"`` the
      ``h n^2`` score matrix in the model dtype and its float32 softmax (transformers' eager
      path upcasts); ``"sdpa"`` fused kernels keep no score matrix.
    - ``mlp``: gate, up and their product, ``3 n I``.
    - ``layer_peak``: the larger of ``attention`` and ``mlp``.
    - ``logits``: ``V`` per kept position in float32 (``"last"``: one position, as
      ``generate()``; ``"all"``: every position).
    - ``total``: ``kv_cache + hidden + layer_peak + logits``.

    Args:
        config: as for :func:`llm_prefill_flops`.
        num_tokens: prefilled sequence length.
        dtype_bytes: bytes per element of the model dtype (2 for bf16).
        logits: ``"last"`` or ``"all"``.
        attention: ``"eager"`` or ``"sdpa"``.

    Returns:
        A dict of the terms above in bytes, plus ``"num_tokens"`` and ``"estimate": True``.

    Example:
        >>> from transformers import Qwen2Config
        >>> cfg = Qwen2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        ...                   num_attention_heads=4, num_key_value_heads=2, vocab_size=100)
        >>> activation_memory_estimate(cfg, 10)["kv_cache"]  # 2 * 2 layers * 10 * 2 heads * 16 * 2 bytes
        2560
    """
    num_tokens = check_count("num_tokens", num_tokens)
    dtype_bytes = check_count("dtype_bytes", dtype_bytes)
    if logits not in ("all", "last"):
        raise ValueError(f"logits: expected 'all' or 'last', got {logits!r}")
    if attention not in ("eager", "sdpa"):
        raise ValueError(f"attention: expected 'eager' or 'sdpa', got {attention!r}")
    cfg = _text_config(config)
    n, hidden, inter = num_tokens, cfg.hidden_size, cfg.intermediate_size
    heads = cfg.num_attention_heads
    kv_heads = cfg.num_key_value_heads or heads
    head_dim = getattr(cfg, "head_dim", None) or hidden // heads
    kv_cache = 2 * cfg.num_hidden_layers * n * kv_heads * head_dim * dtype_bytes
    hidden_bytes = 2 * n * hidden * dtype_bytes
    attn = n * (2 * heads * head_dim + 2 * kv_heads * head_dim) * dtype_bytes
    if attention == "eager":
        attn += heads * n * n * (dtype_bytes + 4)
    mlp = 3 * n * inter * dtype_bytes
    logit_bytes = (n if logits == "all" else 1) * cfg.vocab_size * 4
    layer_peak = max(attn, mlp)
    return {
        "num_tokens": n,
        "kv_cache": kv_cache,
        "hidden": hidden_bytes,
        "attention": attn,
        "mlp": mlp,
        "layer_peak": layer_peak,
        "logits": logit_bytes,
        "total": kv_cache + hidden_bytes + layer_peak + logit_bytes,
        "estimate": True,
    }


__all__ = [
    "QWEN2_AUDIO_7B_CONFIG",
    "llm_prefill_flops",
    "audio_encoder_flops",
    "family_audio_encoder_flops",
    "activation_memory_estimate",
]
