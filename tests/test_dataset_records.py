"""Validation of SPIRAL source records: every malformed kind is caught, every published record passes."""

from __future__ import annotations

import copy
import doctest
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from speechprune.dataset_script import SAMPLE_ANNOTATIONS, card, hard, records, shards, tts
from speechprune.dataset_script.card import config_stats
from speechprune.dataset_script.records import RecordError, parse_record, read_annotations


def _raw(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def raw() -> list[dict]:
    """The 24 packaged records (published records, unchanged: checked against the full files when present)."""
    return _raw(SAMPLE_ANNOTATIONS)


@pytest.fixture(scope="module")
def meeting(raw) -> dict:
    """A multi-speaker record (several turns), to break alignment and prompts on."""
    return next(r for r in raw if len(r["transcript"]) >= 3 and len(r["audio_data"]["combined"]["prompts_used"]) >= 3)


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _check_records(path: Path, raw: list[dict]) -> tuple[int, int]:
    """Validate and align every record of ``path`` against a direct reading of the JSON (``raw``).

    Returns (sentences, sentences whose turn is checked independently).
    """
    records, rejects = read_annotations(path)
    assert (len(records), rejects) == (len(raw), [])
    # independent check of the alignment: wherever a sentence occurs in exactly one turn, that is its turn
    checked = 0
    for record, source in zip(records, raw):
        turns = [_squash(" ".join(t["text"])) for t in source["transcript"]]
        for sentence, turn in zip(record.sentences, record.sentence_turns):
            holders = [i for i, text in enumerate(turns) if _squash(sentence) in text]
            assert turn in holders
            if len(holders) == 1:
                assert turn == holders[0]
                checked += 1
    # every record's fields, against a direct reading of the JSON
    for record, source in zip(records, raw):
        question = source["test_question"]
        assert record.id == source["metadata"]["id"]
        assert record.answer == "ABCD"[question["choices"].index(question["correct_answer"])]
        assert list(record.choices) == [c.split(". ", 1)[1] for c in question["choices"]]
        assert [t[1] for t in record.turns] == [" ".join(t["text"]) for t in source["transcript"]]
        assert record.sentences == tuple(source["audio_data"]["combined"]["sentences"])
    return sum(len(r.sentences) for r in records), checked


def test_sample_records_all_validate_and_align(raw):
    sentences, checked = _check_records(SAMPLE_ANNOTATIONS, raw)
    assert len(raw) == 24 and checked > 0.95 * sentences


def test_published_records_all_validate_and_align(published_spiral):
    for name, expected in (("data.jsonl", 1012), ("data_h.jsonl", 401)):
        raw = _raw(published_spiral / name)
        assert len(raw) == expected
        sentences, checked = _check_records(published_spiral / name, raw)
        if name == "data.jsonl":
            assert sentences == 17260 and checked > 17000


def test_sample_and_hard_records_are_published_records(published_spiral, raw):
    by_id = {r["metadata"]["id"]: r for r in _raw(published_spiral / "data.jsonl")}
    assert all(by_id[r["metadata"]["id"]] == r for r in _raw(published_spiral / "data_h.jsonl"))
    assert all(by_id[r["metadata"]["id"]] == r for r in raw)


def _check_letter_bias(subset: list[dict]) -> None:
    letters = Counter(r["test_question"]["correct_answer"][0] for r in subset)
    stats = config_stats([r["test_question"]["correct_answer"][0] for r in subset], [], [])
    letter, count = letters.most_common(1)[0]
    assert stats["majority_letter"] == letter == "B"
    assert stats["majority_percent"] == pytest.approx(100 * count / len(subset))


def test_letter_bias_of_the_sample(raw):
    _check_letter_bias(raw)


def test_letter_bias_from_the_data(published_spiral):
    raw = _raw(published_spiral / "data.jsonl")
    hard_ids = {r["metadata"]["id"] for r in _raw(published_spiral / "data_h.jsonl")}
    for subset in (raw, [r for r in raw if r["metadata"]["id"] in hard_ids]):
        _check_letter_bias(subset)
    # the figure SPEC section 4 quotes (59.6%), recomputed here from the file
    percent = config_stats([r["test_question"]["correct_answer"][0] for r in raw], [], [])["majority_percent"]
    assert f"{percent:.1f}" == "59.6"


def _edit(record: dict, change) -> dict:
    bad = copy.deepcopy(record)
    change(bad)
    return bad


def _drop_wrong_choice(r):
    wrong = next(c for c in r["test_question"]["choices"] if c != r["test_question"]["correct_answer"])
    r["test_question"]["choices"].remove(wrong)


def _merge_across_turns(r):
    # one sentence made of the last sentence of turn 0 and the first of turn 1: it straddles two turns
    sentences = r["audio_data"]["combined"]["sentences"]
    cut = len(r["transcript"][0]["text"])
    assert _squash("".join(sentences[:cut])) == _squash(" ".join(r["transcript"][0]["text"]))
    sentences[cut - 1 : cut + 1] = [sentences[cut - 1] + " " + sentences[cut]]
    r["audio_data"]["key_sentences"]["indices"] = [0, 1]


def _swap_turn_order(r):
    sentences = r["audio_data"]["combined"]["sentences"]
    sentences[0], sentences[-1] = sentences[-1], sentences[0]


MALFORMED = {
    "missing question": (lambda r: r["test_question"].pop("question"), "missing field test_question.question"),
    "missing id": (lambda r: r["metadata"].pop("id"), "missing field metadata.id"),
    "missing sentences": (lambda r: r["audio_data"]["combined"].pop("sentences"), "missing field audio_data"),
    "wrong type": (lambda r: r["test_question"].__setitem__("choices", "A. x"), "must be list"),
    "three choices": (_drop_wrong_choice, "must hold 4 choices, got 3"),
    "five choices": (lambda r: r["test_question"]["choices"].append("E. more"), "must hold 4 choices, got 5"),
    "answer not a choice": (
        lambda r: r["test_question"].__setitem__("correct_answer", "B. something else"),
        "correct_answer is not one of the choices",
    ),
    "indices past the end": (
        lambda r: r["audio_data"]["key_sentences"].__setitem__(
            "indices",
            [len(r["audio_data"]["combined"]["sentences"]), len(r["audio_data"]["combined"]["sentences"]) + 1],
        ),
        "out of range",
    ),
    "indices empty range": (lambda r: r["audio_data"]["key_sentences"].__setitem__("indices", [2, 2]), "out of range"),
    "indices negative": (lambda r: r["audio_data"]["key_sentences"].__setitem__("indices", [-1, 1]), "out of range"),
    "reworded sentence": (
        lambda r: r["audio_data"]["combined"]["sentences"].__setitem__(1, "This sentence was never said."),
        "does not align with the transcript turns",
    ),
    "sentence across two turns": (_merge_across_turns, "does not align with the transcript turns"),
    "sentences out of order": (_swap_turn_order, "does not align with the transcript turns"),
    "speaker without prompt": (
        lambda r: r["audio_data"]["combined"]["prompts_used"].pop("spk_2"),
        "speaker spk_2 has no prompt",
    ),
    "prompt without gender": (
        lambda r: r["audio_data"]["combined"]["prompts_used"].__setitem__("spk_1", "/voices/8975.wav"),
        "names no gender",
    ),
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_each_malformed_kind_is_rejected_with_its_reason(meeting, kind):
    change, reason = MALFORMED[kind]
    with pytest.raises(RecordError, match=re.escape(reason)):
        parse_record(_edit(meeting, change))


def _reworded(raw: list[dict]) -> list[dict]:
    """Records whose original_key_sentence is worded differently from the sentences its indices name."""
    return [
        r
        for r in raw
        if _squash(
            " ".join(r["audio_data"]["combined"]["sentences"][slice(*r["audio_data"]["key_sentences"]["indices"])])
        )
        != _squash(r["original_key_sentence"])
    ]


def test_reworded_key_sentence_is_not_malformed(raw):
    differing = _reworded(raw)
    assert differing  # the sample holds a few
    assert all(parse_record(r).key_sentence == r["original_key_sentence"] for r in differing)
    edited = _edit(raw[0], lambda r: r.__setitem__("original_key_sentence", "Words nobody said."))
    assert parse_record(edited).key_sentence == "Words nobody said."


def test_reworded_key_sentences_in_the_published_file(published_spiral):
    differing = _reworded(_raw(published_spiral / "data.jsonl"))
    assert len(differing) == 89  # SPEC section 4
    assert all(parse_record(r).key_sentence == r["original_key_sentence"] for r in differing)


def test_read_annotations_collects_rejects_with_line_numbers(tmp_path, raw, meeting):
    lines = [json.dumps(raw[0])]
    expected = {}
    for kind in ("three choices", "reworded sentence", "speaker without prompt", "missing question"):
        lines.append(json.dumps(_edit(meeting, MALFORMED[kind][0])))
        expected[len(lines)] = MALFORMED[kind][1]
    lines.append("{not json")
    expected[len(lines)] = "not valid JSON"
    lines.append(json.dumps(raw[3]))  # lecture_1
    lines.append(json.dumps(raw[0]))  # duplicate id
    expected[len(lines)] = "duplicate id 'lecture_0' (first on line 1)"
    lines.append("")  # blank lines are not records
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    records, rejects = read_annotations(path)
    assert [r.id for r in records] == ["lecture_0", "lecture_1"]
    assert [r.line for r in records] == [1, 7]
    assert {r["line"]: r["reason"] for r in rejects}.keys() == expected.keys()
    for reject in rejects:
        assert expected[reject["line"]] in reject["reason"]
    assert len(records) + len(rejects) == 8  # records in = rows kept + rejects
    limited, limited_rejects = read_annotations(path, limit=3)
    assert len(limited) + len(limited_rejects) == 3


@pytest.mark.parametrize("module", [records, tts, shards, card, hard])
def test_module_examples(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
