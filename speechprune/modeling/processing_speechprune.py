"""``SpeechPruneProcessor``: the Qwen2-Audio processor for recordings of any length.

The stock processor pads or cuts every recording to one 30 s window, so anything after
30 s is silently lost. This one follows SPEC section 2:

1. each recording (16 kHz mono) is split into consecutive 30 s windows, the last one shorter;
2. each window gets its own 128 x 3000 log-mel features (``input_features`` rows, in time order,
   recording after recording) and ``feature_attention_mask`` row;
3. a window yields ``((frames - 1) // 2 + 1 - 2) // 2 + 1`` audio tokens (750 for a full one); a
   trailing window too short to yield one is dropped, and a recording with no token is an error;
4. the recording's one ``<|AUDIO|>`` in the text becomes as many placeholders as its windows'
   tokens together (2250 for 90 s).

The stock ``Qwen2AudioForConditionalGeneration`` consumes these inputs unchanged: it encodes
every window, keeps each window's valid tokens and scatters them, in order, into the
placeholders. ``query_mask`` (SPEC section 5) marks the text tokens that SpeechPrune compares the
audio with; pass the outputs to ``Qwen2AudioSpeechPruneForConditionalGeneration`` as they are
(the stock model's ``forward`` ignores ``query_mask``; drop it before the stock ``generate``).

Example:
    >>> import numpy as np
    >>> from speechprune.testing import tiny_speechprune
    >>> model, processor = tiny_speechprune()
    >>> prompt = processor.spiral_prompt("What was sold?", ["Apples", "Pears", "Plums", "Figs"])
    >>> wave = np.zeros(16000 * 70, dtype=np.float32)  # 70 s: windows of 30, 30 and 10 s
    >>> inputs = processor(text=[prompt], audio=[wave], sampling_rate=16000, return_tensors="pt")
    >>> tuple(inputs.input_features.shape), int((inputs.input_ids == model.config.audio_token_id).sum())
    ((3, 128, 3000), 1750)

Samples: float in [-1, 1], or int16 / int32 PCM, which is scaled by 2**15 / 2**31 as ``soundfile``
reads PCM as float (other integer widths are refused). Sampling rate: audio must already be
16 kHz. Any other ``sampling_rate`` (or none given) is refused with a message telling the user to
resample (for example with ``datasets.Audio(sampling_rate=16000)``), because features of audio at
the wrong rate would give confident but wrong answers.

This file imports only numpy, torch-free transformers pieces and its sibling ``audio_input.py``, so
the two can be copied into a Hub model repo.
"""

from __future__ import annotations

import re

import numpy as np
from transformers import BatchFeature, Qwen2AudioProcessor

from .audio_input import SAMPLING_RATE, check_recordings

INSTRUCTION = "Answer with the letter of the correct option."
LETTERS = tuple("ABCDEFGHIJ")  # K choices (2 to 10) take the first K; SPIRAL has four


def _choice_tail(count: int) -> re.Pattern:
    """The ``count`` choice lines and the instruction that end a prompt made by `spiral_prompt`."""
    lines = "".join(rf"\n(?P<{letter}>{letter}\. [^\n]*)" for letter in LETTERS[:count])
    return re.compile(lines + r"\n" + re.escape(INSTRUCTION) + r"\Z")


# Most choices first: a prompt's choice lines match exactly one count (the letters run from A).
_CHOICE_TAILS = tuple(_choice_tail(count) for count in range(len(LETTERS), 1, -1))


