"""The released architectures of the supported speech LLMs, as config dicts (no weights), for FLOP counts.

Nothing here can be downloaded (the project runs offline), so each family's language-model and
audio-encoder dimensions are written down with where they came from. Three kinds of source:

- ``fixture``: the project's copy of the public ``config.json`` (Qwen2-Audio-7B).
- ``class defaults``: the transformers 5.24 config class's defaults, which its docstring ties to
  the released checkpoint (``VoxtralConfig`` -> Voxtral-Mini-3B-2507, ``Qwen2_5OmniThinkerConfig``
  -> Qwen2.5-Omni-7B, ``Gemma4AudioConfig`` -> gemma-4-e2b-it).
- ``written here``: where the class defaults are not the release (``Qwen3OmniMoeTextConfig``'s
  defaults have 28 layers and a 3,584-token vocabulary; ``AudioFlamingo3Config``'s text defaults
  are a Qwen1.5-7B shape; ``Gemma4TextConfig``'s are a Gemma-2-2B shape), the published sizes
  of the release, each named in :attr:`Architecture.source`. These could not be checked
  against the checkpoint files here; a wrong vocabulary size moves the count by under 0.1%.

Example:
    >>> from speechprune.evaluation.architectures import released_architecture
    >>> arch = released_architecture("voxtral")
    >>> arch.checkpoint, arch.text_config["hidden_size"], arch.tokens_per_30s
    ('mistralai/Voxtral-Mini-3B-2507', 3072, 375)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

#: The families with a released architecture here, in the order tables list them.
FAMILIES = (
    "qwen2_audio",
    "qwen2_5_omni",
    "qwen3_omni_moe",
    "audioflamingo3",
    "musicflamingo",
    "voxtral",
    "gemma4",
    "glmasr",
    "qwen3_asr",
)

_QWEN2_AUDIO_FIXTURE = Path(__file__).with_name("qwen2-audio-7b-config.json")


@dataclass(frozen=True)
class Architecture:
    """One family's released language model and audio front end (dimensions only).

    Attributes:
        family: the stock top-level ``model_type`` (``"qwen2_5_omni"`` means its thinker).
        checkpoint: the Hub id of the release these numbers describe.
        text_config: the language model's config as a dict with its ``model_type`` (what
            :func:`speechprune.evaluation.efficiency.llm_prefill_flops` takes).
        audio_config: the audio encoder's config dict (``model_type`` included).
        seconds_per_token: SPEC section 7's ``t``.
        tokens_per_30s: SPEC section 7's ``W`` (the family's own length formula at 30 s).
        max_clip_seconds: the longest clip the model takes in one placeholder run (``None``: no cap).
        source: where each group of numbers came from.
    """

    family: str
    checkpoint: str
    text_config: dict
    audio_config: dict
    seconds_per_token: float
    tokens_per_30s: int
    max_clip_seconds: float | None
    source: str


def _qwen2_audio() -> Architecture:
    data = json.loads(_QWEN2_AUDIO_FIXTURE.read_text())
    return Architecture(
        family="qwen2_audio",
        checkpoint="Qwen/Qwen2-Audio-7B-Instruct",
        text_config=dict(data["text_config"]),
        audio_config=dict(data["audio_config"]),
        seconds_per_token=0.04,
        tokens_per_30s=750,
        max_clip_seconds=None,
        source="fixture: speechprune/evaluation/qwen2-audio-7b-config.json (the public config.json)",
    )


def _whisper_large_v3(model_type: str) -> dict:
    """The Whisper-large-v3 encoder shape that Qwen2-Audio, the Qwen Omni thinkers, AF3 and Voxtral share."""
    return {
        "model_type": model_type,
        "num_mel_bins": 128,
        "d_model": 1280,
        "encoder_layers": 32,
        "encoder_attention_heads": 20,
        "encoder_ffn_dim": 5120,
        "max_source_positions": 1500,
    }


def _qwen2_5_7b_text(vocab_size: int) -> dict:
    """Qwen2.5-7B's decoder (the language model of Qwen2.5-Omni-7B, AudioFlamingo3 and MusicFlamingo)."""
    return {
        "model_type": "qwen2",
        "hidden_size": 3584,
        "intermediate_size": 18944,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "vocab_size": vocab_size,
        "max_position_embeddings": 32768,
    }


