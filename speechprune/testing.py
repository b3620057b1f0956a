"""An offline tiny Qwen2-Audio for tests, benchmarks and the demo.

Nothing here touches the network. :func:`tiny_qwen2_audio` builds a stock
``Qwen2AudioForConditionalGeneration`` with tiny widths but the real audio geometry
(128 mel bins, 1500 encoder positions: a 30 s window gives 750 audio tokens), random
weights fixed by a seed, and a processor whose byte-level BPE tokenizer is trained on
the spot and carries the Qwen2-Audio special tokens.

Example:
    >>> from speechprune.testing import tiny_qwen2_audio
    >>> model, processor = tiny_qwen2_audio(seed=0)
    >>> model.config.audio_config.num_mel_bins, model.config.audio_config.max_source_positions
    (128, 1500)
    >>> processor.tokenizer.convert_ids_to_tokens(model.config.audio_token_id)
    '<|AUDIO|>'
"""

from __future__ import annotations

import copy
import functools
import json

import torch
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import (
    Qwen2AudioConfig,
    Qwen2AudioForConditionalGeneration,
    Qwen2AudioProcessor,
    Qwen2Tokenizer,
    WhisperFeatureExtractor,
)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|audio_bos|>", "<|AUDIO|>", "<|audio_eos|>"]

# The pre-tokenizer split of the real Qwen2 tokenizer, so that words, digits and punctuation
# break where they break in Qwen2-Audio.
_QWEN2_SPLIT = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# A small training text written for this project: chat roles, the SPIRAL prompt's words, and
# everyday lecture / meeting / conversation English, so that prompts tokenize into short pieces.
_CORPUS = """
system user assistant You are a helpful assistant. Audio 1: Audio 2:
Answer with the letter of the correct option. A. B. C. D. A B C D
What did the speaker say about the project? Which detail was mentioned in the meeting?
The lecture explains how the nervous system processes information and drives behaviour.
In the meeting, the team discussed the budget, the schedule and the new product launch.
During the conversation, two friends talk about travel, food, music and the weather.
The speaker mentions that the results were presented at a conference earlier this year.
Neuroscience, opera, astronomy, economics, history, biology, chemistry, marketing, design.
Um, uh, you know, I mean, well, so, actually, basically, right, okay, like, yeah.
One interesting finding revealed that the new method reduced costs by twenty percent.
The question asks about one detail that was said once somewhere in the recording.
What innovative feature did the performance showcase? A holographic choir.
We should schedule the review for next Tuesday and invite the design team.
numbers 0 1 2 3 4 5 6 7 8 9 10 18 24 30 90 100 2024 percent hours minutes seconds
"""


def _train_tokenizer(vocab_size: int) -> Qwen2Tokenizer:
    """Train a byte-level BPE with Qwen2's splitting rules and wrap it as a ``Qwen2Tokenizer``."""
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_QWEN2_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator([line for line in _CORPUS.splitlines() if line], trainer=trainer)
    bpe_model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in bpe_model["merges"]]
    tokenizer = Qwen2Tokenizer(vocab=bpe_model["vocab"], merges=merges)
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS[1:]})
    tokenizer.eos_token = "<|im_end|>"
    return tokenizer


@functools.lru_cache(maxsize=2)
def _cached_tokenizer(vocab_size: int) -> Qwen2Tokenizer:
    return _train_tokenizer(vocab_size)


def tiny_processor(vocab_size: int = 600) -> Qwen2AudioProcessor:
    """The stock Qwen2-Audio processor around a tokenizer trained on the spot (no network).

    The feature extractor is Whisper-large-v3 shaped: 128 mel bins, 16 kHz, 30 s windows of
    3000 frames. The chat template is Qwen2-Audio's (its default system message).
    """
    tokenizer = copy.deepcopy(_cached_tokenizer(vocab_size))
    feature_extractor = WhisperFeatureExtractor(
        feature_size=128, sampling_rate=16000, hop_length=160, chunk_length=30, n_fft=400
    )
    processor = Qwen2AudioProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer)
    return processor


