"""SPIRAL accuracy: K-way multiple-choice accuracy (2 to 10 choices) with a deterministic answer parser.

This file is an `evaluate` module: ``evaluate.load("path/to/spiral_accuracy")`` copies it on its own into
evaluate's module cache, so it imports nothing but the standard library, ``evaluate`` and ``datasets``.
The same file is importable as ``speechprune.evaluate_metric.spiral_accuracy.spiral_accuracy``; the
evaluation runner takes :func:`parse_answer` from there, so one function parses answers everywhere.

``import evaluate`` costs seconds (it loads transformers' pipelines), and the parser and the statistics
need none of it. So the ``SpiralAccuracy`` class is defined as soon as ``evaluate`` is already imported
(always the case under ``evaluate.load``, which looks for the class in this module's namespace), and
otherwise on first access of ``SpiralAccuracy``.
"""

from __future__ import annotations

import math
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Sequence

LETTERS = ("A", "B", "C", "D")  # SPIRAL's four, and the default number of choices
ALL_LETTERS = tuple("ABCDEFGHIJ")  # K choices take the first K of these (SPEC section 9)
MIN_CHOICES, MAX_CHOICES = 2, len(ALL_LETTERS)

# The one BibTeX of the project: the metric, dataset and model cards all render this text (the metric's own
# README.md, which a Space shows as it stands, holds it verbatim and a test keeps the two equal).
CITATION = """\
@inproceedings{lin2025speechprune,
  title         = {SpeechPrune: Context-aware Token Pruning for Speech Information Retrieval},
  author        = {Lin, Yueqian and Fu, Yuzhe and Zhang, Jingyang and Liu, Yudong and Zhang, Jianyi and
                   Sun, Jingwei and Li, Hai Helen and Chen, Yiran},
  booktitle     = {2025 IEEE International Conference on Multimedia and Expo (ICME)},
  year          = {2025},
  eprint        = {2412.12009},
  archivePrefix = {arXiv}
}
"""

_DESCRIPTION = """\
Accuracy on SPIRAL (Speech Information Retrieval), a four-way multiple-choice benchmark: each long
recording comes with one question about a detail said once in it, answered with a letter A-D. The same
metric scores any audio multiple-choice task with K = 2 to 10 choices, answered with the first K of the
letters A-J (the number of choices comes from `choices` or `num_choices`; default 4).

Predictions may be letters or raw model text. Raw text is parsed by a fixed rule list (the first rule
that matches wins) and never by a random guess, so a score can always be reproduced:

  1. the text, stripped of whitespace, brackets and final punctuation, is one of the K letters;
  2. it starts with one of the K letters followed by ".", ")" or ":";
  3. the first match of (?i:answer|option|choice)\\s*(?i:is)?\\s*[:(]?\\s*([A-D])\\b (A-D: the K letters);
  4. the first match of \\(([A-D])\\) (the K letters);
  5. exactly one option text occurs in it (needs `choices`; case-insensitive, punctuation ignored);
  otherwise the answer is invalid and scored wrong.

Every report carries the majority-letter baseline of the references beside the accuracy: in the published
SPIRAL files the correct letter is B for 59.6% of the questions, so a model that always says "B" looks good.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): model answers, one per question: a letter or the raw generated text.
        `None` counts as invalid.
    references (`list` of `str`): the correct letters, each one of the first K letters of A-J.
    choices (`list` of `list` of `str`, *optional*): per question, its K option texts in letter order
        (without their letters). Enables rule 5 (matching an option's text) and gives K.
    num_choices (`int` or `list` of `int`, *optional*): K for every question, or per question, when
        `choices` is not given (default 4, SPIRAL's). Must agree with `choices` when both are given.
    categories (`list` of `str`, *optional*): per question, its category (`lecture`, `meeting`,
        `conversation`); adds `per_category`.
    ids (`list` of `str`, *optional*): per question, its unique id; duplicates are an error.

    `choices`, `num_choices`, `categories` and `ids` are passed to `compute()`, not to `add_batch()`.

Returns:
    accuracy (`float`): fraction of questions whose parsed answer equals the reference.
    accuracy_stderr (`float` or `None`): sqrt(p * (1 - p) / (n - 1)); `None` when n = 1.
    n (`int`): number of questions.
    n_invalid (`int`): answers that no rule could parse (scored wrong).
    majority_letter (`str`): the most frequent reference letter (ties to the earlier letter), so
        `majority_baseline` is the majority baseline over the K letters.
    majority_baseline (`float`): the accuracy of always answering `majority_letter`.
    per_category (`dict`, only with `categories`): {category: {"accuracy": float, "n": int}}.

Examples:

    Letters and raw text mix freely; "I think A and B" is invalid:

    >>> metric = SpiralAccuracy()
    >>> out = metric.compute(
    ...     predictions=["B", "The answer is (C).", "I think A and B", "D) because it is said"],
    ...     references=["B", "C", "A", "B"],
    ... )
    >>> out["accuracy"], out["n"], out["n_invalid"]
    (0.5, 4, 1)
    >>> round(out["accuracy_stderr"], 4)
    0.2887
    >>> out["majority_letter"], out["majority_baseline"]
    ('B', 0.5)

    With the option texts, an answer naming exactly one option counts (rule 5), and categories give
    per-category accuracy:

    >>> out = metric.compute(
    ...     predictions=["It was the red bicycle.", "A"],
    ...     references=["C", "B"],
    ...     choices=[["a car", "a bus", "the red bicycle", "a train"], ["one", "two", "three", "four"]],
    ...     categories=["lecture", "meeting"],
    ... )
    >>> out["accuracy"], out["per_category"]
    (0.5, {'lecture': {'accuracy': 1.0, 'n': 1}, 'meeting': {'accuracy': 0.0, 'n': 1}})

    Two choices or ten: letters beyond the K shown are never read as answers.

    >>> metric.compute(predictions=["B", "C", "J"], references=["B", "A", "J"], num_choices=[2, 2, 10])["accuracy"]
    0.6666666666666666

    The parser on its own:

    >>> [parse_answer(t) for t in ["B", " (c) ", "B) because", "Answer: D", "Option d", "invalid"]]
    ['B', None, 'B', 'D', None, None]
    >>> parse_answer("E"), parse_answer("E", num_choices=5), parse_answer("The answer is J.", num_choices=10)
    (None, 'E', 'J')
"""

