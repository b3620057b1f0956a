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


__all__ = ["tiny_qwen2_audio", "tiny_processor", "tiny_config", "SPECIAL_TOKENS", "tiny_voxtral", "tiny_gemma4"]


# --- Voxtral and Gemma 4 -------------------------------------------------------------------------
# Their tokenizers here are the project's trained byte-level BPE with each family's special tokens
# added under the release's names, so that prompts render and tokenize as the family's template
# lays them out; the real vocabularies (Tekken, Gemma's SentencePiece) are not reproduced.

VOXTRAL_SPECIAL_TOKENS = ["<s>", "</s>", "<pad>", "[INST]", "[/INST]", "[AUDIO]", "[BEGIN_AUDIO]"]
GEMMA4_SPECIAL_TOKENS = ["<bos>", "<eos>", "<pad>", "<|turn>", "<turn|>", "<|audio>", "<|audio|>", "<audio|>"]


def _family_tokenizer(special: list[str], bos: str, eos: str, pad: str, vocab_size: int = 600):
    tokenizer = copy.deepcopy(_cached_tokenizer(vocab_size))
    tokenizer.add_special_tokens({"additional_special_tokens": special})
    tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token = bos, eos, pad
    return tokenizer


def tiny_voxtral(seed: int = 0, *, model_class=None):
    """Build ``(model, tokenizer)``: a tiny random ``VoxtralForConditionalGeneration`` (offline, seconds).

    The audio geometry is real: 128 mel bins and 1500 encoder positions per 30 s chunk of 3000
    frames, four positions stacked per token (``audio_config.intermediate_size = 4 x hidden``),
    so a chunk gives 375 tokens (80 ms each). The language model is a tiny Llama with grouped-query
    attention and no biases, as the release's. ``audio_token_id`` is ``[AUDIO]``.

    Example:
        >>> model, tokenizer = tiny_voxtral()
        >>> model.config.audio_token_id == tokenizer.convert_tokens_to_ids("[AUDIO]")
        True
    """
    from transformers import VoxtralConfig, VoxtralForConditionalGeneration

    tokenizer = _family_tokenizer(VOXTRAL_SPECIAL_TOKENS, "<s>", "</s>", "<pad>")
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in VOXTRAL_SPECIAL_TOKENS}
    config = VoxtralConfig(
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
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "vocab_size": len(tokenizer),
            "max_position_embeddings": 8192,
            "rope_theta": 10000.0,
            "initializer_range": 0.05,
            "bos_token_id": ids["<s>"],
            "eos_token_id": ids["</s>"],
            "pad_token_id": ids["<pad>"],
            "tie_word_embeddings": False,
        },
        audio_token_id=ids["[AUDIO]"],
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = (model_class or VoxtralForConditionalGeneration)(config)
    model.generation_config.pad_token_id = ids["<pad>"]
    model.generation_config.eos_token_id = ids["</s>"]
    return model.eval(), tokenizer


def tiny_gemma4(seed: int = 0, *, model_class=None):
    """Build ``(model, tokenizer)``: a tiny random ``Gemma4ForConditionalGeneration`` with audio, no vision.

    The pitfalls of a tiny Gemma 4: the audio subsampler's first channel count stays 128 (the mel
    bins), ``vision_config=None`` leaves the vision tower out, the text model keeps per-layer
    inputs (``hidden_size_per_layer_input``), a sliding and a global layer type with their own head
    widths (16 and 32: phase 2 must take ``head_dim`` from layer 0), and KV-shared layers. A 30 s
    clip gives 750 audio tokens (40 ms), as the release's.

    Example:
        >>> model, tokenizer = tiny_gemma4()
        >>> model.config.audio_token_id == tokenizer.convert_tokens_to_ids("<|audio|>")
        True
    """
    from transformers import Gemma4Config, Gemma4ForConditionalGeneration

    tokenizer = _family_tokenizer(GEMMA4_SPECIAL_TOKENS, "<bos>", "<eos>", "<pad>")
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in GEMMA4_SPECIAL_TOKENS}
    config = Gemma4Config(
        text_config={
            "model_type": "gemma4_text",
            "vocab_size": len(tokenizer),
            "vocab_size_per_layer_input": len(tokenizer),
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
            "eos_token_id": ids["<eos>"],
            "pad_token_id": ids["<pad>"],
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
        image_token_id=None,
        video_token_id=None,
        boi_token_id=None,
        eoi_token_id=None,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = (model_class or Gemma4ForConditionalGeneration)(config)
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