def tiny_config(tokenizer, *, text_layers: int = 2, audio_layers: int = 1) -> Qwen2AudioConfig:
    """A Qwen2-Audio config with tiny widths and the real audio geometry.

    The text model uses grouped-query attention (4 query heads, 2 key/value heads) so that
    phase 2's key-head repetition is exercised; the real 7B model has as many key heads as
    query heads.
    """
    return Qwen2AudioConfig(
        audio_config={
            "model_type": "qwen2_audio_encoder",
            "num_mel_bins": 128,
            "encoder_layers": audio_layers,
            "encoder_attention_heads": 2,
            "encoder_ffn_dim": 64,
            "d_model": 32,
            "max_source_positions": 1500,
            "initializer_range": 0.05,
        },
        text_config={
            "model_type": "qwen2",
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": text_layers,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "vocab_size": len(tokenizer),
            "max_position_embeddings": 8192,
            "rope_theta": 10000.0,
            "rms_norm_eps": 1e-5,
            "initializer_range": 0.05,
            "bos_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
            "eos_token_id": tokenizer.convert_tokens_to_ids("<|im_end|>"),
            "pad_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
            "tie_word_embeddings": False,
        },
        audio_token_index=tokenizer.convert_tokens_to_ids("<|AUDIO|>"),
    )


def tiny_qwen2_audio(seed: int = 0, *, model_class=Qwen2AudioForConditionalGeneration, **config_overrides):
    """Build ``(model, processor)``: a tiny random Qwen2-Audio, identical for the same seed.

    Args:
        seed: fixes the random weights. The global torch RNG is left as it was.
        model_class: the class to instantiate (a subclass of the stock one, for example).
        **config_overrides: extra attributes set on the top-level config before the model is
            built (for example the pruning fields of ``SpeechPruneConfig``).

    Returns:
        ``model`` in eval mode (float32, CPU) and the stock ``Qwen2AudioProcessor``.
    """
    processor = tiny_processor()
    config = tiny_config(processor.tokenizer)
    config_class = getattr(model_class, "config_class", None)
    if config_class is not None and config_class is not type(config) and issubclass(config_class, Qwen2AudioConfig):
        config = config_class(**{**config.to_dict(), **config_overrides})
    else:
        for key, value in config_overrides.items():
            setattr(config, key, value)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class(config)
    model.generation_config.pad_token_id = config.text_config.pad_token_id
    model.generation_config.eos_token_id = config.text_config.eos_token_id
    return model.eval(), processor


def tiny_speechprune(seed: int = 0, **pruning):
    """Build ``(model, processor)``: the tiny model as SpeechPrune, same weights as ``tiny_qwen2_audio(seed)``.

    Args:
        seed: fixes the random weights (identical to the stock tiny model of that seed).
        **pruning: ``SpeechPruneConfig`` pruning defaults, e.g. ``pruning_method="speechprune"``.

    Returns:
        A ``Qwen2AudioSpeechPruneForConditionalGeneration`` in eval mode and a ``SpeechPruneProcessor``.

    Example:
        >>> model, processor = tiny_speechprune(pruning_method="speechprune", pruning_rate=0.2)
        >>> type(model).__name__, type(processor).__name__, model.config.pruning_rate
        ('Qwen2AudioSpeechPruneForConditionalGeneration', 'SpeechPruneProcessor', 0.2)
    """
    from speechprune.modeling.modeling_speechprune import Qwen2AudioSpeechPruneForConditionalGeneration
    from speechprune.modeling.processing_speechprune import SpeechPruneProcessor

    stock = tiny_processor()
    special = {token: stock.tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    model, _ = tiny_qwen2_audio(
        seed, model_class=Qwen2AudioSpeechPruneForConditionalGeneration, special_token_ids=special, **pruning
    )
    processor = SpeechPruneProcessor(
        feature_extractor=stock.feature_extractor, tokenizer=stock.tokenizer, chat_template=stock.chat_template
    )
    return model, processor


# ------------------------------------------------------------------------------------------------
# Tiny random models of the other supported families (model side only: ids and features are built
# directly, with each family's own token-count formula, so no tokenizer or processor is needed).

# Template tokens of the tiny families: ids at the top of the 600-token vocabulary.
TINY_VOCAB = 600
_TINY_CHAT = {"<|endoftext|>": 590, "<|im_start|>": 591, "<|im_end|>": 592}
TINY_FAMILY_TOKENS = {
    "qwen2_5_omni_thinker": {**_TINY_CHAT, "<|AUDIO|>": 593, "<|audio_bos|>": 594, "<|audio_eos|>": 595},
    "qwen3_omni_moe_thinker": {**_TINY_CHAT, "<|audio_pad|>": 593, "<|audio_start|>": 594, "<|audio_end|>": 595},
    "audioflamingo3": {**_TINY_CHAT, "<sound>": 593},
    "musicflamingo": {**_TINY_CHAT, "<sound>": 593, "<|sound_bos|>": 594, "<|sound_eos|>": 595},
    "voxtral": {"<s>": 590, "[INST]": 591, "[/INST]": 592, "[AUDIO]": 593, "[BEGIN_AUDIO]": 594},
    "gemma4": {"<bos>": 590, "<|turn>": 591, "<turn|>": 592, "<|audio|>": 593, "<|audio>": 594, "<audio|>": 595},
    "glmasr": {
        **{"<|endoftext|>": 590, "<|user|>": 591, "<|assistant|>": 592},
        **{"<|pad|>": 593, "<|begin_of_audio|>": 594, "<|end_of_audio|>": 595},
    },
    "qwen3_asr": {**_TINY_CHAT, "<|audio_pad|>": 593, "<|audio_start|>": 594, "<|audio_end|>": 595},
}
TINY_FAMILIES = tuple(TINY_FAMILY_TOKENS)
# Shared tiny text model: grouped-query attention (4 query heads, 2 key/value heads), head_dim 16.
_TINY_TEXT = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": TINY_VOCAB,
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5,
    "initializer_range": 0.05,
    "bos_token_id": 590,
    "eos_token_id": 592,
    "pad_token_id": 590,
    "tie_word_embeddings": False,
}


