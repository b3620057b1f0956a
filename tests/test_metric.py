"""SPIRAL accuracy metric: the SPEC section 5 parser rule by rule, the evaluate round trip, the errors."""

from __future__ import annotations

import doctest
import math
import random
import subprocess
import sys

import evaluate
import pytest

from speechprune.evaluate_metric.spiral_accuracy import METRIC_PATH
from speechprune.evaluate_metric.spiral_accuracy import spiral_accuracy as module
from speechprune.evaluate_metric.spiral_accuracy.spiral_accuracy import parse_answer

CHOICES = ["a car", "a bus", "the red bicycle", "a train"]

# (text, choices, expected letter or None, the SPEC rule that decides). Worked out by hand from SPEC section 5.
CASES = [
    # rule 1: the whole output, stripped of whitespace, brackets and final punctuation, is one letter
    ("B", None, "B", 1),
    ("  C\n", None, "C", 1),
    ("(D)", None, "D", 1),
    ("[A].", None, "A", 1),
    ("B.", None, "B", 1),
    ("{C}!", None, "C", 1),
    ("b", None, None, 1),  # capitals only
    ("E", None, None, 1),
    # rule 2: starts with a letter followed by . ) :
    ("B) because the speaker says so", None, "B", 2),
    ("A. The red one", None, "A", 2),
    ("C: twelve", None, "C", 2),
    ("\n D. twelve", None, "D", 2),
    ("B. The answer is C", None, "B", 2),  # rule 2 before rule 3
    ("A and B", None, None, 2),  # no punctuation after the letter
    # rule 3: answer/option/choice [is] [:(] letter
    ("The answer is (C).", None, "C", 3),
    ("Answer: D", None, "D", 3),
    ("ANSWER IS B", None, "B", 3),
    ("The correct option is B, I believe", None, "B", 3),
    ("I go with choice A", None, "A", 3),
    ("My answer is A, not (B)", None, "A", 3),  # rule 3 before rule 4
    ("Option d", None, None, 3),  # the letter is case-sensitive
    ("The answer is Bob", None, None, 3),  # \b after the letter
    # rule 4: a bracketed capital letter
    ("I pick (B) here", None, "B", 4),
    ("(B) because", None, "B", 4),
    ("It is (A) or (C)", None, "A", 4),
    ("I answered (C)", None, "C", 4),
    ("Because B) is right", None, None, 4),
    # rule 5: exactly one option text occurs
    ("It was the red bicycle.", CHOICES, "C", 5),
    ("THE RED BICYCLE!!", CHOICES, "C", 5),
    ("they took a   train, then walked", CHOICES, "D", 5),
    ("Probably a car or a bus", CHOICES, None, 5),  # two options
    ("It was the red bicycle.", None, None, 5),  # no choices, no rule 5
    ("just red", ["red", "red wine", "blue", "green"], "A", 5),
    ("red wine", ["red", "red wine", "blue", "green"], None, 5),  # both occur
    ("a category", ["cat", "dog", "fish", "bird"], None, 5),  # whole words only
    ("it's the U.S. one", ["the US", "France", "Peru", "Chile"], "A", 5),  # punctuation ignored
    # nothing matches
    ("I think A and B", None, None, 0),
    ("I think A and B", CHOICES, None, 0),
    ("invalid", None, None, 0),
    ("", None, None, 0),
    (None, None, None, 0),
]


@pytest.mark.parametrize(("text", "choices", "expected", "rule"), CASES)
def test_parse_answer_table(text, choices, expected, rule):
    assert parse_answer(text, choices) == expected


def test_parse_answer_is_deterministic_on_unparsable_text():
    # an unparsable answer must not fall back to a random letter
    assert {parse_answer("no idea, sorry") for _ in range(50)} == {None}


def test_parse_answer_rejects_bad_arguments():
    with pytest.raises(ValueError, match="number of choices"):
        parse_answer("A", ["one"])
    with pytest.raises(ValueError, match="number of choices"):
        parse_answer("A", [str(i) for i in range(11)])
    with pytest.raises(ValueError, match="num_choices"):
        parse_answer("A", ["one", "two", "three"], num_choices=4)
    with pytest.raises(TypeError, match="text"):
        parse_answer(3)


