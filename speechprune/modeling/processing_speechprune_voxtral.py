"""``VoxtralSpeechPruneProcessor``: Voxtral's audio + text processor with SPEC section 5's ``query_mask``.

Voxtral's stock processor takes audio only through ``apply_chat_template``, which needs the
``mistral-common`` package and the checkpoint's ``tekken.json`` to count the audio tokens. This
processor takes ``text`` and ``audio`` like the other project processors and keeps the stock audio
path, which already handles any length:

1. each recording (16 kHz mono, float or int16 / int32 PCM) is padded to a multiple of 30 s and
   featurized (Whisper features, 128 mel bins), then cut into 30 s chunks of 3000 frames
   (``input_features`` ``(chunks, 128, 3000)``, recording after recording), as the stock
   ``VoxtralProcessor`` does;
2. its one ``[AUDIO]`` in the text becomes 375 placeholders per chunk (:func:`audio_token_count`):
   the encoder gives 1500 positions per chunk and the projector stacks four, so the last chunk's
   padding becomes tokens too (80 ms each);
3. the text is tokenized piece by piece between the control tokens (``[INST]``, ``[AUDIO]``, ...),
   which works with the Hugging Face tokenizers and with ``mistral-common``'s Tekken tokenizer alike;
   ``query_mask`` marks the query tokens after the last ``[AUDIO]`` up to ``[/INST]``.

A real checkpoint's tokenizer needs ``mistral-common`` (``pip install "speechprune[voxtral]"``);
:meth:`VoxtralSpeechPruneProcessor.from_pretrained` says so when it is missing.

Example:
    >>> import numpy as np
    >>> from speechprune.testing import tiny_voxtral_processor
    >>> processor = tiny_voxtral_processor()
    >>> prompt = processor.spiral_prompt("Who spoke?", ["Ann", "Bob", "Cy", "Di"])
    >>> inputs = processor(text=prompt, audio=np.zeros(16000 * 70, np.float32), sampling_rate=16000)
    >>> inputs["input_features"].shape, inputs["input_ids"][0].count(processor.audio_token_id)
    ((3, 128, 3000), 1125)

This file imports only numpy, transformers and its siblings, so it can be copied into a Hub repo.
"""

from __future__ import annotations

import re

import numpy as np
from transformers import BatchFeature, ProcessorMixin

from .audio_input import SAMPLING_RATE
from .processing_speechprune import _check_query, _query_mask, prompts_and_recordings, spiral_messages

CHUNK_SAMPLES = 30 * SAMPLING_RATE
TOKENS_PER_CHUNK = 375
EXTRA = 'pip install "speechprune[voxtral]" (or pip install mistral-common)'