# The Omni thinkers' tiny audio encoder (real geometry: 128 mel bins) and vision tower (unused by audio).
_TINY_OMNI_AUDIO = {
    "num_mel_bins": 128,
    "encoder_layers": 1,
    "encoder_attention_heads": 2,
    "encoder_ffn_dim": 32,
    "d_model": 16,
    "output_dim": 64,
}
_TINY_OMNI_VISION = {"depth": 1, "hidden_size": 16, "intermediate_size": 16, "num_heads": 2, "out_hidden_size": 64}


def tiny_family_config(model_type: str):
    """A tiny random config of a supported family with its real audio geometry (128 mel bins, 10 ms frames)."""
    import transformers

    tokens = TINY_FAMILY_TOKENS[model_type]
    placeholder = {"audioflamingo3": "<sound>", "musicflamingo": "<sound>"}.get(model_type)
    if model_type == "qwen2_5_omni_thinker":
        return transformers.Qwen2_5OmniThinkerConfig(
            audio_config={**_TINY_OMNI_AUDIO, "n_window": 100},
            vision_config={**_TINY_OMNI_VISION, "fullatt_block_indexes": [0]},
            text_config={
                **_TINY_TEXT,
                "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
            },
            audio_token_index=tokens["<|AUDIO|>"],
            image_token_index=596,
            video_token_index=597,
            audio_start_token_id=tokens["<|audio_bos|>"],
            audio_end_token_id=tokens["<|audio_eos|>"],
            vision_start_token_id=598,
        )
    if model_type == "qwen3_omni_moe_thinker":
        return transformers.Qwen3OmniMoeThinkerConfig(
            audio_config={**_TINY_OMNI_AUDIO, "downsample_hidden_size": 8},
            vision_config={**_TINY_OMNI_VISION, "deepstack_visual_indexes": [0]},
            text_config={
                **_TINY_TEXT,
                "moe_intermediate_size": 32,
                "num_experts": 4,
                "num_experts_per_tok": 2,
                "head_dim": 16,
                "rope_parameters": {
                    "rope_type": "default",
                    "rope_theta": 10000.0,
                    "mrope_section": [2, 3, 3],
                    "mrope_interleaved": True,
                },
            },
            audio_token_id=tokens["<|audio_pad|>"],
            image_token_id=596,
            video_token_id=597,
            audio_start_token_id=tokens["<|audio_start|>"],
            vision_start_token_id=598,
        )
    if model_type == "voxtral":
        return voxtral_config(dict(tokens), TINY_VOCAB)
    if model_type == "gemma4":
        return gemma4_config(dict(tokens), TINY_VOCAB)
    if model_type == "glmasr":
        return glmasr_config(dict(tokens), TINY_VOCAB)
    if model_type == "qwen3_asr":
        return qwen3_asr_config(dict(tokens), TINY_VOCAB)
    config_class = {"audioflamingo3": "AudioFlamingo3Config", "musicflamingo": "MusicFlamingoConfig"}[model_type]
    extra = {}
    if model_type == "musicflamingo":
        extra = {"audio_bos_token_id": tokens["<|sound_bos|>"], "audio_eos_token_id": tokens["<|sound_eos|>"]}
    return getattr(transformers, config_class)(
        audio_config={
            "model_type": "audioflamingo3_encoder",
            "num_mel_bins": 128,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 32,
            "hidden_size": 16,
        },
        text_config={"model_type": "qwen2", **_TINY_TEXT},
        audio_token_id=tokens[placeholder],
        **extra,
    )