def test_module_doctests_pass():
    # The class (whose docstring holds the usage examples) is defined lazily: make sure it exists
    # whatever order the test files imported things in.
    assert module.SpiralAccuracy.__name__ == "SpiralAccuracy"
    result = doctest.testmod(module)
    assert result.attempted >= 10
    assert result.failed == 0


@pytest.fixture(scope="module")
def metric():
    return evaluate.load(METRIC_PATH, keep_in_memory=True)


def _naive(predictions, references):
    """An independent SPEC computation for letter or invalid predictions."""
    correct = [p == r for p, r in zip(predictions, references, strict=True)]
    n = len(references)
    p = sum(correct) / n
    counts = {letter: references.count(letter) for letter in "ABCD"}
    best = max(counts.values())
    letter = next(letter for letter in "ABCD" if counts[letter] == best)
    return p, math.sqrt(p * (1 - p) / (n - 1)), letter, best / n


def test_evaluate_load_round_trip_matches_naive_computation(metric):
    rng = random.Random(0)
    references = [rng.choice("ABCD") for _ in range(200)]
    predictions = [rng.choice(["A", "B", "C", "D", "B", "nothing"]) for _ in range(200)]
    out = metric.compute(predictions=predictions, references=references)
    accuracy, stderr, letter, baseline = _naive(predictions, references)
    assert out["n"] == 200
    assert out["n_invalid"] == predictions.count("nothing")
    assert out["accuracy"] == pytest.approx(accuracy)
    assert out["accuracy_stderr"] == pytest.approx(stderr)
    assert (out["majority_letter"], out["majority_baseline"]) == (letter, pytest.approx(baseline))


def test_add_batch_equals_one_compute(metric):
    predictions = ["A", "B) yes", "answer: C", "(D)", "??", "B"]
    references = ["A", "B", "D", "D", "A", "C"]
    one = metric.compute(predictions=predictions, references=references)
    metric.add_batch(predictions=predictions[:3], references=references[:3])
    metric.add_batch(predictions=predictions[3:], references=references[3:])
    assert metric.compute() == one
    assert one["accuracy"] == pytest.approx(3 / 6)
    assert one["n_invalid"] == 1


def test_choices_and_categories(metric):
    out = metric.compute(
        predictions=["the red bicycle", "a bus", "C", "A"],
        references=["C", "B", "C", "B"],
        choices=[CHOICES] * 4,
        categories=["lecture", "meeting", "lecture", "meeting"],
        ids=["l1", "m1", "l2", "m2"],
    )
    assert out["accuracy"] == pytest.approx(0.75)
    assert out["per_category"] == {"lecture": {"accuracy": 1.0, "n": 2}, "meeting": {"accuracy": 0.5, "n": 2}}


def test_single_question_has_no_stderr(metric):
    out = metric.compute(predictions=["A"], references=["A"])
    assert out["accuracy"] == 1.0 and out["accuracy_stderr"] is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"predictions": ["A", "B"], "references": ["A"]}, "Mismatch|references"),
        ({"predictions": [], "references": []}, "empty"),
        ({"predictions": ["A"], "references": ["E"]}, "references\\[0\\]"),
        ({"predictions": ["A"], "references": ["a"]}, "single letter"),
        ({"predictions": ["A", "B"], "references": ["A", "AB"]}, "references\\[1\\]"),
        ({"predictions": ["A", "B"], "references": ["A", "B"], "ids": ["x", "x"]}, "repeated"),
        ({"predictions": ["A", "B"], "references": ["A", "B"], "ids": ["x"]}, "ids has 1"),
        ({"predictions": ["A", "B"], "references": ["A", "B"], "choices": [CHOICES]}, "choices has 1"),
        ({"predictions": ["A"], "references": ["A"], "categories": ["a", "b"]}, "categories has 2"),
    ],
)
def test_clear_errors(metric, kwargs, message):
    with pytest.raises(ValueError, match=message):
        metric.compute(**kwargs)