# SPEC rule 1: characters stripped from both ends before the single-letter test.
_BRACKETS = "()[]{}<>"
_FINAL_PUNCTUATION = ".,;:!?"
# SPEC rules 2-4, verbatim, with [A-D] standing for the K letters. Only the keywords are case-insensitive: the
# letter itself must be a capital, which keeps articles ("a") and words ("option d" in prose) from being read.
_RULE2 = r"([{letters}])[.):]"
_RULE3 = r"(?i:answer|option|choice)\s*(?i:is)?\s*[:(]?\s*([{letters}])\b"
_RULE4 = r"\(([{letters}])\)"


def choice_letters(num_choices: int) -> tuple[str, ...]:
    """The letters of ``num_choices`` options: the first K of A-J.

    >>> choice_letters(2), "".join(choice_letters(10))
    (('A', 'B'), 'ABCDEFGHIJ')
    """
    if (
        isinstance(num_choices, bool)
        or not isinstance(num_choices, int)
        or not (MIN_CHOICES <= num_choices <= MAX_CHOICES)
    ):
        raise ValueError(
            f"the number of choices must be an integer from {MIN_CHOICES} to {MAX_CHOICES}, got {num_choices!r}"
        )
    return ALL_LETTERS[:num_choices]


def _strip_decorations(text: str) -> str:
    """Strip whitespace, brackets at either end and final punctuation until nothing changes."""
    previous = None
    while previous != text:
        previous = text
        text = text.strip().strip(_BRACKETS).rstrip(_FINAL_PUNCTUATION)
    return text


def _normalize(text: str) -> str:
    """Lower-case, drop punctuation (Unicode category P*), collapse whitespace: SPEC rule 5's comparison form."""
    kept = "".join(ch for ch in text.lower() if not unicodedata.category(ch).startswith("P"))
    return " ".join(kept.split())


