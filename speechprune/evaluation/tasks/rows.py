"""SPEC section 9's rules for one dataset row: its choices, its gold letter, or the reason it is rejected.

A row never stops a run: anything wrong with it raises :class:`RowRejected` with one of :data:`REASONS`,
and the caller counts and lists it.

- :func:`split_choices`: a list, a JSON list in a string, or one string whose options are introduced by
  ``(A)``, ``A.``, ``A)`` or ``A:`` at the start of a line or after whitespace, letters consecutive from A.
- :func:`split_question`: the same markers inside the question text (datasets that embed the options in
  the instruction): the question is the text before the first option.
- :func:`gold_letter`: the answer as a letter (``"B"``, ``"(B)"``, ``"B. green"``, ``"(B) green"``), a
  0-based integer index, or the text of exactly one choice (case-insensitive, whitespace collapsed,
  surrounding punctuation ignored). Never guessed: no match or several is a rejection.

Example:
    >>> split_choices("(A) red (B) green (C) blue")
    ['red', 'green', 'blue']
    >>> split_question("Which colour? A. red B. green")
    ('Which colour?', ['red', 'green'])
    >>> [gold_letter(a, ["red", "green", "blue"]) for a in ["(B) green", "C", 0, " Green. "]]
    ['B', 'C', 'A', 'B']
    >>> gold_letter("purple", ["red", "green"])
    Traceback (most recent call last):
    ...
    speechprune.evaluation.tasks.rows.RowRejected: answer_matches_none: 'purple' is none of the 2 choices
"""

from __future__ import annotations

import json
import numbers
import re

from speechprune.evaluate_metric.spiral_accuracy.spiral_accuracy import ALL_LETTERS, MAX_CHOICES, MIN_CHOICES

# Why a row was left out; results.json counts rows by these.
REASONS = (
    "missing_value",  # a mapped column is empty (None or blank) for this row
    "bad_choices",  # the choices cell is neither a list, a JSON list, nor marked options
    "too_few_choices",
    "too_many_choices",
    "answer_matches_none",
    "answer_matches_several",
    "duplicate_id",
    "unreadable_audio",
    "shorter_than_min_seconds",
    "longer_than_max_seconds",
)
# One marker style per option list: "(A)", "A.", "A)" or "A:", at the start of the text or after whitespace.
_MARKERS = {
    "paren": r"(?:(?<=\s)|^)\(([A-J])\)",
    "dot": r"(?:(?<=\s)|^)([A-J])\.",
    "close": r"(?:(?<=\s)|^)([A-J])\)",
    "colon": r"(?:(?<=\s)|^)([A-J]):",
}
_LETTER_ANSWER = re.compile(r"\(([A-J])\)\s*(.*)|([A-J])(?:[.):]\s*|\s+|$)(.*)", re.DOTALL)


class RowRejected(ValueError):
    """A row that cannot be asked: ``reason`` (one of :data:`REASONS`) and a short ``detail``."""

    def __init__(self, reason: str, detail: str):
        if reason not in REASONS:
            raise ValueError(f"unknown rejection reason {reason!r}")
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def one_line(text: str) -> str:
    """``text`` as it is, unless it spans lines: then its whitespace is collapsed (prompts are line based)."""
    text = str(text)
    return " ".join(text.split()) if ("\n" in text or "\r" in text) else text


def normalize(text: str) -> str:
    """The form answers and choices are compared in: lower case, whitespace collapsed, punctuation at the ends dropped.

    >>> normalize("  The Red  bicycle. ")
    'the red bicycle'
    """
    collapsed = " ".join(str(text).lower().split())
    return re.sub(r"^[\W_]+|[\W_]+$", "", collapsed)