def _qwen2_5_omni() -> Architecture:
    text = {**_qwen2_5_7b_text(152064), "model_type": "qwen2_5_omni_text"}
    audio = {**_whisper_large_v3("qwen2_5_omni_audio_encoder"), "n_window": 100, "output_dim": 3584}
    return Architecture(
        family="qwen2_5_omni",
        checkpoint="Qwen/Qwen2.5-Omni-7B",
        text_config=text,
        audio_config=audio,
        seconds_per_token=0.04,
        tokens_per_30s=750,
        max_clip_seconds=None,
        source="class defaults: Qwen2_5OmniThinkerConfig (text and audio), the Qwen2.5-Omni-7B thinker",
    )


def _qwen3_omni_moe() -> Architecture:
    text = {
        "model_type": "qwen3_omni_moe_text",
        "hidden_size": 2048,
        "intermediate_size": 768,
        "moe_intermediate_size": 768,
        "num_hidden_layers": 48,
        "num_attention_heads": 32,
        "num_key_value_heads": 4,
        "head_dim": 128,
        "num_experts": 128,
        "num_experts_per_tok": 8,
        "decoder_sparse_step": 1,
        "vocab_size": 152064,
        "max_position_embeddings": 65536,
    }
    audio = {
        **_whisper_large_v3("qwen3_omni_moe_audio_encoder"),
        "n_window": 50,
        "n_window_infer": 800,
        "downsample_hidden_size": 480,
        "output_dim": 2048,
    }
    return Architecture(
        family="qwen3_omni_moe",
        checkpoint="Qwen/Qwen3-Omni-30B-A3B-Instruct",
        text_config=text,
        audio_config=audio,
        seconds_per_token=1 / 13,
        tokens_per_30s=390,
        max_clip_seconds=None,
        source=(
            "written here: the thinker is Qwen3-30B-A3B (48 layers, hidden 2048, 32 query / 4 key heads of 128, "
            "128 experts of 768 with 8 active) as published for Qwen3-Omni-30B-A3B; audio encoder: "
            "Qwen3OmniMoeAudioEncoderConfig defaults with output_dim 2048 (the thinker's width)"
        ),
    )


def _flamingo(family: str, checkpoint: str) -> Architecture:
    return Architecture(
        family=family,
        checkpoint=checkpoint,
        text_config=_qwen2_5_7b_text(151936),
        audio_config=_whisper_large_v3("audioflamingo3_encoder"),
        seconds_per_token=0.04,
        tokens_per_30s=750,
        max_clip_seconds=None,
        source=(
            "written here: the language model is Qwen2.5-7B (as the release describes its backbone); "
            "audio encoder: AudioFlamingo3EncoderConfig defaults (Whisper-large-v3 shape)"
        ),
    )


def _voxtral() -> Architecture:
    text = {
        "model_type": "llama",
        "vocab_size": 131072,
        "hidden_size": 3072,
        "intermediate_size": 8192,
        "num_hidden_layers": 30,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "max_position_embeddings": 131072,
    }
    audio = {**_whisper_large_v3("voxtral_encoder"), "intermediate_size": 5120}
    return Architecture(
        family="voxtral",
        checkpoint="mistralai/Voxtral-Mini-3B-2507",
        text_config=text,
        audio_config=audio,
        seconds_per_token=0.08,
        tokens_per_30s=375,
        max_clip_seconds=None,
        source="class defaults: VoxtralConfig (text and audio), documented as Voxtral-Mini-3B-2507",
    )


