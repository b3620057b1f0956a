"""The runner's small parts: scoring rules, variants, the record log, and the module examples."""

from __future__ import annotations

import doctest
import json

import pytest
import torch

from speechprune.errors import UsageError
from speechprune.evaluation import (
    checkpoint,
    evaluator,
    fileio,
    loading,
    measure,
    outputs,
    provenance,
    report,
    results,
    scoring,
    submit,
    tasks,
)
from speechprune.evaluation.evaluator import Variant, parse_variants
from speechprune.evaluation.tasks import data as tasks_data
from speechprune.evaluation.tasks import rows as tasks_rows


@pytest.mark.parametrize(
    "module",
    [scoring, checkpoint, measure, evaluator, loading, results, report, submit, fileio, provenance, outputs]
    + [tasks, tasks_rows, tasks_data],
)
def test_module_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_rotations_put_the_gold_option_under_each_letter_once():
    choices, answer = ["w", "x", "y", "z"], "C"
    seen = []
    for r in range(4):
        rotated, gold = scoring.rotate_choices(choices, answer, r)
        assert sorted(rotated) == choices and rotated[0] == choices[r]
        assert rotated["ABCD".index(gold)] == "y"
        seen.append(gold)
    assert sorted(seen) == ["A", "B", "C", "D"]
    with pytest.raises(ValueError, match="rotation"):
        scoring.rotate_choices(choices, answer, 4)
    with pytest.raises(ValueError, match="number of choices"):
        scoring.rotate_choices(choices[:1], "A", 0)
    with pytest.raises(ValueError, match="answer"):
        scoring.rotate_choices(choices, "E", 0)


@pytest.mark.parametrize("count", [2, 3, 10])
def test_k_rotations_put_the_gold_option_under_each_letter_once(count):
    choices = [f"o{i}" for i in range(count)]
    for gold_index in range(count):
        seen = []
        for r in range(count):
            rotated, gold = scoring.rotate_choices(choices, "ABCDEFGHIJ"[gold_index], r)
            assert rotated == choices[r:] + choices[:r]  # a naive left rotation
            assert rotated["ABCDEFGHIJ".index(gold)] == choices[gold_index]
            seen.append(gold)
        assert sorted(seen) == list("ABCDEFGHIJ"[:count])
    with pytest.raises(ValueError, match="rotation"):
        scoring.rotate_choices(choices, "A", count)


def test_loglik_picks_the_highest_letter_ties_to_the_earlier():
    logits = torch.full((3, 10), -5.0)
    ids = [4, 5, 6, 7]
    logits[0, 6] = 3.0  # C
    logits[1, [5, 7]] = 2.0  # B ties D
    logits[2, 0] = 50.0  # a non-letter token dominates: still one of the letters, all equal -> A
    answers = scoring.loglik_answers(logits, ids)
    assert [a["letter"] for a in answers] == ["C", "B", "A"]
    expected = torch.log_softmax(logits, -1)[0, ids].tolist()
    assert list(answers[0]["logprobs"].values()) == pytest.approx(expected)


def test_loglik_over_k_letters_per_row():
    logits = torch.randn(3, 30, generator=torch.Generator().manual_seed(0))
    ids = list(range(10, 20))  # A..J
    answers = scoring.loglik_answers(logits, ids, [2, 10, 5])
    full = torch.log_softmax(logits, -1)
    for row, (answer, count) in enumerate(zip(answers, [2, 10, 5])):
        values = full[row, ids[:count]].tolist()
        assert list(answer["logprobs"]) == list("ABCDEFGHIJ"[:count])
        assert list(answer["logprobs"].values()) == pytest.approx(values)
        assert answer["letter"] == "ABCDEFGHIJ"[max(range(count), key=lambda i: (values[i], -i))]


def test_letters_must_be_single_tokens():
    class Tokenizer:
        def encode(self, text, add_special_tokens=False):
            return [1, 2] if text == "D" else [ord(text)]

    with pytest.raises(ValueError, match="'D' is not a single token"):
        scoring.letter_token_ids(Tokenizer())


def test_variants_cross_rated_methods_with_rates():
    variants = parse_variants("speechprune,full,crop", "0.2,0.8")
    assert variants == [
        Variant("speechprune", 0.2),
        Variant("speechprune", 0.8),
        Variant("full", None),
        Variant("crop", 0.2),
        Variant("crop", 0.8),
    ]
    assert parse_variants("none,original", "") == [Variant("full", None), Variant("original", None)]
    for methods, rates, match in [
        ("speechprune,magic", "0.2", "methods"),
        ("random,random", "0.2", "twice"),
        ("random", "0.2,1.0", "rates"),
        ("random", "0.2,0.2", "rates"),
        ("random", "x", "rates"),
        ("random", "", "at least one rate"),
    ]:
        with pytest.raises(ValueError, match=match):
            parse_variants(methods, rates)


def test_record_log_and_tail_repair(tmp_path):
    path = checkpoint.rank_file(tmp_path, 3)
    assert path.name == "rank-00003.jsonl"
    records = [{"id": f"s{i}", "method": "random", "rate": 0.2, "rotation": 0} for i in range(3)]
    stamp = checkpoint.run_hash({"seed": 0})
    with checkpoint.RecordLog(path, stamp) as log:
        for record in records:
            log.append(record)
    assert fileio.repair_tail(path) is False  # nothing to cut
    with path.open("a") as f:
        f.write('{"id": "s3", "meth')
    assert fileio.repair_tail(path) is True
    assert path.read_text().endswith("\n") and checkpoint.load_records(tmp_path, stamp) == records
    assert all(json.loads(line)["run"] == stamp for line in path.read_text().splitlines())
    with pytest.raises(UsageError, match=r"3 in rank-00003.jsonl"):  # another run's stamp
        checkpoint.load_records(tmp_path, checkpoint.run_hash({"seed": 1}))
    with checkpoint.RecordLog(path, stamp) as log:  # appending after a repair continues the file cleanly
        log.append({"id": "s3"})
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["s0", "s1", "s2", "s3"]


def test_run_config_mismatch_names_every_difference(tmp_path):
    config = {"model": "tiny", "seed": 0, "variants": [["random", 0.2]]}
    assert checkpoint.check_run_config(tmp_path, config) is False
    checkpoint.write_run_config(tmp_path, config)
    assert checkpoint.check_run_config(tmp_path, dict(config, variants=[("random", 0.2)])) is True  # JSON-equal
    with pytest.raises(ValueError, match=r"model: stored 'tiny', now 'other'.*seed: stored 0, now 2"):
        checkpoint.check_run_config(tmp_path, dict(config, model="other", seed=2))