def tiny_family(model_type: str, seed: int = 0, **settings):
    """A tiny random stock model of ``model_type`` (see :data:`TINY_FAMILIES`), identical for the same seed.

    ``settings``: if given, the model is pruned in place with ``speechprune.prune(model, **settings)``.
    The config's ``special_token_ids`` name the tiny template tokens (:data:`TINY_FAMILY_TOKENS`).

    Example:
        >>> model = tiny_family("audioflamingo3")
        >>> type(model).__name__, model.config.special_token_ids["<sound>"]
        ('AudioFlamingo3ForConditionalGeneration', 593)
    """
    import transformers

    from speechprune.modeling.families import ADAPTERS

    config = tiny_family_config(model_type)
    config.special_token_ids = dict(TINY_FAMILY_TOKENS[model_type])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = getattr(transformers, ADAPTERS[model_type].stock_class)(config)
    model.generation_config.pad_token_id = 590
    model.generation_config.eos_token_id = 592
    model.eval()
    if settings:
        import speechprune

        model = speechprune.prune(model, **settings)
    return model


def tiny_family_inputs(model, seconds, seed: int = 0, question: tuple = (20, 21, 22, 23, 24, 25)) -> dict:
    """Inputs for a batch of recordings (``seconds``: one duration each), left padded like a processor's.

    The prompt of each row is ``<|im_start|> u u [audio start] placeholders [audio end] question <|im_end|>
    <|im_start|> a``, with as many placeholders as the family's own formula gives for that duration, and
    random 10 ms mel frames. Returns the stock forward's arguments plus ``query_mask`` (the question tokens).
    """
    model_type = model.config.model_type
    tokens = TINY_FAMILY_TOKENS[model_type]
    generator = torch.Generator().manual_seed(seed)
    frames = [int(round(s * 100)) for s in seconds]
    if model_type in ("voxtral", "gemma4"):
        return _voxtral_gemma4_inputs(model_type, tokens, frames, generator, question)
    if model_type in ("glmasr", "qwen3_asr"):
        return _asr_inputs(model_type, tokens, frames, generator, question)
    if model_type in ("audioflamingo3", "musicflamingo"):
        windows = [[min(3000, f - start) for start in range(0, f, 3000)] for f in frames]
        flat = [w for row in windows for w in row]
        features = torch.randn(len(flat), 128, 3000, generator=generator)
        mask = torch.zeros(len(flat), 3000, dtype=torch.long)
        for i, w in enumerate(flat):
            mask[i, :w] = 1
            features[i, :, w:] = 0
        _, per_window = model.model.audio_tower._get_feat_extract_output_lengths(mask.sum(-1))
        counts, i = [], 0
        for row in windows:
            counts.append(int(per_window[i : i + len(row)].sum()))
            i += len(row)
        audio = {"input_features": features, "input_features_mask": mask}
    else:
        features = torch.randn(len(frames), 128, max(frames), generator=generator)
        mask = torch.zeros(len(frames), max(frames), dtype=torch.long)
        for i, f in enumerate(frames):
            mask[i, :f] = 1
            features[i, :, f:] = 0
        if model_type == "qwen3_omni_moe_thinker":
            from transformers.models.qwen3_omni_moe.modeling_qwen3_omni_moe import _get_feat_extract_output_lengths

            counts = [int(n) for n in _get_feat_extract_output_lengths(mask.sum(-1))]
        else:
            counts = [int(n) for n in model.model.audio_tower._get_feat_extract_output_lengths(mask.sum(-1))[1]]
        audio = {"input_features": features, "feature_attention_mask": mask}
    placeholder, start, end = {
        "qwen2_5_omni_thinker": ("<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"),
        "qwen3_omni_moe_thinker": ("<|audio_pad|>", "<|audio_start|>", "<|audio_end|>"),
        "audioflamingo3": ("<sound>", None, None),
        "musicflamingo": ("<sound>", "<|sound_bos|>", "<|sound_eos|>"),
    }[model_type]
    rows, queries = [], []
    for n in counts:
        head = [tokens["<|im_start|>"], 10, 11] + ([tokens[start]] if start else []) + [tokens[placeholder]] * n
        head += [tokens[end]] if end else []
        tail = [tokens["<|im_end|>"], tokens["<|im_start|>"], 12, 13]
        rows.append(head + list(question) + tail)
        queries.append([False] * len(head) + [True] * len(question) + [False] * len(tail))
    return _left_padded(rows, queries, pad=tokens["<|endoftext|>"]) | audio