def _gemma4() -> Architecture:
    layer_types = (["sliding_attention"] * 4 + ["full_attention"]) * 7
    text = {
        "model_type": "gemma4_text",
        "vocab_size": 262144,
        "vocab_size_per_layer_input": 262144,
        "hidden_size": 1536,
        "intermediate_size": 6144,
        "num_hidden_layers": 35,
        "num_attention_heads": 8,
        "num_key_value_heads": 1,
        "head_dim": 256,
        "global_head_dim": 512,
        "hidden_size_per_layer_input": 256,
        "num_kv_shared_layers": 20,
        "use_double_wide_mlp": True,
        "sliding_window": 512,
        "final_logit_softcapping": 30.0,
        "layer_types": layer_types,
    }
    return Architecture(
        family="gemma4",
        checkpoint="google/gemma-4-E2B-it",
        text_config=text,
        audio_config={"model_type": "gemma4_audio"},
        seconds_per_token=0.04,
        tokens_per_30s=750,
        max_clip_seconds=30.0,
        source=(
            "written here: gemma-4-E2B's text decoder as published (35 layers, hidden 1536, MLP 6144 doubled "
            "on the 20 KV-shared layers, 8 query heads / 1 key head of 256, global layers 512, 4 sliding : "
            "1 global); audio encoder: Gemma4AudioConfig defaults (12 conformer layers of 1024, output 1536)"
        ),
    )


def _glmasr() -> Architecture:
    text = {
        "model_type": "llama",
        "vocab_size": 59264,
        "hidden_size": 2048,
        "intermediate_size": 6144,
        "num_hidden_layers": 28,
        "num_attention_heads": 16,
        "num_key_value_heads": 4,
        "max_position_embeddings": 8192,
    }
    audio = {
        "model_type": "glmasr_encoder",
        "hidden_size": 1280,
        "intermediate_size": 5120,
        "num_hidden_layers": 32,
        "num_attention_heads": 20,
        "num_mel_bins": 128,
    }
    return Architecture(
        family="glmasr",
        checkpoint="zai-org/GLM-ASR-Nano-2512",
        text_config=text,
        audio_config=audio,
        seconds_per_token=0.08,
        tokens_per_30s=375,
        max_clip_seconds=630.0,  # GlmAsrProcessor keeps int(655 // 30) = 21 windows (its warning says 655 s)
        source=(
            "class defaults: GlmAsrConfig's text sub-config defaults and GlmAsrEncoderConfig (both documented as "
            "zai-org/GLM-ASR-Nano-2512); a third-party Core ML conversion lists the same decoder (28 layers, "
            "16 / 4 heads, hidden 2048, vocabulary 59,264); not checked against the checkpoint's config.json"
        ),
    )


def _qwen3_asr() -> Architecture:
    text = {
        "model_type": "qwen3",
        "vocab_size": 151936,
        "hidden_size": 2048,
        "intermediate_size": 6144,
        "num_hidden_layers": 28,
        "num_attention_heads": 16,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "max_position_embeddings": 65536,
    }
    audio = {
        "model_type": "qwen3_asr_encoder",
        "num_mel_bins": 128,
        "d_model": 1024,
        "encoder_layers": 24,
        "encoder_attention_heads": 16,
        "encoder_ffn_dim": 4096,
        "n_window": 50,
        "n_window_infer": 800,
        "downsample_hidden_size": 480,
        "output_dim": 2048,
    }
    return Architecture(
        family="qwen3_asr",
        checkpoint="Qwen/Qwen3-ASR-1.7B-hf",
        text_config=text,
        audio_config=audio,
        seconds_per_token=1 / 13,
        tokens_per_30s=390,
        max_clip_seconds=None,
        source=(
            "class defaults: Qwen3ASRConfig's text sub-config defaults (vocabulary: Qwen3Config's 151,936) and "
            "Qwen3ASREncoderConfig (both documented as Qwen/Qwen3-ASR-1.7B-hf), except output_dim, written here as "
            "2048 (the language model's width, which the projector must produce; the class default 3584 cannot "
            "be the release's); not checked against the checkpoint's config.json"
        ),
    )


