"""Audio + text processors of the Qwen2.5-Omni and Qwen3-Omni-MoE thinkers, any length, with ``query_mask``.

The stock ``Qwen2_5OmniProcessor`` pads every recording to its feature extractor's ``n_samples`` with
truncation on: with the released ``preprocessor_config.json`` (``chunk_length`` 300) anything after
300 s is cut without a word. The cap is the processor's, not the model's: the thinker's audio encoder
attends within 2 s chunks (200 mel frames, 100 positions after its stride-2 convolution, well inside its
positional table of 1500), so it takes any number of them. The stock ``Qwen3OmniMoeProcessor`` of this
transformers version already pads to the longest recording with truncation off (no cut); its encoder
works on 1 s chunks (13 tokens each) inside 8 s attention windows, again for any length.

These processors featurize each recording on its own, never cut it, and count its tokens with the
family's own formula:

1. each recording (16 kHz mono, float or int16 / int32 PCM) gets Whisper log-mel features over its whole
   length (Qwen2.5-Omni: padded to a multiple of ``n_samples``, so up to 300 s they are the stock
   features exactly; Qwen3-Omni: unpadded, as the stock processor gives a recording alone); the rows are
   zero padded to the longest (``input_features`` ``(batch, 128, frames)``, ``feature_attention_mask``
   ``(batch, frames)``, whose padding the thinker never reads);
2. a recording with ``L`` valid frames has ``((L - 1) // 2 + 1 - 2) // 2 + 1`` tokens (Qwen2.5-Omni,
   one per 40 ms) or :func:`qwen3_omni_token_count` (13 per 100 frames), and its placeholder becomes that
   many placeholders (the chat template writes the audio start and end tokens around it);
3. ``query_mask`` marks the query after the last ``<|audio_eos|>`` (Qwen3-Omni: ``<|audio_end|>``) up to
   ``<|im_end|>``.

These processors take text and audio only; images and video go through the stock processor. The
language model's position limit still applies: the pruning model refuses a prompt that is longer than
it after selection.

Example:
    >>> import numpy as np
    >>> from speechprune.testing import tiny_family_processor
    >>> processor = tiny_family_processor("qwen3_omni_moe_thinker")
    >>> prompt = processor.spiral_prompt("Who spoke?", ["Ann", "Bob", "Cy", "Di"])
    >>> inputs = processor(text=prompt, audio=np.zeros(16000 * 400, np.float32), sampling_rate=16000)
    >>> inputs["input_features"].shape, inputs["input_ids"][0].count(processor.audio_token_id)
    ((1, 128, 40000), 5200)

This file imports only numpy, transformers and its siblings, so it can be copied into a Hub repo.
"""

from __future__ import annotations

import numpy as np

from .audio_input import SAMPLING_RATE
from .processing_placeholder import PlaceholderProcessor, pad_frames, too_short
from .processing_speechprune import _check_query, window_token_count

QWEN3_OMNI_CHUNK_FRAMES = 100  # the encoder's chunk: 2 * n_window mel frames (1 s)
QWEN3_OMNI_CHUNK_TOKENS = 13  # tokens of one full chunk after its three stride-2 convolutions


