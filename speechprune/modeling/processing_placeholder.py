"""``PlaceholderProcessor``: what the processors that expand one audio placeholder per recording share.

Gemma 4, AudioFlamingo3, MusicFlamingo and the Qwen Omni thinkers all take a prompt with one audio
placeholder per recording, which their processor turns into as many placeholders as the recording has
audio tokens (optionally between an opening and a closing token). Only the audio side differs from
family to family; this base class does the rest, once:

1. the prompts and recordings are checked and paired (``processing_speechprune.prompts_and_recordings``,
   which runs ``audio_input.check_recordings``: 16 kHz, mono, float or int16 / int32 PCM);
2. the family's :meth:`PlaceholderProcessor._featurize` gives the audio inputs and each recording's token
   count;
3. each placeholder becomes ``audio_open + audio_token * count + audio_close``;
4. the text is tokenized, left padded, and ``query_mask`` marks SPEC section 5's query tokens: after the
   last ``query_after`` up to the next ``turn_end`` (``processing_speechprune._query_mask``).

A subclass defines ``__init__`` (``feature_extractor``, ``tokenizer``, ``chat_template``, its token names
and ``query``, each stored under its own name, because ``ProcessorMixin`` saves what ``__init__`` takes),
:meth:`_featurize`, and the attributes ``audio_token``, ``audio_open`` / ``audio_close`` (``""`` where the
chat template writes them), ``query_after``, ``turn_end``, and ``long_audio`` / ``max_seconds`` (what it does
with long audio, for the model card).

This file imports only numpy, transformers and its siblings, so it can be copied into a Hub repo.
"""

from __future__ import annotations

import numpy as np
from transformers import BatchFeature, ProcessorMixin

from .audio_input import SAMPLING_RATE
from .processing_speechprune import _check_query, _query_mask, prompts_and_recordings, spiral_messages


class PlaceholderProcessor(ProcessorMixin):
    """Shared ``spiral_prompt`` and ``__call__``; see the module docstring for what a family adds."""

    audio_open = ""
    audio_close = ""
    turn_end = "<|im_end|>"
    long_audio = ""  # one line on what the processor does with long audio (the model card shows it)
    max_seconds = None  # the longest recording it takes, in seconds; None: any length

    def spiral_prompt(self, question: str, choices: list[str]) -> str:
        """SPEC section 5's prompt in the family's chat template: one audio, question, choices, instruction."""
        messages = spiral_messages(question, choices)
        return self.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    @property
    def audio_token_id(self) -> int:
        """The placeholder's id in the tokenizer."""
        return self.tokenizer.convert_tokens_to_ids(self.audio_token)

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
        """Tokenize ``text`` (one audio placeholder per recording) and featurize ``audio`` (16 kHz mono arrays).

        Args:
            text: one prompt or a list of prompts.
            audio: a 1-D array or a list of them, in the order their placeholders appear.
            sampling_rate: must be 16000 when ``audio`` is given.
            query: ``"user_text"`` (question and choice lines) or ``"question"``; ``None``: ``self.query``.
            return_tensors, padding, **kwargs: passed to the tokenizer (padding is always on the left).

        Returns:
            ``BatchFeature`` with ``input_ids``, ``attention_mask`` (left padded), ``query_mask``
            ``(batch, seq)`` bool and, with audio, the family's audio inputs (see its ``_featurize``).
        """
        query = self.query if query is None else query
        _check_query(query)
        texts, recordings = prompts_and_recordings(text, audio, sampling_rate, self.audio_token)
        audio_inputs, counts = self._featurize(recordings) if recordings else ({}, [])
        texts = self._expand(texts, counts)
        encoded = self.tokenizer(
            texts,
            padding=padding,
            padding_side="left",
            return_offsets_mapping=True,
            add_special_tokens=False,  # the chat template writes any begin-of-text token itself
            **kwargs,
        )
        offsets = encoded.pop("offset_mapping")
        special = set(self.tokenizer.all_special_ids)
        encoded["query_mask"] = [
            _query_mask(t, offs, ids, query, self.query_after, special, turn_end=self.turn_end)
            for t, offs, ids in zip(texts, offsets, encoded["input_ids"])
        ]
        return BatchFeature({**encoded, **audio_inputs}, tensor_type=return_tensors)

    def _featurize(self, recordings: list[np.ndarray]) -> tuple[dict, list[int]]:
        """``(audio inputs, token count of each recording)`` for checked float32 recordings."""
        raise NotImplementedError

    def _expand(self, texts: list[str], counts: list[int]) -> list[str]:
        """Each placeholder (in order over the batch) -> ``audio_open`` + ``count`` placeholders + ``audio_close``."""
        remaining, expanded = iter(counts), []
        for t in texts:
            pieces = t.split(self.audio_token)
            out = pieces[0]
            for piece in pieces[1:]:
                out += self.audio_open + self.audio_token * next(remaining) + self.audio_close + piece
            expanded.append(out)
        return expanded


def too_short(index: int, wave: np.ndarray) -> ValueError:
    """The error for a recording that yields no audio token."""
    seconds = len(wave) / SAMPLING_RATE
    return ValueError(f"audio[{index}] has {len(wave)} samples ({seconds:.4f} s), too short for one audio token")


def pad_frames(rows: list[tuple[np.ndarray, np.ndarray]], time_axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Stack ``(features, frame mask)`` rows of different lengths, zero padded on the right (mask 0 there).

    ``time_axis`` is the frames axis of one row's features (``-1`` for ``(mel, frames)``, ``0`` for
    ``(frames, mel)``). The padding's values never reach a model: every family reads only masked-in frames.
    """
    frames = max(len(mask) for _, mask in rows)
    first = np.moveaxis(rows[0][0], time_axis, 0)
    features = np.zeros((len(rows), frames, *first.shape[1:]), dtype=np.float32)
    masks = np.zeros((len(rows), frames), dtype=rows[0][1].dtype)
    for i, (feature, mask) in enumerate(rows):
        features[i, : len(mask)] = np.moveaxis(feature, time_axis, 0)
        masks[i, : len(mask)] = mask
    return np.moveaxis(features, 1, time_axis + 1 if time_axis >= 0 else time_axis), masks


__all__ = ["PlaceholderProcessor", "pad_frames", "too_short"]
