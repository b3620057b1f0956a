"""SPEC section 9's row rules (choices, answers, rejections) and the task file checks, case by case."""

from __future__ import annotations

import numpy as np
import pytest

from speechprune.errors import UsageError
from speechprune.evaluation.tasks import load_task, parse_task
from speechprune.evaluation.tasks.rows import RowRejected, gold_letter, split_choices, split_question

RGB = ["red", "green", "blue"]


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        (["red", "green"], ["red", "green"]),
        ('["red", "green", "blue"]', RGB),
        ("(A) red (B) green (C) blue", RGB),
        ("A. red\nB. green\nC. blue", RGB),
        ("A) red B) green C) blue", RGB),
        ("A: red\nB: green", ["red", "green"]),
        ("(A) Mr. B. Smith (B) C. Jones", ["Mr. B. Smith", "C. Jones"]),  # one marker style per list
        (" ".join(f"({letter}) o{letter}" for letter in "ABCDEFGHIJ"), [f"o{letter}" for letter in "ABCDEFGHIJ"]),
    ],
)
def test_split_choices(cell, expected):
    assert split_choices(cell) == expected


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        (["alone"], "too_few_choices"),
        ([f"o{i}" for i in range(11)], "too_many_choices"),
        ("just some text", "bad_choices"),
        ("(A) only one", "bad_choices"),
        ("[broken json", "bad_choices"),
        (["x", None], "bad_choices"),
        (["x", " "], "bad_choices"),
        (42, "bad_choices"),
    ],
)
def test_split_choices_rejects(cell, reason):
    with pytest.raises(RowRejected) as caught:
        split_choices(cell)
    assert caught.value.reason == reason


def test_split_question_takes_the_last_run_of_markers():
    assert split_question("Did A. Smith buy it? A. yes B. no") == ("Did A. Smith buy it?", ["yes", "no"])
    assert split_question("Where?\n(A) here\n(B) there\n(C) nowhere") == ("Where?", ["here", "there", "nowhere"])
    with pytest.raises(RowRejected, match="missing_value"):
        split_question("(A) yes (B) no")


@pytest.mark.parametrize(
    ("answer", "letter"),
    [
        ("B", "B"),
        ("(B)", "B"),
        ("B.", "B"),
        ("(B) green", "B"),
        ("B. Green!", "B"),
        ("  GREEN. ", "B"),
        (2, "C"),
        (np.int64(0), "A"),
    ],
)
def test_gold_letter(answer, letter):
    assert gold_letter(answer, RGB) == letter


@pytest.mark.parametrize(
    ("answer", "choices", "reason"),
    [
        ("purple", RGB, "answer_matches_none"),
        ("D", RGB, "answer_matches_none"),  # a letter beyond the row's choices
        (3, RGB, "answer_matches_none"),
        ("(A) green", RGB, "answer_matches_none"),  # the letter's text disagrees
        ("B", ["B", "A"], "answer_matches_several"),  # the letter B and the text of A
        ("same", ["same", "Same."], "answer_matches_several"),
        ("", RGB, "missing_value"),
        (None, RGB, "missing_value"),
        (True, RGB, "missing_value"),
    ],
)
def test_gold_letter_never_guesses(answer, choices, reason):
    with pytest.raises(RowRejected) as caught:
        gold_letter(answer, choices)
    assert caught.value.reason == reason


def test_task_files_are_checked_with_the_file_named(tmp_path):
    base = {"task": "t", "columns": {"audio": "a", "question": "q", "choices": "c", "answer": "x"}}
    assert parse_task(base).split == "test"
    bad = [
        ({"colums": {}}, "unknown keys"),
        ({"columns": {**base["columns"], "speaker": "s"}}, "unknown fields"),
        ({"columns": {"audio": "a", "question": "q", "choices": "c"}}, "columns.answer is required"),
        ({"filter": {"min_seconds": -1}}, "filter.min_seconds"),
        ({"filter": {"min_seconds": 5, "max_seconds": 2}}, "above"),
        ({"task": "two words"}, "'task' must be a name"),
    ]
    for change, message in bad:
        with pytest.raises(UsageError, match=message):
            parse_task({**base, **change}, tmp_path / "mine.yaml")
    with pytest.raises(UsageError, match=r"mine\.yaml"):
        parse_task({**base, "filter": {"max_seconds": "long"}}, tmp_path / "mine.yaml")
    with pytest.raises(UsageError, match="no preset called 'nope'.*spiral"):
        load_task("nope")
    (tmp_path / "broken.yaml").write_text("task: [unclosed")
    with pytest.raises(UsageError, match="not valid YAML"):
        load_task(str(tmp_path / "broken.yaml"))
