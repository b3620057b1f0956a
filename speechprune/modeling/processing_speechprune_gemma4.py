"""``Gemma4SpeechPruneProcessor``: Gemma 4's audio processor that refuses clips over 30 s instead of cutting them.

The stock ``Gemma4AudioFeatureExtractor`` truncates every clip at 480,000 samples (30 s) without
a word, so a 90 s recording would be answered from its first 30 s. The cap belongs to the model
(its audio encoder and its processor's ``audio_seq_length`` of 750 tokens), so this processor does
not window around it: a clip over 30 s is an error that says so and how to split it. Up to 30 s
it gives the stock features and placeholder counts:

1. each clip (16 kHz mono, float or int16 / int32 PCM) is featurized on its own (so a clip's
   features never depend on the rest of the batch) and zero-padded to the batch's longest clip,
   with ``input_features_mask`` False on the padding;
2. each ``<|audio|>`` in the text becomes ``<|audio>`` + one ``<|audio|>`` per soft token +
   ``<audio|>``, the token count being the stock rule (the frame mask subsampled by the encoder's two
   stride-2 convolutions): 750 for 30 s, one per 40 ms;
3. ``query_mask`` marks SPEC section 5's query tokens after the last ``<audio|>`` up to ``<turn|>``
   (``spiral_prompt`` renders the prompt in the tokenizer's Gemma chat template).

Example:
    >>> import numpy as np
    >>> from speechprune.testing import tiny_gemma4_processor
    >>> processor = tiny_gemma4_processor()
    >>> prompt = processor.spiral_prompt("Who spoke?", ["Ann", "Bob", "Cy", "Di"])
    >>> inputs = processor(text=prompt, audio=np.zeros(16000 * 30, np.float32), sampling_rate=16000)
    >>> inputs["input_features"].shape, inputs["input_ids"][0].count(processor.audio_token_id)
    ((1, 2999, 128), 750)

This file imports only numpy, transformers and its siblings, so it can be copied into a Hub repo.
"""

from __future__ import annotations

import numpy as np

from .audio_input import SAMPLING_RATE
from .processing_placeholder import PlaceholderProcessor, pad_frames, too_short
from .processing_speechprune import _check_query

MAX_CLIP_SAMPLES = 30 * SAMPLING_RATE


def clip_token_count(frame_mask: np.ndarray) -> int:
    """Soft tokens of one clip: its mel-frame mask subsampled by two stride-2 convolutions (kernel 3, pad 1)."""
    mask = np.asarray(frame_mask, dtype=bool)
    for _ in range(2):
        mask = mask[::2][: (len(mask) + 2 - 3) // 2 + 1]
    return int(mask.sum())


class Gemma4SpeechPruneProcessor(PlaceholderProcessor):
    """Gemma 4 audio + text processor for SpeechPrune: stock features up to 30 s, an error beyond, and ``query_mask``.

    Call it with ``text`` (one ``<|audio|>`` per clip), ``audio``, ``sampling_rate`` and ``query``
    (``processing_placeholder.PlaceholderProcessor.__call__``); with audio it returns ``input_features``
    ``(clips, frames, 128)`` and ``input_features_mask`` ``(clips, frames)``. A clip over 30 s (Gemma 4's
    cap) is a ``ValueError``.

    Args:
        feature_extractor: a ``Gemma4AudioFeatureExtractor``.
        tokenizer: the Gemma 4 tokenizer (its ``chat_template`` renders ``spiral_prompt``).
        audio_token, boa_token, eoa_token: the soft-token placeholder and the tokens around a clip.
        turn_end: the end-of-turn marker that closes the query region.
        query: default ``query`` of every call (``"user_text"`` or ``"question"``).
    """

    long_audio = "at most 30 s per clip, the model's own cap: a longer clip is an error (split it into clips)"
    max_seconds = MAX_CLIP_SAMPLES // SAMPLING_RATE

    def __init__(
        self,
        feature_extractor=None,
        tokenizer=None,
        chat_template=None,
        audio_token="<|audio|>",
        boa_token="<|audio>",
        eoa_token="<audio|>",
        turn_end="<turn|>",
        query="user_text",
    ):
        _check_query(query)
        self.audio_token, self.boa_token, self.eoa_token = audio_token, boa_token, eoa_token
        self.turn_end, self.query = turn_end, query
        super().__init__(feature_extractor, tokenizer, chat_template=chat_template)

    audio_open = property(lambda self: self.boa_token)
    audio_close = property(lambda self: self.eoa_token)
    query_after = property(lambda self: self.eoa_token)

    def _featurize(self, clips: list[np.ndarray]):
        rows, counts = [], []
        for i, wave in enumerate(clips):
            if len(wave) > MAX_CLIP_SAMPLES:
                raise ValueError(
                    f"audio[{i}] is {len(wave) / SAMPLING_RATE:.2f} s, but Gemma 4 takes at most 30 s per clip (its "
                    "audio encoder's cap; the stock processor would silently keep only the first 30 s): split the "
                    "recording into clips of at most 30 s, each with its own audio placeholder"
                )
            out = self.feature_extractor([wave], sampling_rate=SAMPLING_RATE, return_tensors="np")
            mask = np.asarray(out["input_features_mask"][0], dtype=bool)
            counts.append(clip_token_count(mask))
            if counts[-1] == 0:
                raise too_short(i, wave)
            rows.append((out["input_features"][0], mask))
        features, masks = pad_frames(rows, time_axis=0)
        return {"input_features": features, "input_features_mask": masks}, counts


Gemma4SpeechPruneProcessor.register_for_auto_class("AutoProcessor")

__all__ = ["Gemma4SpeechPruneProcessor", "clip_token_count", "MAX_CLIP_SAMPLES"]