# --- Voxtral and Gemma 4 -------------------------------------------------------------------------
# Their tokenizers here are the project's trained byte-level BPE with each family's special tokens
# added under the release's names, so that prompts render and tokenize as the family's template
# lays them out; the real vocabularies (Tekken, Gemma's SentencePiece) are not reproduced.

VOXTRAL_SPECIAL_TOKENS = ["<s>", "</s>", "<pad>", "[INST]", "[/INST]", "[AUDIO]", "[BEGIN_AUDIO]"]
GEMMA4_SPECIAL_TOKENS = [
    *("<bos>", "<eos>", "<pad>", "<|turn>", "<turn|>", "<|audio>", "<|audio|>", "<audio|>"),
    *("<|image>", "<|image|>", "<image|>", "<|video|>"),
]


def _family_tokenizer(special: list[str], bos: str, eos: str, pad: str, vocab_size: int = 600):
    tokenizer = copy.deepcopy(_cached_tokenizer(vocab_size))
    tokenizer.add_special_tokens({"additional_special_tokens": special})
    tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token = bos, eos, pad
    return tokenizer


def voxtral_config(ids: dict, vocab_size: int):
    """A tiny Voxtral config with the real audio geometry; ``ids``: its template tokens' ids by name.

    128 mel bins and 1500 encoder positions per 30 s chunk of 3000 frames, four positions stacked per
    token (``audio_config.intermediate_size = 4 x hidden``): a chunk gives 375 tokens (80 ms each).
    The language model is a tiny Llama with grouped-query attention and no biases, as the release's.
    """
    from transformers import VoxtralConfig

    return VoxtralConfig(
        audio_config={
            "model_type": "voxtral_encoder",
            "hidden_size": 16,
            "intermediate_size": 64,  # 4 stacked encoder positions per audio token
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_mel_bins": 128,
            "max_source_positions": 1500,
            "initializer_range": 0.05,
        },
        text_config={
            "model_type": "llama",
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 3,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "vocab_size": vocab_size,
            "max_position_embeddings": 8192,
            "rope_theta": 10000.0,
            "initializer_range": 0.05,
            "bos_token_id": ids["<s>"],
            "eos_token_id": ids["[/INST]"] if "</s>" not in ids else ids["</s>"],
            "pad_token_id": ids.get("<pad>", ids["<s>"]),
            "tie_word_embeddings": False,
        },
        audio_token_id=ids["[AUDIO]"],
    )