def released_architecture(family: str) -> Architecture:
    """The released architecture of ``family`` (one of :data:`FAMILIES`); a fresh object each call.

    Raises:
        ValueError: for a family without a released architecture here, naming the known ones.
    """
    builders = {
        "qwen2_audio": _qwen2_audio,
        "qwen2_5_omni": _qwen2_5_omni,
        "qwen3_omni_moe": _qwen3_omni_moe,
        "audioflamingo3": lambda: _flamingo("audioflamingo3", "nvidia/audio-flamingo-3-hf"),
        "musicflamingo": lambda: _flamingo("musicflamingo", "nvidia/music-flamingo-hf"),
        "voxtral": _voxtral,
        "gemma4": _gemma4,
        "glmasr": _glmasr,
        "qwen3_asr": _qwen3_asr,
    }
    if family not in builders:
        raise ValueError(f"family: no released architecture for {family!r}; known: {', '.join(FAMILIES)}")
    return builders[family]()


def audio_tokens(family: str, seconds: float) -> int:
    """Audio tokens the family's own length rule gives for ``seconds`` of 16 kHz audio (mel hop 10 ms).

    Qwen2-Audio, AudioFlamingo3 and MusicFlamingo: 30 s windows of 750 (the last one by the conv
    formula); Qwen2.5-Omni: the conv formula over the whole recording; Qwen3-Omni: its
    ``_get_feat_extract_output_lengths`` (13 per 100 mel frames); Voxtral: 375 per started 30 s chunk
    (the last chunk's padding becomes tokens); Gemma 4: its processor's formula per clip of at most 30 s
    (the model's cap: a longer recording is counted as consecutive 30 s clips); GLM-ASR: its processor's
    conv formula over the recording's frames (375 per full 30 s window; at most 21 windows, 630 s, are kept);
    Qwen3-ASR: Qwen3-Omni's rule (the same 100-frame chunks of 13).

    Example:
        >>> [audio_tokens(f, 90) for f in ("qwen2_audio", "qwen3_omni_moe", "voxtral")]
        [2250, 1170, 1125]
    """
    samples = round(seconds * 16000)
    frames = samples // 160

    def conv(n: int) -> int:  # Whisper conv (stride 2) then pooling by 2
        return max(0, ((n - 1) // 2 + 1 - 2) // 2 + 1)

    if family in ("qwen2_audio", "audioflamingo3", "musicflamingo"):
        return sum(conv(min(3000, frames - start)) for start in range(0, frames, 3000))
    if family == "qwen2_5_omni":
        return conv(frames)
    if family == "glmasr":  # the processor's conv formula over the windows it keeps (at most 21 of 30 s)
        kept = min(frames, 21 * 3000)
        return max(0, (((kept - 1) // 2 + 1) - 4) // 4 + 1)
    if family in ("qwen3_omni_moe", "qwen3_asr"):
        rest = (frames % 100 - 1) // 2 + 1  # the last partial 100-frame chunk after its first conv
        return ((rest - 1) // 2 + 1 - 1) // 2 + 1 + (frames // 100) * 13
    if family == "voxtral":
        return -(-frames // 3000) * 375
    if family == "gemma4":
        return sum(_gemma4_clip_tokens(min(480000, samples - start)) for start in range(0, samples, 480000))
    raise ValueError(f"family: no token rule for {family!r}; known: {', '.join(FAMILIES)}")


def _gemma4_clip_tokens(samples: int) -> int:
    """Gemma 4's soft tokens for one clip: mel frames (20 ms frames, 10 ms hop), then two stride-2 convs."""
    t = (samples + 160 - 321) // 160 + 1
    for _ in range(2):
        t = (t + 2 - 3) // 2 + 1
    return max(0, t)


__all__ = ["FAMILIES", "Architecture", "released_architecture", "audio_tokens"]
