"""Reading and validating SPIRAL source annotations (SPEC section 4).

A source record is one JSON object per line in the published format (``data.jsonl``) or the same
format written by ``speechprune generate-transcripts``. :func:`parse_record` turns one object into a
:class:`SpiralRecord` or raises :class:`RecordError` naming what is wrong; :func:`read_annotations`
does that for a whole file and collects the malformed lines as rejects instead of stopping.

Malformed means: a missing field (or one of the wrong type), ``choices`` not exactly four strings
prefixed ``"A. "`` .. ``"D. "``, a ``correct_answer`` that is not one of the choices, a duplicate id,
key-sentence indices out of range, a sentence that does not align with the transcript turns, or a
speaker without a voice prompt naming a gender. A key sentence worded differently from the indexed
sentences is not malformed: ``key_sentences.indices`` is authoritative for timing (SPEC section 4).

Example:
    >>> rec = parse_record(json.loads(open("data.jsonl").readline()))  # doctest: +SKIP
    >>> rec.id, rec.answer, rec.sentence_speakers[:2]  # doctest: +SKIP
    ('lecture_0', 'B', ('spk_1', 'spk_1'))
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..evaluate_metric.spiral_accuracy.spiral_accuracy import LETTERS

CATEGORIES = ("lecture", "meeting", "conversation")
_GENDER_SUFFIX = re.compile(r"_([FM])\.[A-Za-z0-9]+$")
_WHITESPACE = re.compile(r"\s+")


class RecordError(ValueError):
    """A source record that cannot become a SPIRAL row; the message is the reject reason."""


@dataclass(frozen=True)
class SpiralRecord:
    """One validated source dialogue, with everything the builder needs.

    ``sentences`` are ``audio_data.combined.sentences`` (the order they are spoken in) and
    ``sentence_turns[i]`` the index of the turn that ``sentences[i]`` lies in (:func:`align_sentences`);
    :attr:`sentence_speakers` gives their speaker labels.
    ``turns`` are ``(speaker, text)`` with a turn's sentences joined by one space. ``genders`` maps each
    speaker to ``"F"`` or ``"M"`` from the suffix of its ``prompts_used`` file. ``key_indices`` is the
    half-open range ``[start, end)`` into ``sentences``.
    """

    id: str
    category: str
    main_topic: str
    subtopic: str
    question: str
    choices: tuple[str, str, str, str]
    answer: str
    key_sentence: str
    key_indices: tuple[int, int]
    sentences: tuple[str, ...]
    sentence_turns: tuple[int, ...]
    turns: tuple[tuple[str, str], ...]
    genders: dict[str, str]
    prompts: dict[str, str]
    audio_files: tuple[str, ...]
    audio_folder: str
    language: str | None = None
    line: int = 0  # 1-based line in the annotations file, for messages

    @property
    def sentence_speakers(self) -> tuple[str, ...]:
        """The speaker label of every sentence."""
        return tuple(self.turns[t][0] for t in self.sentence_turns)


def _field(obj: Any, path: str, kind: type | tuple[type, ...]) -> Any:
    """Return ``obj[a][b]..`` for ``path = "a.b"``, or raise RecordError for a missing or mistyped field."""
    value = obj
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise RecordError(f"missing field {path}")
        value = value[part]
    if not isinstance(value, kind) or isinstance(value, bool):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise RecordError(f"field {path} must be {names}, got {type(value).__name__}")
    return value


def _strings(obj: Any, path: str) -> list[str]:
    values = _field(obj, path, list)
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise RecordError(f"field {path}[{i}] must be str, got {type(value).__name__}")
    return values


def _squash(text: str) -> str:
    return _WHITESPACE.sub("", text)


def align_sentences(sentences: list[str], turns: list[tuple[str, str]]) -> list[int]:
    """Find the transcript turn each sentence lies in (SPEC section 4, alignment facts); that gives its speaker.

    Sentences are matched in order with whitespace removed: sentence ``i`` must occur inside one turn's
    text, at or after the point where sentence ``i - 1`` ended (in the same turn or a later one). A
    sentence that straddles two turns, is out of order or is absent raises RecordError.

    Args:
        sentences: ``combined.sentences``, in spoken order.
        turns: ``(speaker, text)`` pairs in transcript order.

    Returns:
        The index into ``turns`` of every sentence, same length as ``sentences``, non-decreasing.

    Example:
        >>> align_sentences(["Hi.", "Hello there.", "Bye."], [("spk_1", "Hi."), ("spk_2", "Hello there. Bye.")])
        [0, 1, 1]
    """
    squashed = [_squash(text) for _, text in turns]
    found_in: list[int] = []
    turn, offset = 0, 0
    for i, sentence in enumerate(sentences):
        needle = _squash(sentence)
        if not needle:
            raise RecordError(f"sentence {i} is empty")
        while turn < len(turns):
            found = squashed[turn].find(needle, offset)
            if found >= 0:
                offset = found + len(needle)
                break
            turn, offset = turn + 1, 0
        else:
            raise RecordError(f"sentence {i} does not align with the transcript turns: {sentence[:60]!r}")
        found_in.append(turn)
    return found_in


def parse_record(obj: Any) -> SpiralRecord:
    """Validate one source record and return it as a :class:`SpiralRecord` (see the module docstring).

    Raises:
        RecordError: the record is malformed; the message says why.
    """
    if not isinstance(obj, dict):
        raise RecordError(f"record must be a JSON object, got {type(obj).__name__}")
    record_id = _field(obj, "metadata.id", str)
    if not record_id.strip():
        raise RecordError("field metadata.id is empty")
    category = _field(obj, "metadata.transcript_type", str)
    if category not in CATEGORIES:
        raise RecordError(f"metadata.transcript_type must be one of {CATEGORIES}, got {category!r}")
    main_topic = _field(obj, "metadata.main_topic", str)
    subtopic = _field(obj, "metadata.subtopic", str)
    language = obj["metadata"].get("language")
    if language is not None and not isinstance(language, str):
        raise RecordError("field metadata.language must be str")

    question = _field(obj, "test_question.question", str)
    raw_choices = _strings(obj, "test_question.choices")
    if len(raw_choices) != 4:
        raise RecordError(f"test_question.choices must hold 4 choices, got {len(raw_choices)}")
    choices = []
    for letter, choice in zip(LETTERS, raw_choices):
        if not choice.startswith(f"{letter}. "):
            raise RecordError(f"choice {letter} does not start with {letter + '. '!r}: {choice[:40]!r}")
        choices.append(choice[3:])
    correct = _field(obj, "test_question.correct_answer", str)
    if correct not in raw_choices:
        raise RecordError(f"correct_answer is not one of the choices: {correct[:60]!r}")
    answer = LETTERS[raw_choices.index(correct)]
    key_sentence = _field(obj, "original_key_sentence", str)

    raw_turns = _field(obj, "transcript", list)
    if not raw_turns:
        raise RecordError("field transcript is empty")
    turns = []
    for i, turn in enumerate(raw_turns):
        speaker = _field(turn, "speaker", str) if isinstance(turn, dict) else None
        if speaker is None:
            raise RecordError(f"transcript[{i}] must be an object with speaker and text")
        text = _field(turn, "text", (list, str))
        if isinstance(text, list):
            text = " ".join(_strings(turn, "text"))
        turns.append((speaker, text))

    sentences = _strings(obj, "audio_data.combined.sentences")
    if not sentences:
        raise RecordError("field audio_data.combined.sentences is empty")
    indices = _field(obj, "audio_data.key_sentences.indices", list)
    if len(indices) != 2 or not all(isinstance(i, int) and not isinstance(i, bool) for i in indices):
        raise RecordError(f"key_sentences.indices must be two integers, got {indices!r}")
    start, end = indices
    if not 0 <= start < end <= len(sentences):
        raise RecordError(f"key_sentences.indices {indices} out of range for {len(sentences)} sentences")
    sentence_turns = align_sentences(sentences, turns)

    prompts = _field(obj, "audio_data.combined.prompts_used", dict)
    genders = {}
    for speaker in dict.fromkeys(s for s, _ in turns):
        prompt = prompts.get(speaker)
        if not isinstance(prompt, str):
            raise RecordError(f"speaker {speaker} has no prompt in prompts_used")
        match = _GENDER_SUFFIX.search(prompt)
        if match is None:
            raise RecordError(f"prompt of speaker {speaker} names no gender (_F/_M): {prompt!r}")
        genders[speaker] = match.group(1)
    audio_files = _strings(obj, "audio_data.combined.audio_files")
    audio_folder = _field(obj, "audio_data.combined.audio_folder", str)

    return SpiralRecord(
        id=record_id,
        category=category,
        main_topic=main_topic,
        subtopic=subtopic,
        question=question,
        choices=tuple(choices),
        answer=answer,
        key_sentence=key_sentence,
        key_indices=(start, end),
        sentences=tuple(sentences),
        sentence_turns=tuple(sentence_turns),
        turns=tuple(turns),
        genders=genders,
        prompts={speaker: prompts[speaker] for speaker in genders},
        audio_files=tuple(audio_files),
        audio_folder=audio_folder,
        language=language,
    )


def _refuse_lone_surrogates(value, where: str = "record") -> None:
    r"""Raise RecordError for a string holding a lone surrogate (JSON ``"\udcff"``): no UTF-8 file can store it.

    >>> _refuse_lone_surrogates(json.loads('{"a": ["ok", "bad \\udcff"]}'))
    Traceback (most recent call last):
    ...
    speechprune.dataset_script.records.RecordError: record.a[1] holds a lone surrogate (\udcff), which is no text
    """
    if isinstance(value, str):
        bad = next((c for c in value if 0xD800 <= ord(c) <= 0xDFFF), None)
        if bad is not None:
            raise RecordError(f"{where} holds a lone surrogate (\\u{ord(bad):04x}), which is no text")
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_lone_surrogates(key, where)
            _refuse_lone_surrogates(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_lone_surrogates(item, f"{where}[{index}]")


def read_annotations(path: str | Path, limit: int | None = None) -> tuple[list[SpiralRecord], list[dict]]:
    """Read a SPIRAL annotations file, keeping valid records and collecting malformed ones.

    Args:
        path: a JSON-lines file, one source record per line (blank lines are ignored).
        limit: read only the first ``limit`` records (non-blank lines), or all when None.

    Returns:
        ``(records, rejects)``: the valid records in file order, and one
        ``{"line": int (1-based), "id": str | None, "reason": str}`` per malformed line. Every record read
        is in exactly one of the two lists; a repeated id is rejected from its second occurrence on.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    records: list[SpiralRecord] = []
    rejects: list[dict] = []
    seen: dict[str, int] = {}
    count = 0
    with open(path, "rb") as handle:  # bytes: one line that is not UTF-8 is one reject, not the end of the build
        for line_no, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            if limit is not None and count >= limit:
                break
            count += 1
            record_id = None
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                rejects.append({"line": line_no, "id": None, "reason": f"not UTF-8 text: {err}"})
                continue
            try:
                obj = json.loads(line)
                maybe_id = obj.get("metadata", {}).get("id") if isinstance(obj, dict) else None
                record_id = maybe_id if isinstance(maybe_id, str) else None
                _refuse_lone_surrogates(obj)
                record = parse_record(obj)
                if record.id in seen:
                    raise RecordError(f"duplicate id {record.id!r} (first on line {seen[record.id]})")
            except json.JSONDecodeError as err:
                rejects.append({"line": line_no, "id": None, "reason": f"not valid JSON: {err}"})
                continue
            except RecordError as err:
                rejects.append({"line": line_no, "id": record_id, "reason": str(err)})
                continue
            seen[record.id] = line_no
            records.append(dataclasses.replace(record, line=line_no))
    return records, rejects