def gemma4_config(ids: dict, vocab_size: int):
    """A tiny Gemma 4 config with audio and no vision; ``ids``: its template tokens' ids by name.

    The pitfalls of a tiny Gemma 4: the audio subsampler's first channel count stays 128 (the mel
    bins), ``vision_config=None`` leaves the vision tower out, the text model keeps per-layer inputs
    (``hidden_size_per_layer_input``), a sliding and a global layer type with their own head widths
    (16 and 32: phase 2 must take ``head_dim`` from layer 0), and KV-shared layers. A 30 s clip gives
    750 audio tokens (40 ms), as the release's.
    """
    from transformers import Gemma4Config

    return Gemma4Config(
        text_config={
            "model_type": "gemma4_text",
            "vocab_size": vocab_size,
            "vocab_size_per_layer_input": vocab_size,
            "hidden_size": 64,
            "intermediate_size": 96,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "num_key_value_heads": 1,
            "head_dim": 16,
            "global_head_dim": 32,
            "hidden_size_per_layer_input": 8,
            "num_kv_shared_layers": 2,
            "sliding_window": 64,
            "layer_types": ["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
            "max_position_embeddings": 8192,
            "final_logit_softcapping": 30.0,
            "initializer_range": 0.05,
            "bos_token_id": ids["<bos>"],
            "eos_token_id": ids.get("<eos>", ids["<turn|>"]),
            "pad_token_id": ids.get("<pad>", ids["<bos>"]),
        },
        audio_config={
            "model_type": "gemma4_audio",
            "hidden_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "subsampling_conv_channels": [128, 8],  # the first must stay 128 (the mel bins)
            "output_proj_dims": 48,
            "initializer_range": 0.05,
        },
        vision_config=None,
        audio_token_id=ids["<|audio|>"],
        boa_token_id=ids["<|audio>"],
        eoa_token_index=ids["<audio|>"],
        # No vision tower, but the stock forward compares embeddings with these ids: unused ids, never None.
        image_token_id=ids.get("<|image|>", 596),
        video_token_id=ids.get("<|video|>", 597),
        boi_token_id=ids.get("<|image>", 598),
        eoi_token_id=ids.get("<image|>", 599),
    )


def _voxtral_gemma4_inputs(model_type: str, tokens: dict, frames: list, generator, question: tuple) -> dict:
    """:func:`tiny_family_inputs` for Voxtral (30 s chunks) and Gemma 4 (one clip per recording).

    Gemma 4's processor refuses clips over 30 s (the model's cap); these tiny inputs hand the model
    longer clips directly, so that a selection has more than 750 tokens to choose from.
    """
    if model_type == "voxtral":
        chunks = [-(-f // 3000) for f in frames]
        features = torch.randn(sum(chunks), 128, 3000, generator=generator)
        counts = [375 * c for c in chunks]
        audio = {"input_features": features}
        head_tokens, open_audio, close_audio = [tokens["<s>"], tokens["[INST]"]], [tokens["[BEGIN_AUDIO]"]], []
        tail = [tokens["[/INST]"]]
    else:
        from speechprune.modeling.processing_speechprune_gemma4 import clip_token_count

        features = torch.randn(len(frames), max(frames), 128, generator=generator)
        mask = torch.zeros(len(frames), max(frames), dtype=torch.bool)
        for i, f in enumerate(frames):
            mask[i, :f] = True
            features[i, f:] = 0
        counts = [clip_token_count(mask[i, :f].numpy()) for i, f in enumerate(frames)]
        audio = {"input_features": features, "input_features_mask": mask}
        head_tokens, open_audio = [tokens["<bos>"], tokens["<|turn>"], 10, 11], [tokens["<|audio>"]]
        close_audio, tail = [tokens["<audio|>"]], [tokens["<turn|>"], tokens["<|turn>"], 12, 13]
    placeholder = tokens["[AUDIO]" if model_type == "voxtral" else "<|audio|>"]
    rows, queries = [], []
    for n in counts:
        head = head_tokens + open_audio + [placeholder] * n + close_audio
        rows.append(head + list(question) + tail)
        queries.append([False] * len(head) + [True] * len(question) + [False] * len(tail))
    return _left_padded(rows, queries, pad=590) | audio


# --- GLM-ASR and Qwen3-ASR ---------------------------------------------------------------------


def glmasr_config(ids: dict, vocab_size: int):
    """A tiny GLM-ASR config with the real audio geometry; ``ids``: its template tokens' ids by name.

    128 mel bins, 30 s windows of 3000 frames -> 1500 encoder positions, four of them stacked per token
    (``audio_config.intermediate_size = 4 x hidden``, as the release's 5120 = 4 x 1280): 375 tokens (80 ms
    each) per window. The language model is a tiny Llama with grouped-query attention; input and output
    embeddings are tied, as in the release.
    """
    from transformers import GlmAsrConfig

    return GlmAsrConfig(
        audio_config={
            "model_type": "glmasr_encoder",
            "hidden_size": 16,
            "intermediate_size": 64,  # 4 stacked encoder positions per audio token
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_mel_bins": 128,
            "initializer_range": 0.05,
        },
        # GlmAsrConfig fills what is left out with the release's text sizes: everything is named here.
        text_config={
            "model_type": "llama",
            **{k: v for k, v in _TINY_TEXT.items() if k not in ("bos_token_id", "eos_token_id", "pad_token_id")},
            "vocab_size": vocab_size,
            "head_dim": 16,
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|assistant|>"],
            "pad_token_id": ids["<|endoftext|>"],
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
        },
        audio_token_id=ids["<|pad|>"],
    )


def qwen3_asr_config(ids: dict, vocab_size: int):
    """A tiny Qwen3-ASR config with the real audio geometry; ``ids``: its template tokens' ids by name.

    128 mel bins in 100-frame chunks of 13 tokens (three stride-2 convolutions), attention in 8 s windows
    (``n_window_infer = 800`` frames); the language model is a tiny Qwen3 (q/k norms, grouped-query
    attention). The top-level pad and eos ids are the tiny ones (the class defaults are the release's).
    """
    from transformers import Qwen3ASRConfig

    return Qwen3ASRConfig(
        audio_config={
            "d_model": 16,
            "encoder_layers": 1,
            "encoder_attention_heads": 2,
            "encoder_ffn_dim": 32,
            "num_mel_bins": 128,
            "downsample_hidden_size": 8,
            "output_dim": 64,  # the language model's width
            "initializer_range": 0.05,
        },
        text_config={"model_type": "qwen3", **_TINY_TEXT, "vocab_size": vocab_size, "head_dim": 16},
        audio_token_id=ids["<|audio_pad|>"],
        pad_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
    )


def _asr_inputs(model_type: str, tokens: dict, frames: list, generator, question: tuple) -> dict:
    """:func:`tiny_family_inputs` for GLM-ASR (30 s windows, every recording's in order) and Qwen3-ASR (one row each).

    The placeholder counts are each stock processor's own rule: GLM-ASR's conv formula over a recording's
    frames (its windows together), Qwen3-ASR's 13 per 100-frame chunk plus the conv formula on the rest.
    """
    if model_type == "glmasr":
        from transformers import GlmAsrProcessor

        windows = [[min(3000, f - start) for start in range(0, f, 3000)] for f in frames]
        flat = [w for row in windows for w in row]
        features = torch.randn(len(flat), 128, 3000, generator=generator)
        mask = torch.zeros(len(flat), 3000, dtype=torch.long)
        for i, w in enumerate(flat):
            mask[i, :w] = 1
            features[i, :, w:] = 0
        # The stock processor's count (an instance method that reads nothing from the instance).
        counts = [int(GlmAsrProcessor._get_audio_token_length(None, torch.tensor(sum(row)))) for row in windows]
        head, placeholder, close = (
            [tokens["<|user|>"], 10, 11, tokens["<|begin_of_audio|>"]],
            "<|pad|>",
            "<|end_of_audio|>",
        )
        tail = [tokens["<|assistant|>"], 12, 13]
    else:
        from transformers.models.qwen3_asr.modeling_qwen3_asr import _get_feat_extract_output_lengths

        length = -(-max(frames) // 100) * 100  # the feature extractor pads to whole 100-frame chunks
        features = torch.randn(len(frames), 128, length, generator=generator)
        mask = torch.zeros(len(frames), length, dtype=torch.long)
        for i, f in enumerate(frames):
            mask[i, :f] = 1
            features[i, :, f:] = 0
        counts = [int(n) for n in _get_feat_extract_output_lengths(mask.sum(-1))]
        head, placeholder, close = (
            [tokens["<|im_start|>"], 10, 11, tokens["<|audio_start|>"]],
            "<|audio_pad|>",
            "<|audio_end|>",
        )
        tail = [tokens["<|im_end|>"], tokens["<|im_start|>"], 12, 13]
    rows, queries = [], []
    for n in counts:
        start = head + [tokens[placeholder]] * n + [tokens[close]]
        rows.append(start + list(question) + tail)
        queries.append([False] * len(start) + [True] * len(question) + [False] * len(tail))
    return _left_padded(rows, queries, pad=590) | {"input_features": features, "input_features_mask": mask}


def _left_padded(rows: list, queries: list, pad: int) -> dict:
    length = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), length), pad, dtype=torch.long)
    attention_mask = torch.zeros(len(rows), length, dtype=torch.long)
    query_mask = torch.zeros(len(rows), length, dtype=torch.bool)
    for b, (row, query) in enumerate(zip(rows, queries)):
        input_ids[b, length - len(row) :] = torch.tensor(row)
        attention_mask[b, length - len(row) :] = 1
        query_mask[b, length - len(row) :] = torch.tensor(query)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "query_mask": query_mask}


