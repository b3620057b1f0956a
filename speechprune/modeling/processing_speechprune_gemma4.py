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
from transformers import BatchFeature, ProcessorMixin

from .audio_input import SAMPLING_RATE
from .processing_speechprune import _check_query, _query_mask, prompts_and_recordings, spiral_messages

MAX_CLIP_SAMPLES = 30 * SAMPLING_RATE


def clip_token_count(frame_mask: np.ndarray) -> int:
    """Soft tokens of one clip: its mel-frame mask subsampled by two stride-2 convolutions (kernel 3, pad 1)."""
    mask = np.asarray(frame_mask, dtype=bool)
    for _ in range(2):
        mask = mask[::2][: (len(mask) + 2 - 3) // 2 + 1]
    return int(mask.sum())


class Gemma4SpeechPruneProcessor(ProcessorMixin):
    """Gemma 4 audio + text processor for SpeechPrune: stock features up to 30 s, an error beyond, and ``query_mask``.

    Args:
        feature_extractor: a ``Gemma4AudioFeatureExtractor``.
        tokenizer: the Gemma 4 tokenizer (its ``chat_template`` renders ``spiral_prompt``).
        audio_token, boa_token, eoa_token: the soft-token placeholder and the tokens around a clip.
        turn_end: the end-of-turn marker that closes the query region.
        query: default ``query`` of every call (``"user_text"`` or ``"question"``).
    """

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
        self.audio_token_id = tokenizer.convert_tokens_to_ids(audio_token)
        super().__init__(feature_extractor, tokenizer, chat_template=chat_template)

    def spiral_prompt(self, question: str, choices: list[str]) -> str:
        """SPEC section 5's prompt in the Gemma chat template: one audio, question, choices, instruction."""
        messages = spiral_messages(question, choices)
        return self.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def __call__(
        self,
        text=None,
        audio=None,
        sampling_rate: int | None = None,
        query: str | None = None,
        return_tensors: str | None = None,
        padding: bool | str = True,
        **kwargs,
    ) -> BatchFeature:
        """Tokenize ``text`` (one ``<|audio|>`` per clip) and featurize ``audio`` (clips of at most 30 s).

        Returns:
            ``BatchFeature`` with ``input_ids``, ``attention_mask`` (left padded), ``query_mask``
            ``(batch, seq)`` and, with audio, ``input_features`` ``(clips, frames, 128)`` and
            ``input_features_mask`` ``(clips, frames)``.

        Raises:
            ValueError: a clip over 30 s (Gemma 4's cap), a wrong sampling rate, bad samples, or a
                placeholder count that does not match the clips.
        """
        query = self.query if query is None else query
        _check_query(query)
        texts, clips = prompts_and_recordings(text, audio, sampling_rate, self.audio_token)
        audio_inputs, counts = self._featurize(clips) if clips else ({}, [])
        texts = self._expand(texts, counts)
        encoded = self.tokenizer(
            texts,
            padding=padding,
            padding_side="left",
            return_offsets_mapping=True,
            add_special_tokens=False,
            **kwargs,
        )
        offsets = encoded.pop("offset_mapping")
        special = set(self.tokenizer.all_special_ids)
        encoded["query_mask"] = [
            _query_mask(t, offs, ids, query, self.eoa_token, special, turn_end=self.turn_end)
            for t, offs, ids in zip(texts, offsets, encoded["input_ids"])
        ]
        return BatchFeature({**encoded, **audio_inputs}, tensor_type=return_tensors)

    def _featurize(self, clips: list[np.ndarray]):
        features, masks, counts = [], [], []
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
                raise ValueError(f"audio[{i}] has {len(wave)} samples, too short for one audio token (40 ms)")
            features.append(out["input_features"][0])
            masks.append(mask)
        frames = max(len(m) for m in masks)
        padded = np.zeros((len(features), frames, features[0].shape[-1]), dtype=np.float32)
        padded_mask = np.zeros((len(features), frames), dtype=bool)
        for i, (feature, mask) in enumerate(zip(features, masks)):
            padded[i, : len(mask)], padded_mask[i, : len(mask)] = feature, mask
        return {"input_features": padded, "input_features_mask": padded_mask}, counts

    def _expand(self, texts: list[str], counts: list[int]) -> list[str]:
        """Each ``<|audio|>`` (in order over the batch) -> ``<|audio>`` + its clip's soft tokens + ``<audio|>``."""
        remaining, expanded = iter(counts), []
        for t in texts:
            pieces = t.split(self.audio_token)
            out = pieces[0]
            for piece in pieces[1:]:
                out += self.boa_token + self.audio_token * next(remaining) + self.eoa_token + piece
            expanded.append(out)
        return expanded


Gemma4SpeechPruneProcessor.register_for_auto_class("AutoProcessor")

__all__ = ["Gemma4SpeechPruneProcessor", "clip_token_count", "MAX_CLIP_SAMPLES"]