def _marked_options(text: str) -> tuple[int, list[str]] | None:
    """Where the options start in ``text`` and their texts, or ``None`` when fewer than two are marked.

    Each marker style is tried on its own; a run starts at an ``A`` marker and takes the next ``B``, ``C``,
    ... marker of the same style. The longest run wins, and of equally long runs the last (a question may
    mention "A." before its options do).
    """
    best: tuple[int, int, list[re.Match]] | None = None
    for pattern in _MARKERS.values():
        matches = list(re.finditer(pattern, text))
        for first, start in enumerate(matches):
            if start.group(1) != "A":
                continue
            run = [start]
            for match in matches[first + 1 :]:
                if len(run) < len(ALL_LETTERS) and match.group(1) == ALL_LETTERS[len(run)]:
                    run.append(match)
            key = (len(run), start.start())
            if len(run) >= 2 and (best is None or key > best[:2]):
                best = (*key, run)
    if best is None:
        return None
    run = best[2]
    ends = [match.start() for match in run[1:]] + [len(text)]
    return run[0].start(), [one_line(text[match.end() : end]).strip() for match, end in zip(run, ends)]


def _check_count(choices: list[str]) -> list[str]:
    if len(choices) < MIN_CHOICES:
        raise RowRejected("too_few_choices", f"{len(choices)} choice(s); at least {MIN_CHOICES} are needed")
    if len(choices) > MAX_CHOICES:
        raise RowRejected("too_many_choices", f"{len(choices)} choices; at most {MAX_CHOICES} (letters A-J)")
    if any(not choice.strip() for choice in choices):
        raise RowRejected("bad_choices", f"an empty choice in {choices!r}")
    return choices


def split_choices(value) -> list[str]:
    """The option texts of a choices cell (see the module docstring), checked to number 2 to 10."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                raise RowRejected("bad_choices", f"not a JSON list: {text[:60]!r}") from None
        else:
            found = _marked_options(text)
            if found is None:
                raise RowRejected("bad_choices", f"no options marked (A)/A./A)/A: in {text[:60]!r}")
            return _check_count(found[1])
    if not isinstance(value, list | tuple) or any(item is None or isinstance(item, list | dict) for item in value):
        raise RowRejected("bad_choices", f"expected a list of option texts, got {str(value)[:60]!r}")
    return _check_count([one_line(item) for item in value])


def split_question(text: str) -> tuple[str, list[str]]:
    """A question with its options embedded: ``(question, choices)``."""
    found = _marked_options(str(text))
    if found is None:
        raise RowRejected("bad_choices", f"no options marked (A)/A./A)/A: in the question {str(text)[:60]!r}")
    start, choices = found
    question = one_line(str(text)[:start]).strip()
    if not question:
        raise RowRejected("missing_value", "the question text before the options is empty")
    return question, _check_count(choices)


def gold_letter(answer, choices: list[str]) -> str:
    """The letter of the correct choice (see the module docstring); raises :class:`RowRejected` otherwise."""
    letters = ALL_LETTERS[: len(choices)]
    if isinstance(answer, numbers.Integral) and not isinstance(answer, bool):
        if 0 <= int(answer) < len(choices):
            return letters[int(answer)]
        raise RowRejected("answer_matches_none", f"index {answer} is outside the {len(choices)} choices")
    if not isinstance(answer, str) or not answer.strip():
        raise RowRejected("missing_value", f"the answer is {answer!r}")
    wanted = normalize(answer)
    found = {letters[i] for i, choice in enumerate(choices) if wanted and normalize(choice) == wanted}
    form = _LETTER_ANSWER.fullmatch(answer.strip())
    if form is not None:
        letter = form.group(1) or form.group(3)
        rest = normalize(form.group(2) if form.group(1) else form.group(4))
        # A letter counts when it is one of this row's, and any text after it is that option's text.
        if letter in letters and (not rest or rest == normalize(choices[letters.index(letter)])):
            found.add(letter)
    if len(found) == 1:
        return found.pop()
    if not found:
        raise RowRejected("answer_matches_none", f"{answer!r} is none of the {len(choices)} choices")
    raise RowRejected("answer_matches_several", f"{answer!r} matches choices {sorted(found)}")


__all__ = ["REASONS", "RowRejected", "one_line", "normalize", "split_choices", "split_question", "gold_letter"]