def tiny_voxtral(seed: int = 0):
    """Build ``(model, tokenizer)``: a tiny random ``VoxtralForConditionalGeneration`` whose ids are the tokenizer's.

    The model is :func:`voxtral_config`'s; the tokenizer is the project's trained BPE with Voxtral's
    control tokens (what :func:`tiny_voxtral_processor` uses), so processor outputs feed the model.

    Example:
        >>> model, tokenizer = tiny_voxtral()
        >>> model.config.audio_token_id == tokenizer.convert_tokens_to_ids("[AUDIO]")
        True
    """
    from transformers import VoxtralForConditionalGeneration

    tokenizer = _family_tokenizer(VOXTRAL_SPECIAL_TOKENS, "<s>", "</s>", "<pad>")
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in VOXTRAL_SPECIAL_TOKENS}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = VoxtralForConditionalGeneration(voxtral_config(ids, len(tokenizer)))
    model.generation_config.pad_token_id = ids["<pad>"]
    model.generation_config.eos_token_id = ids["</s>"]
    return model.eval(), tokenizer


def tiny_gemma4(seed: int = 0):
    """Build ``(model, tokenizer)``: a tiny random ``Gemma4ForConditionalGeneration`` whose ids are the tokenizer's.

    The model is :func:`gemma4_config`'s; the tokenizer is the project's trained BPE with Gemma 4's
    turn and audio tokens (what :func:`tiny_gemma4_processor` uses).

    Example:
        >>> model, tokenizer = tiny_gemma4()
        >>> model.config.audio_token_id == tokenizer.convert_tokens_to_ids("<|audio|>")
        True
    """
    from transformers import Gemma4ForConditionalGeneration

    tokenizer = _family_tokenizer(GEMMA4_SPECIAL_TOKENS, "<bos>", "<eos>", "<pad>")
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in GEMMA4_SPECIAL_TOKENS}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Gemma4ForConditionalGeneration(gemma4_config(ids, len(tokenizer)))
    model.generation_config.pad_token_id = ids["<pad>"]
    model.generation_config.eos_token_id = ids["<eos>"]
    return model.eval(), tokenizer