def qwen3_omni_token_count(num_frames: int) -> int:
    """Qwen3-Omni's audio tokens for ``num_frames`` valid mel frames: 13 per full 1 s chunk, plus the last one's.

    The last, partial chunk of ``r`` frames goes through three stride-2 convolutions (kernel 3, padding 1).

    Example:
        >>> [qwen3_omni_token_count(n) for n in (1, 99, 100, 101, 3000)]
        [1, 13, 13, 14, 390]
    """
    tail = num_frames % QWEN3_OMNI_CHUNK_FRAMES
    for _ in range(3):
        tail = (tail - 1) // 2 + 1  # 0 stays 0
    return QWEN3_OMNI_CHUNK_TOKENS * (num_frames // QWEN3_OMNI_CHUNK_FRAMES) + tail


class Qwen2_5OmniSpeechPruneProcessor(PlaceholderProcessor):
    """Qwen2.5-Omni thinker processor for SpeechPrune: the whole recording, however long, and ``query_mask``.

    Call it with ``text`` (one ``<|AUDIO|>`` per recording, between the template's ``<|audio_bos|>`` and
    ``<|audio_eos|>``), ``audio``, ``sampling_rate`` and ``query``
    (``processing_placeholder.PlaceholderProcessor.__call__``).

    Args:
        feature_extractor: the checkpoint's ``WhisperFeatureExtractor`` (128 mel bins).
        tokenizer: the checkpoint's tokenizer (its ``chat_template`` renders ``spiral_prompt``).
        audio_token, audio_bos_token, audio_eos_token: the placeholder and the template's tokens around it.
        query: default ``query`` of every call (``"user_text"`` or ``"question"``).
    """

    long_audio = "any length: the whole recording is featurized (the stock processor cuts at 300 s)"
    pad_to_window = True  # pad to a multiple of n_samples, as the stock processor pads to n_samples

    def __init__(
        self,
        feature_extractor=None,
        tokenizer=None,
        chat_template=None,
        audio_token="<|AUDIO|>",
        audio_bos_token="<|audio_bos|>",
        audio_eos_token="<|audio_eos|>",
        query="user_text",
    ):
        _check_query(query)
        self.audio_token, self.audio_bos_token, self.audio_eos_token = audio_token, audio_bos_token, audio_eos_token
        self.query = query
        super().__init__(feature_extractor, tokenizer, chat_template=chat_template)

    query_after = property(lambda self: self.audio_eos_token)

    @staticmethod
    def token_count(num_frames: int) -> int:
        """Audio tokens of a recording with ``num_frames`` valid mel frames (one per 40 ms)."""
        return window_token_count(num_frames)

    def _featurize(self, recordings: list[np.ndarray]):
        rows, counts = [], []
        for i, wave in enumerate(recordings):
            if not self.pad_to_window and len(wave) <= self.feature_extractor.n_fft // 2:
                raise too_short(i, wave)  # unpadded, the extractor's reflect padding needs more samples
            out = self.feature_extractor(
                wave,
                sampling_rate=SAMPLING_RATE,
                padding="longest",
                pad_to_multiple_of=self.feature_extractor.n_samples if self.pad_to_window else None,
                truncation=False,
                return_attention_mask=True,
                return_tensors="np",
            )
            mask = out["attention_mask"][0].astype(np.int32)
            counts.append(self.token_count(int(mask.sum())))
            if counts[-1] == 0:
                raise too_short(i, wave)
            rows.append((out["input_features"][0], mask))
        features, masks = pad_frames(rows, time_axis=-1)
        return {"input_features": features, "feature_attention_mask": masks}, counts


class Qwen3OmniMoeSpeechPruneProcessor(Qwen2_5OmniSpeechPruneProcessor):
    """Qwen3-Omni-MoE thinker processor for SpeechPrune: the whole recording, 13 tokens per second, ``query_mask``.

    As :class:`Qwen2_5OmniSpeechPruneProcessor`, with Qwen3-Omni's tokens (``<|audio_pad|>`` between the
    template's ``<|audio_start|>`` and ``<|audio_end|>``) and token count (:func:`qwen3_omni_token_count`).
    """

    long_audio = "any length: the whole recording is featurized, as the stock processor of transformers 5 does"
    pad_to_window = False  # the stock processor pads to the longest recording only

    def __init__(
        self,
        feature_extractor=None,
        tokenizer=None,
        chat_template=None,
        audio_token="<|audio_pad|>",
        audio_bos_token="<|audio_start|>",
        audio_eos_token="<|audio_end|>",
        query="user_text",
    ):
        super().__init__(
            feature_extractor, tokenizer, chat_template, audio_token, audio_bos_token, audio_eos_token, query
        )

    @staticmethod
    def token_count(num_frames: int) -> int:
        """Audio tokens of a recording with ``num_frames`` valid mel frames (13 per second)."""
        return qwen3_omni_token_count(num_frames)


Qwen2_5OmniSpeechPruneProcessor.register_for_auto_class("AutoProcessor")
Qwen3OmniMoeSpeechPruneProcessor.register_for_auto_class("AutoProcessor")

__all__ = ["Qwen2_5OmniSpeechPruneProcessor", "Qwen3OmniMoeSpeechPruneProcessor", "qwen3_omni_token_count"]