def window_token_count(num_frames: int) -> int:
    """Audio tokens a window with ``num_frames`` valid mel frames yields (conv stride 2, then pooling by 2)."""
    return max(0, ((num_frames - 1) // 2 + 1 - 2) // 2 + 1)


class SpeechPruneProcessor(Qwen2AudioProcessor):
    """Qwen2-Audio processor that keeps the whole recording (30 s windows) and returns ``query_mask``.

    Call it like the stock processor; the differences are the windowing above, left padding of
    the text, the extra output ``query_mask`` (bool, ``(batch, seq)``) and the ``query`` argument
    (``"user_text"``: the question line and the four choice lines; ``"question"``: the question
    line only). For a prompt that ``spiral_prompt`` did not make, ``query_mask`` follows SPEC
    section 3's rule with either ``query``: every non-special token after the last
    ``<|audio_eos|>`` up to the next ``<|im_end|>``.

    ``query`` given at construction is the default of every call, and is saved in
    ``processor_config.json`` (``speechprune export-model --query`` sets it for a model repo).
    """

    long_audio = "any length: consecutive 30 s windows, all of them (the stock processor keeps the first 30 s)"
    max_seconds = None  # no cap

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
        self.query = query
        super().__init__(
            feature_extractor,
            tokenizer,
            chat_template=chat_template,
            audio_token=audio_token,
            audio_bos_token=audio_bos_token,
            audio_eos_token=audio_eos_token,
        )

    def spiral_prompt(self, question: str, choices: list[str]) -> str:
        """Render SPEC section 5's prompt: chat template, one audio, question, four choices, instruction.

        Example:
            >>> from speechprune.testing import tiny_speechprune
            >>> _, processor = tiny_speechprune()
            >>> print(processor.spiral_prompt("Who spoke?", ["Ann", "Bob", "Cy", "Di"]))
            <|im_start|>system
            You are a helpful assistant.<|im_end|>
            <|im_start|>user
            Audio 1: <|audio_bos|><|AUDIO|><|audio_eos|>
            Who spoke?
            A. Ann
            B. Bob
            C. Cy
            D. Di
            Answer with the letter of the correct option.<|im_end|>
            <|im_start|>assistant
            <BLANKLINE>
        """
        messages = spiral_messages(question, choices)
        return self.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def __call__(
        self,
        text: str | list[str] | None = None,
        audio=None,
        sampling_rate: int | None = None,
        query: str | None = None,
        return_tensors: str | None = None,
        padding: bool | str = True,
        **kwargs,
    ) -> BatchFeature:
        """Tokenize ``text`` and featurize ``audio`` (one 16 kHz mono array per ``<|AUDIO|>``, any length).

        Args:
            text: one prompt or a list of prompts, each holding one ``<|AUDIO|>`` per recording.
            audio: a 1-D float array or a list of them, in the order their placeholders appear.
            sampling_rate: must be 16000 when ``audio`` is given.
            query: ``"user_text"`` or ``"question"`` (see the class docstring); ``None``: ``self.query``.
            return_tensors, padding, **kwargs: passed to the tokenizer (padding is always on the left).

        Returns:
            ``BatchFeature`` with ``input_ids``, ``attention_mask`` (left padded), ``query_mask``
            ``(batch, seq)`` bool and, with audio, ``input_features`` ``(num_windows_total, 128, 3000)``
            and ``feature_attention_mask`` ``(num_windows_total, 3000)``.
        """
        query = self.query if query is None else query
        _check_query(query)
        if text is None:
            raise ValueError("text is required: the prompt that holds one <|AUDIO|> per recording")
        texts = [text] if isinstance(text, str) else list(text)
        if not all(isinstance(t, str) for t in texts):
            raise ValueError("text must be a string or a list of strings")

        audio_inputs, replacements = {}, []
        if audio is not None:
            recordings = self._check_audio(audio, sampling_rate)
            self.validate_inputs(text=texts, audio=recordings)
            audio_inputs, replacements = self._process_audio(recordings)
        elif any(self.audio_token in t for t in texts):
            raise ValueError(f"text holds {self.audio_token} placeholders but no audio was given")

        texts, _ = self.get_text_with_replacements(texts, audio_replacements=replacements)
        encoded = self.tokenizer(
            texts, padding=padding, padding_side="left", return_offsets_mapping=True, return_tensors=None, **kwargs
        )
        self._check_special_mm_tokens(texts, encoded, modalities=["audio"])
        offsets = encoded.pop("offset_mapping")
        special_ids = set(self.tokenizer.all_special_ids)
        encoded["query_mask"] = [
            _query_mask(t, offs, ids, query, self.audio_eos_token, special_ids)
            for t, offs, ids in zip(texts, offsets, encoded["input_ids"])
        ]
        return BatchFeature({**encoded, **audio_inputs}, tensor_type=return_tensors)

    @staticmethod
    def _check_audio(audio, sampling_rate: int | None) -> list[np.ndarray]:
        """Return the recordings as float32 1-D arrays (see ``audio_input.check_recordings``)."""
        return check_recordings(audio, sampling_rate)

    def _process_audio(self, audio: list[np.ndarray], **kwargs):
        """Features of every 30 s window (:func:`window_features`), and one placeholder string per recording.

        A trailing window too short to yield one token is dropped.
        """
        features, masks, replacements = [], [], []
        for i, wave in enumerate(audio):
            total = 0
            for feature, mask in window_features(self.feature_extractor, wave):
                count = window_token_count(int(mask.sum()))
                if count == 0:  # only the trailing window can be this short
                    continue
                features.append(feature)
                masks.append(mask)
                total += count
            if total == 0:
                raise ValueError(
                    f"audio[{i}] has {len(wave)} samples ({len(wave) / SAMPLING_RATE:.4f} s), too short for one audio "
                    "token (40 ms)"
                )
            replacements.append(self.audio_token * total)
        audio_inputs = {"input_features": np.stack(features), "feature_attention_mask": np.stack(masks)}
        return audio_inputs, replacements


def window_features(extractor, wave: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(features (mel, frames), frame mask (frames,) int32)`` of each consecutive window of ``wave``.

    A window is the Whisper extractor's ``n_samples`` (30 s); the last one is shorter and padded to a
    full window, as the stock extractor pads a clip. Each window is featurized on its own (a batch of
    one), so a recording's features never depend on what else is in the batch.
    """
    window = extractor.n_samples
    windows = []
    for start in range(0, len(wave), window):
        out = extractor(
            wave[start : start + window],
            sampling_rate=SAMPLING_RATE,
            padding="max_length",
            return_attention_mask=True,
            return_tensors="np",
        )
        windows.append((out["input_features"][0], out["attention_mask"][0].astype(np.int32)))
    return windows


def spiral_messages(question: str, choices: list[str]) -> list[dict]:
    """SPEC section 5's one user turn (an audio, then the question, choice and instruction lines) as chat messages.

    ``choices`` holds 2 to 10 option texts (SPEC section 9), lettered A, B, ...; SPIRAL's four give exactly
    section 5's text.

    Every project processor renders these with its own family's chat template (``spiral_prompt``).
    """
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"question must be a non-empty string, got {question!r}")
    if isinstance(choices, str) or not 2 <= len(choices) <= len(LETTERS):
        raise ValueError(f"choices must be a list of 2 to {len(LETTERS)} strings, got {choices!r}")
    for name, value in [("question", question)] + [(f"choices[{i}]", c) for i, c in enumerate(choices)]:
        if not isinstance(value, str) or "\n" in value or "\r" in value:
            raise ValueError(f"{name} must be a one-line string (the prompt is line based), got {value!r}")
    lines = [question] + [f"{letter}. {choice}" for letter, choice in zip(LETTERS, choices)] + [INSTRUCTION]
    content = [{"type": "audio", "audio": "recording"}, {"type": "text", "text": "\n".join(lines)}]
    return [{"role": "user", "content": content}]


def prompts_and_recordings(text, audio, sampling_rate, placeholder: str) -> tuple[list[str], list]:
    """The prompts as a list and the checked recordings (``audio_input.check_recordings``), one per ``placeholder``.

    Raises ``ValueError`` when ``text`` is missing or not strings, or when the placeholders in the
    prompts and the recordings given do not pair up (no audio for placeholders included).
    """
    if text is None:
        raise ValueError(f"text is required: the prompt that holds one {placeholder} per recording")
    texts = [text] if isinstance(text, str) else list(text)
    if not all(isinstance(t, str) for t in texts):
        raise ValueError("text must be a string or a list of strings")
    placeholders = sum(t.count(placeholder) for t in texts)
    if audio is None:
        if placeholders:
            raise ValueError(f"text holds {placeholder} placeholders but no audio was given")
        return texts, []
    recordings = check_recordings(audio, sampling_rate)
    if len(recordings) != placeholders:
        raise ValueError(f"text holds {placeholders} {placeholder} but {len(recordings)} recordings were given")
    return texts, recordings


def _check_query(query) -> None:
    if query not in ("user_text", "question"):
        raise ValueError(f"query must be 'user_text' or 'question', got {query!r}")


def _query_mask(
    text: str,
    offsets: list,
    ids: list[int],
    query: str,
    audio_eos: str,
    special_ids: set[int],
    turn_end: str = "<|im_end|>",
) -> list[bool]:
    """SPEC section 5's ``query_mask`` of one prompt, from its tokens' character offsets.

    The query lines are looked for after the last ``audio_eos`` up to the next ``turn_end`` (the
    family's end-of-turn marker, ``<|im_end|>`` for the Qwen templates):
    a ``spiral_prompt`` there gives the question line (and, for ``user_text``, its K choice
    lines); anything else gives the whole stretch (SPEC section 3's fallback rule). A token is in
    the mask when its character span lies entirely inside one region and it is not special.
    """
    eos = text.rfind(audio_eos)
    if eos < 0:
        return [False] * len(ids)
    start = eos + len(audio_eos)
    end = text.find(turn_end, start)
    end = len(text) if end < 0 else end
    regions = [(start, end)]
    match = next((m for tail in _CHOICE_TAILS if (m := tail.search(text, start, end)) is not None), None)
    if match is not None:
        question_start = start + 1 if text.startswith("\n", start) else start
        regions = [(question_start, match.start())]
        if query == "user_text":
            regions += [match.span(letter) for letter in match.groupdict()]
    return [
        s < t and token not in special_ids and any(r0 <= s and t <= r1 for r0, r1 in regions)
        for (s, t), token in zip(offsets, ids)
    ]


# A saved processor loads with AutoProcessor.from_pretrained(folder, trust_remote_code=True).
SpeechPruneProcessor.register_for_auto_class("AutoProcessor")

__all__ = ["SpeechPruneProcessor", "window_features", "window_token_count", "INSTRUCTION", "SAMPLING_RATE"]