def parse_answer(text: str | None, choices: Sequence[str] | None = None, num_choices: int | None = None) -> str | None:
    """Read the answer letter out of a model's output, by SPEC section 5's generate rules over K letters.

    The rules are tried in order and the first that matches wins; nothing is ever guessed. "The K letters"
    are the first K of ``A``-``J`` (K = 4, ``A``-``D``, for SPIRAL).

    1. ``text`` stripped of whitespace, brackets ``()[]{}<>`` at either end and final punctuation
       ``.,;:!?`` (repeatedly, so ``"(B)."`` gives ``B``) is one of the K letters (capitals only);
    2. ``text``, after leading whitespace, starts with one of the K letters followed by ``.``, ``)`` or ``:``;
    3. the first match of ``(?i:answer|option|choice)\\s*(?i:is)?\\s*[:(]?\\s*([A-D])\\b``;
    4. the first match of ``\\(([A-D])\\)``;
    5. with ``choices``: exactly one of the K option texts occurs in ``text`` as a whole-word phrase,
       compared case-insensitively with punctuation removed and whitespace collapsed. An option whose text
       is empty after that never matches; when two options occur (also when one contains the other), the
       answer is ambiguous and invalid.

    Args:
        text: the model's output, or ``None`` (invalid).
        choices: the K option texts in letter order, without their letters (2 to 10).
        num_choices: K when ``choices`` is not given (default 4); must equal ``len(choices)`` when both are.

    Returns:
        One of the K letters, or ``None`` when no rule matches (scored wrong).

    Example:
        >>> parse_answer("The answer is (C).")
        'C'
        >>> parse_answer("I'd say the blue one", choices=["red", "blue", "green", "white"])
        'B'
        >>> parse_answer("I think A and B") is None
        True
        >>> parse_answer("(C)", choices=["yes", "no"]) is None  # only A and B exist
        True
    """
    if text is None:
        return None
    if not isinstance(text, str):
        raise TypeError(f"text must be a str or None, got {type(text).__name__}")
    if choices is not None and num_choices is not None and len(choices) != num_choices:
        raise ValueError(f"choices holds {len(choices)} option texts but num_choices is {num_choices}")
    count = len(choices) if choices is not None else (len(LETTERS) if num_choices is None else num_choices)
    letters = choice_letters(count)
    pattern = "".join(letters)

    stripped = _strip_decorations(text)
    if stripped in letters:
        return stripped
    start = re.match(_RULE2.replace("{letters}", pattern), text.lstrip())
    if start:
        return start.group(1)
    for rule in (_RULE3, _RULE4):
        found = re.search(rule.replace("{letters}", pattern), text)
        if found:
            return found.group(1)
    if choices is not None:
        haystack = f" {_normalize(text)} "
        hits = []
        for letter, option in zip(letters, choices, strict=True):
            needle = _normalize(option)
            if needle and f" {needle} " in haystack:
                hits.append(letter)
        if len(hits) == 1:
            return hits[0]
    return None


def accuracy_stderr(accuracy: float, n: int) -> float | None:
    """Standard error of an accuracy over ``n`` questions: sqrt(p (1 - p) / (n - 1)); ``None`` when n < 2.

    >>> round(accuracy_stderr(0.5, 5), 6)
    0.25
    """
    if n < 2:
        return None
    return math.sqrt(accuracy * (1.0 - accuracy) / (n - 1))


def majority_letter(references: Sequence[str | None]) -> tuple[str, float]:
    """The most frequent reference letter and the accuracy of always answering it (ties to the earlier letter).

    A ``None`` reference is a question that no single letter answers (circular evaluation, where the gold
    letter moves): it counts in the total only.

    >>> majority_letter(["B", "A", "B", "A", "C"])
    ('A', 0.4)
    >>> majority_letter([None, None])
    ('A', 0.0)
    >>> majority_letter(["J", "J", "A"])  # any of the letters A-J
    ('J', 0.6666666666666666)
    """
    if not references:
        raise ValueError("references must not be empty")
    counts = Counter(references)
    letter = max(ALL_LETTERS, key=lambda candidate: (counts[candidate], -ALL_LETTERS.index(candidate)))
    return letter, counts[letter] / len(references)


def per_category_accuracy(correct: Sequence[bool], categories: Sequence[str]) -> dict[str, dict]:
    """Accuracy and question count per category (categories in sorted order); the two lists run in parallel.

    >>> per_category_accuracy([True, False, True], ["lecture", "meeting", "lecture"])
    {'lecture': {'accuracy': 1.0, 'n': 2}, 'meeting': {'accuracy': 0.0, 'n': 1}}
    """
    per_category = {}
    for category in sorted(set(categories)):
        hits = [ok for ok, cat in zip(correct, categories, strict=True) if cat == category]
        per_category[category] = {"accuracy": sum(hits) / len(hits), "n": len(hits)}
    return per_category