# Modelled on the Gemma chat layout (turn markers around each message, the assistant's role named
# "model"); an audio item renders as one placeholder that the processor expands.
GEMMA4_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|turn>"
    "{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'audio' %}<|audio|>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}<turn|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|turn>model\n{% endif %}"
)


def tiny_gemma4_processor():
    """A ``Gemma4SpeechPruneProcessor`` around the stock Gemma 4 feature extractor and the tiny tokenizer.

    Its token ids are those of :func:`tiny_gemma4`'s model, so its outputs feed that model as they are.
    """
    from transformers import Gemma4AudioFeatureExtractor

    from speechprune.modeling.processing_speechprune_gemma4 import Gemma4SpeechPruneProcessor

    tokenizer = _family_tokenizer(GEMMA4_SPECIAL_TOKENS, "<bos>", "<eos>", "<pad>")
    return Gemma4SpeechPruneProcessor(
        feature_extractor=Gemma4AudioFeatureExtractor(), tokenizer=tokenizer, chat_template=GEMMA4_CHAT_TEMPLATE
    )


def tiny_voxtral_processor():
    """A ``VoxtralSpeechPruneProcessor`` around a 128-bin Whisper feature extractor and the tiny tokenizer.

    Its token ids are those of :func:`tiny_voxtral`'s model, so its outputs feed that model as they are.
    """
    from speechprune.modeling.processing_speechprune_voxtral import VoxtralSpeechPruneProcessor

    tokenizer = _family_tokenizer(VOXTRAL_SPECIAL_TOKENS, "<s>", "</s>", "<pad>")
    feature_extractor = WhisperFeatureExtractor(
        feature_size=128, sampling_rate=16000, hop_length=160, chunk_length=30, n_fft=400
    )
    return VoxtralSpeechPruneProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer)


__all__ = [
    "tiny_qwen2_audio",
    "tiny_processor",
    "tiny_config",
    "tiny_speechprune",
    "tiny_family",
    "tiny_family_config",
    "tiny_family_inputs",
    "SPECIAL_TOKENS",
    "TINY_FAMILIES",
    "TINY_FAMILY_TOKENS",
    "tiny_voxtral",
    "tiny_gemma4",
    "tiny_voxtral_processor",
    "tiny_gemma4_processor",
    "voxtral_config",
    "gemma4_config",
    "glmasr_config",
    "qwen3_asr_config",
]