def audio_token_count(num_samples: int) -> int:
    """Audio tokens Voxtral gives a recording of ``num_samples``: 375 per started 30 s chunk (padding included).

    Example:
        >>> [audio_token_count(n) for n in (1, 480000, 480001, 16000 * 90)]
        [375, 375, 750, 1125]
    """
    if num_samples < 1:
        raise ValueError(f"a recording needs at least one sample, got {num_samples}")
    return TOKENS_PER_CHUNK * -(-num_samples // CHUNK_SAMPLES)


def mistral_common_available() -> bool:
    """Whether ``mistral-common`` (the ``[voxtral]`` extra) can be imported."""
    try:
        import mistral_common  # noqa: F401
    except ImportError:
        return False
    return True


class VoxtralSpeechPruneProcessor(ProcessorMixin):
    """Voxtral processor for SpeechPrune: ``text`` with one ``[AUDIO]`` per recording, any length, and ``query_mask``.

    Args:
        feature_extractor: a ``WhisperFeatureExtractor`` with 128 mel bins (the checkpoint's).
        tokenizer: the checkpoint's tokenizer (``mistral-common``'s Tekken through transformers) or
            any tokenizer that has Voxtral's control tokens.
        query: default ``query`` of every call (``"user_text"`` or ``"question"``).
    """

    control_tokens = ("<s>", "[INST]", "[/INST]", "[BEGIN_AUDIO]", "[AUDIO]")
    long_audio = "any length: 30 s chunks of 375 tokens, the last chunk's padding included (as the stock path)"
    max_seconds = None  # no cap

    def __init__(self, feature_extractor=None, tokenizer=None, audio_token="[AUDIO]", query="user_text"):
        _check_query(query)
        self.audio_token, self.query = audio_token, query
        self.audio_token_id = tokenizer.convert_tokens_to_ids(audio_token)
        super().__init__(feature_extractor, tokenizer)

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """Load a saved processor; a Tekken tokenizer (``tekken.json``) needs ``mistral-common``: the error says so."""
        try:
            return super().from_pretrained(*args, **kwargs)
        except (ImportError, ValueError, OSError) as err:
            if mistral_common_available():
                raise
            raise ImportError(
                f"Voxtral's tokenizer needs the mistral-common package, which is not installed: {EXTRA}"
            ) from err

    def spiral_prompt(self, question: str, choices: list[str]) -> str:
        """SPEC section 5's prompt in Voxtral's instruct layout: ``<s>[INST][BEGIN_AUDIO][AUDIO]{text}[/INST]``.

        That is how ``mistral-common`` encodes one user message whose content is an audio chunk and
        then a text chunk (Voxtral's chat format has no system message and no role names).
        """
        (message,) = spiral_messages(question, choices)
        text = next(item["text"] for item in message["content"] if item["type"] == "text")
        return f"<s>[INST][BEGIN_AUDIO]{self.audio_token}{text}[/INST]"

    def __call__(
        self,
        text=None,
        audio=None,
        sampling_rate: int | None = None,
        query: str | None = None,
        return_tensors: str | None = None,
        **kwargs,
    ) -> BatchFeature:
        """Tokenize ``text`` and featurize ``audio`` (one recording per ``[AUDIO]``, any length).

        Returns:
            ``BatchFeature`` with ``input_ids``, ``attention_mask`` (left padded), ``query_mask``
            ``(batch, seq)`` and, with audio, ``input_features`` ``(chunks, 128, 3000)``.
        """
        if kwargs:
            raise ValueError(
                f"unknown arguments {sorted(kwargs)}: this processor takes text, audio, sampling_rate, "
                "query and return_tensors"
            )
        query = self.query if query is None else query
        _check_query(query)
        texts, recordings = prompts_and_recordings(text, audio, sampling_rate, self.audio_token)
        audio_inputs, counts = {}, [audio_token_count(len(w)) for w in recordings]
        if recordings:
            audio_inputs = {"input_features": np.concatenate([self._chunk_features(w) for w in recordings])}
        remaining = iter(counts)
        texts = [re.sub(re.escape(self.audio_token), lambda _: self.audio_token * next(remaining), t) for t in texts]
        rows = [self._encode(t) for t in texts]
        special = set(self.tokenizer.convert_tokens_to_ids(list(self.control_tokens)))
        masks = [
            _query_mask(t, offs, ids, query, self.audio_token, special, "[/INST]")
            for t, (ids, offs) in zip(texts, rows)
        ]
        length = max(len(ids) for ids, _ in rows)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        encoded = {"input_ids": [], "attention_mask": [], "query_mask": []}
        for (ids, _), mask in zip(rows, masks):
            fill = length - len(ids)
            encoded["input_ids"].append([pad] * fill + ids)
            encoded["attention_mask"].append([0] * fill + [1] * len(ids))
            encoded["query_mask"].append([False] * fill + mask)
        return BatchFeature({**encoded, **audio_inputs}, tensor_type=return_tensors)

    def _chunk_features(self, wave: np.ndarray) -> np.ndarray:
        """The stock path: pad to a multiple of 30 s, featurize, cut into (chunks, 128, 3000)."""
        out = self.feature_extractor(
            wave,
            sampling_rate=SAMPLING_RATE,
            padding=True,
            truncation=False,
            pad_to_multiple_of=CHUNK_SAMPLES,
            return_tensors="np",
        )
        features = out["input_features"][0]  # (128, frames), frames a multiple of 3000
        return features.reshape(features.shape[0], -1, 3000).transpose(1, 0, 2)

    def _encode(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Ids and character spans of ``text``, control tokens by name and the text between them tokenized alone."""
        pattern = "(" + "|".join(re.escape(t) for t in self.control_tokens) + ")"
        ids, offsets, position = [], [], 0
        for piece in re.split(pattern, text):
            if not piece:
                continue
            if piece in self.control_tokens:
                ids.append(self.tokenizer.convert_tokens_to_ids(piece))
                offsets.append((position, position + len(piece)))
            else:
                piece_ids = list(self.tokenizer.encode(piece, add_special_tokens=False))
                ends = [len(self.tokenizer.decode(piece_ids[: i + 1])) for i in range(len(piece_ids))]
                if ends and ends[-1] != len(piece):
                    raise ValueError(
                        f"the tokenizer does not decode {piece!r} back to itself; cannot place query tokens"
                    )
                starts = [0] + ends[:-1]
                ids += piece_ids
                offsets += [(position + s, position + e) for s, e in zip(starts, ends)]
            position += len(piece)
        return ids, offsets


VoxtralSpeechPruneProcessor.register_for_auto_class("AutoProcessor")

__all__ = ["VoxtralSpeechPruneProcessor", "audio_token_count", "mistral_common_available", "TOKENS_PER_CHUNK"]