def test_parser_import_does_not_load_evaluate():
    # the runner, `speechprune submit` and the report import the parser and statistics without evaluate's cost
    code = (
        "import sys; import speechprune.evaluate_metric.spiral_accuracy.spiral_accuracy as m; "
        "import speechprune.evaluation.results; assert m.parse_answer('B.') == 'B'; "
        "assert 'evaluate' not in sys.modules, 'evaluate was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert issubclass(module.SpiralAccuracy, evaluate.Metric)


def _naive_parse(text, k, choices=None):
    """SPEC section 5 over the first k letters, written out without the module's helpers."""
    letters = "ABCDEFGHIJ"[:k]
    stripped = text
    for _ in range(10):
        stripped = stripped.strip().strip("()[]{}<>").rstrip(".,;:!?")
    if len(stripped) == 1 and stripped in letters:
        return stripped
    head = text.lstrip()
    if len(head) >= 2 and head[0] in letters and head[1] in ".):":
        return head[0]
    import re

    for rule in (rf"(?i:answer|option|choice)\s*(?i:is)?\s*[:(]?\s*([{letters}])\b", rf"\(([{letters}])\)"):
        found = re.search(rule, text)
        if found:
            return found.group(1)
    if choices:
        words = " " + " ".join("".join(c for c in text.lower() if c.isalnum() or c.isspace()).split()) + " "
        hits = [letters[i] for i, c in enumerate(choices) if c and f" {c.lower()} " in words]
        if len(hits) == 1:
            return hits[0]
    return None


@pytest.mark.parametrize("k", [2, 3, 5, 10])
def test_parse_answer_over_k_letters_matches_a_naive_parser(k):
    letters = "ABCDEFGHIJ"
    choices = [f"option{letters[i].lower()}word" for i in range(k)]
    texts = [f"{a}" for a in letters] + [f"({a})" for a in letters] + [f"{a}) because" for a in letters]
    texts += [f"The answer is {a}." for a in letters] + [f"I pick ({a}) now" for a in letters]
    texts += [f"it is {c}" for c in choices] + ["optionjword", "nothing", "A and B"]
    for text in texts:
        assert parse_answer(text, choices) == _naive_parse(text, k, choices), (k, text)
        assert parse_answer(text, num_choices=k) == _naive_parse(text, k), (k, text)
    assert parse_answer("J", num_choices=k) == ("J" if k == 10 else None)


def test_metric_with_k_choices_matches_a_naive_count():
    from speechprune.evaluate_metric.spiral_accuracy.spiral_accuracy import compute_spiral_accuracy

    rng = random.Random(3)
    counts = [rng.choice([2, 3, 7, 10]) for _ in range(60)]
    refs = [rng.choice("ABCDEFGHIJ"[:k]) for k in counts]
    preds = [rng.choice(list("ABCDEFGHIJ"[:k]) + ["?"]) for k in counts]
    out = compute_spiral_accuracy(preds, refs, num_choices=counts)
    assert out["accuracy"] == sum(p == r for p, r in zip(preds, refs)) / 60
    assert out["n_invalid"] == sum(p == "?" for p in preds)
    tally = {letter: refs.count(letter) for letter in "ABCDEFGHIJ"}
    best = max("ABCDEFGHIJ", key=lambda letter: (tally[letter], -"ABCDEFGHIJ".index(letter)))
    assert (out["majority_letter"], out["majority_baseline"]) == (best, tally[best] / 60)
    # The same from the option lists, and a reference outside its question's letters is refused.
    choices = [[f"c{i}" for i in range(k)] for k in counts]
    assert compute_spiral_accuracy(preds, refs, choices=choices)["accuracy"] == out["accuracy"]
    with pytest.raises(ValueError, match="references\\[0\\]"):
        compute_spiral_accuracy(["C"], ["C"], num_choices=2)
    with pytest.raises(ValueError, match="num_choices"):
        compute_spiral_accuracy(["A"], ["A"], choices=[["x", "y", "z"]], num_choices=[2])