def _check_reference(reference: object, position: int, count: int) -> str:
    letters = choice_letters(count)
    if not isinstance(reference, str) or reference not in letters:
        raise ValueError(
            f"references[{position}] must be one single letter {letters[0]}-{letters[-1]} "
            f"({count} choices), got {reference!r}"
        )
    return reference


def _choice_counts(n: int, choices, num_choices) -> list[int]:
    """K per question, from ``num_choices`` (one int or one per question), else ``choices``, else 4."""
    if num_choices is not None:
        counts = [num_choices] * n if isinstance(num_choices, int) else list(num_choices)
        _check_optional("num_choices", counts, n)
    elif choices is not None:
        counts = [len(options) for options in choices]
    else:
        counts = [len(LETTERS)] * n
    for i, count in enumerate(counts):
        choice_letters(count)  # raises on a count outside 2-10
        if choices is not None and len(choices[i]) != count:
            raise ValueError(f"choices[{i}] holds {len(choices[i])} options but num_choices says {count}")
    return counts


def _check_optional(name: str, values: Sequence | None, n: int) -> None:
    if values is not None and len(values) != n:
        raise ValueError(f"{name} has {len(values)} entries but there are {n} predictions")


def compute_spiral_accuracy(
    predictions: Sequence[str | None],
    references: Sequence[str],
    choices: Sequence[Sequence[str]] | None = None,
    categories: Sequence[str] | None = None,
    ids: Sequence[str] | None = None,
    num_choices: int | Sequence[int] | None = None,
) -> dict:
    """The metric without `evaluate`'s storage: same arguments and result as ``SpiralAccuracy.compute``.

    >>> compute_spiral_accuracy(["A", "C"], ["A", "B"])["accuracy"]
    0.5
    """
    n = len(predictions)
    if len(references) != n:
        raise ValueError(f"predictions has {n} entries but references has {len(references)}")
    if n == 0:
        raise ValueError("predictions and references must not be empty")
    for name, values in (("choices", choices), ("categories", categories), ("ids", ids)):
        _check_optional(name, values, n)
    counts = _choice_counts(n, choices, num_choices)
    golds = [_check_reference(reference, i, counts[i]) for i, reference in enumerate(references)]
    if ids is not None:
        repeated = sorted(sample_id for sample_id, count in Counter(ids).items() if count > 1)
        if repeated:
            raise ValueError(f"ids must be unique; repeated: {repeated[:5]}")

    parsed = [
        parse_answer(p, None if choices is None else choices[i], num_choices=counts[i])
        for i, p in enumerate(predictions)
    ]
    correct = [answer == gold for answer, gold in zip(parsed, golds, strict=True)]
    accuracy = sum(correct) / n
    letter, baseline = majority_letter(golds)
    result = {
        "accuracy": accuracy,
        "accuracy_stderr": accuracy_stderr(accuracy, n),
        "n": n,
        "n_invalid": sum(answer is None for answer in parsed),
        "majority_letter": letter,
        "majority_baseline": baseline,
    }
    if categories is not None:
        result["per_category"] = per_category_accuracy(correct, categories)
    return result


def _define_metric_class():
    import datasets
    import evaluate

    @evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
    class SpiralAccuracy(evaluate.Metric):
        def _info(self):
            return evaluate.MetricInfo(
                description=_DESCRIPTION,
                citation=CITATION,
                inputs_description=_KWARGS_DESCRIPTION,
                features=datasets.Features(
                    {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
                ),
                reference_urls=["https://arxiv.org/abs/2412.12009"],
            )

        def _compute(self, predictions, references, choices=None, categories=None, ids=None, num_choices=None):
            return compute_spiral_accuracy(
                predictions, references, choices=choices, categories=categories, ids=ids, num_choices=num_choices
            )

    SpiralAccuracy.__module__ = __name__
    SpiralAccuracy.__qualname__ = "SpiralAccuracy"
    return SpiralAccuracy


def __getattr__(name: str):
    if name == "SpiralAccuracy":
        globals()[name] = _define_metric_class()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if "evaluate" in sys.modules:
    SpiralAccuracy = _define_metric_class()
