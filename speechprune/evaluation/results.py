"""Per-sample records in, lm-evaluation-harness-shaped ``results.json`` out.

A run keeps one JSON line per answered prompt in ``samples.jsonl`` (written and read with
:mod:`speechprune.evaluation.fileio`; ``speechprune eval`` appends through :mod:`speechprune.evaluation.checkpoint`)
and, at the end, writes a ``results.json`` beside it (:func:`build_results` + :func:`write_results`). What produced
the numbers (git commit, versions, content hashes) comes from :mod:`speechprune.evaluation.provenance`. Everything in
``results.json`` can be recomputed from the per-sample file with :func:`aggregate`; ``speechprune submit``
does exactly that before it publishes a score.

A record is a dict with these fields (extra fields are kept in the file and ignored here):

==========================  =====================================================================
``id``                      sample id (``lecture_3``)
``config``                  the task the question comes from (``spiral``, ``spiral_h``, ``dream_tts_long``, ...)
``method``, ``rate``        pruning method and rate; ``rate`` is ``None`` for ``full`` / ``original``
``parsed``, ``gold``        the answer letter A-J (``None`` = invalid) and the correct letter
``correct``                 ``parsed == gold`` (checked)
``rotation``                circular evaluation only: 0 to K-1, how far the K choices were rotated
``category``                optional: ``lecture`` / ``meeting`` / ``conversation``
``audio_source``            optional: ``espeak-ng`` / ``styletts2`` / ``authors`` (never mixed)
``prompt_hash``             sha256 of the rendered prompt; ``raw_output``: the generated text
``audio_tokens_before``     audio tokens the encoder produced; ``audio_tokens_after``: kept ones
``prefill_ms``, ``llm_flops``, ``peak_memory_gb``, ``activation_memory_gb``: optional costs
==========================  =====================================================================

Example:
    >>> records = [
    ...     {"id": "q1", "config": "spiral", "method": "speechprune", "rate": 0.2,
    ...      "parsed": "B", "gold": "B", "correct": True, "llm_flops": 2e12},
    ...     {"id": "q2", "config": "spiral", "method": "speechprune", "rate": 0.2,
    ...      "parsed": None, "gold": "A", "correct": False, "llm_flops": 4e12},
    ... ]
    >>> row = aggregate(records)["spiral"]["speechprune@0.2"]
    >>> row["accuracy"], row["n"], row["n_invalid"], row["llm_tflops"]
    (0.5, 2, 1, 3.0)
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from speechprune.evaluate_metric.spiral_accuracy.spiral_accuracy import (
    ALL_LETTERS,
    accuracy_stderr,
    majority_letter,
    per_category_accuracy,
)
from speechprune.evaluation import fileio
from speechprune.evaluation.provenance import git_hash, package_versions

# Table order of methods: the pruning module's; unknown methods sort after these, by name.
from speechprune.modeling.pruning import METHODS as METHOD_ORDER

AUDIO_SOURCES = ("espeak-ng", "styletts2", "authors")
SCORINGS = ("loglik", "generate")
TASK_VERSION = 1
REQUIRED_FIELDS = ("id", "config", "method", "rate", "parsed", "gold", "correct")
# Mean over a group's records; the output key is the record field unless renamed here.
COST_FIELDS = {
    "prefill_ms": "prefill_ms",
    "llm_flops": "llm_tflops",
    "peak_memory_gb": "peak_memory_gb",
    "activation_memory_gb": "activation_memory_gb",
    "audio_tokens_before": "audio_tokens_before",
    "audio_tokens_after": "audio_tokens_after",
}


def result_key(method: str, rate: float | None) -> str:
    """The key of a (method, rate) result: ``"speechprune@0.2"``; just the method when ``rate`` is None.

    The rate is written in its short ``:g`` form when that reads back as the same number, else in full
    (``repr``), so two different rates never share a key.

    >>> result_key("speechprune", 0.2), result_key("original", None)
    ('speechprune@0.2', 'original')
    >>> result_key("random", 0.1234567), result_key("random", 0.1234568)
    ('random@0.1234567', 'random@0.1234568')
    """
    if rate is None:
        return method
    rate = float(rate)
    short = f"{rate:g}"
    return f"{method}@{short if float(short) == rate else repr(rate)}"


def parse_result_key(key: str) -> tuple[str, float | None]:
    """Inverse of :func:`result_key`.

    >>> parse_result_key("random@0.4"), parse_result_key("full")
    (('random', 0.4), ('full', None))
    """
    method, sep, rate = key.partition("@")
    return method, (float(rate) if sep else None)


def key_order(key: str) -> tuple:
    """Sort key of result keys: table order of methods, the rate-less reference first, then by rate."""
    method, rate = parse_result_key(key)
    rank = METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)
    return (rank, method, -1.0 if rate is None else rate)


def _check_record(record: dict, position: int) -> None:
    missing = [name for name in REQUIRED_FIELDS if name not in record]
    if missing:
        raise ValueError(f"records[{position}] (id {record.get('id')!r}) lacks fields {missing}")
    if record["gold"] not in ALL_LETTERS:
        raise ValueError(f"records[{position}] (id {record['id']!r}) has gold {record['gold']!r}, not a letter A-J")
    if record["parsed"] is not None and record["parsed"] not in ALL_LETTERS:
        raise ValueError(f"records[{position}] (id {record['id']!r}) has parsed {record['parsed']!r}")
    if bool(record["correct"]) != (record["parsed"] == record["gold"]):
        raise ValueError(
            f"records[{position}] (id {record['id']!r}) says correct={record['correct']!r} but parsed "
            f"{record['parsed']!r} vs gold {record['gold']!r}"
        )


def _mean(values: list) -> float | None:
    if not values or any(value is None for value in values):
        return None
    return sum(values) / len(values)


def key_recall_summary(group: list[dict]) -> dict:
    """Mean ``key_recall`` of the records that have one, its standard error and their count.

    The standard error is the sample standard deviation over sqrt(n) (``None`` for n < 2); all three
    are ``None`` / 0 when no record has a key recall (a task without key times).

    >>> key_recall_summary([{"key_recall": 1.0}, {"key_recall": 0.5}, {"key_recall": None}])
    {'key_recall': 0.75, 'key_recall_stderr': 0.25, 'key_recall_n': 2}
    """
    values = [float(r["key_recall"]) for r in group if r.get("key_recall") is not None]
    n = len(values)
    mean = sum(values) / n if n else None
    stderr = None
    if n >= 2:
        stderr = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)
    return {"key_recall": mean, "key_recall_stderr": stderr, "key_recall_n": n}


def _summarize(group: list[dict], circular: bool) -> dict:
    """Metrics of one (config, method, rate) group; see :func:`aggregate`."""
    by_question: dict[str, list[dict]] = defaultdict(list)
    for record in group:
        by_question[record["id"]].append(record)
    seen = set()
    for record in group:
        slot = (record["id"], record.get("rotation") if circular else None)
        if slot in seen:
            raise ValueError(f"duplicate record for id {record['id']!r} (rotation {slot[1]}) in one group")
        seen.add(slot)
    if circular:
        for question, answers in by_question.items():
            rotations = sorted(answer.get("rotation") for answer in answers if answer.get("rotation") is not None)
            # K rotations 0..K-1, one per choice; the gold option moves once through every position, so their
            # gold letters are the first K letters. K itself is in the records only as the loglik letters.
            golds = {answer["gold"] for answer in answers}
            counts = {len(answer["logprobs"]) for answer in answers if answer.get("logprobs")}
            count = counts.pop() if len(counts) == 1 else len(rotations)
            if len(rotations) < 2 or rotations != list(range(count)) or golds != set(ALL_LETTERS[:count]):
                raise ValueError(
                    f"circular: id {question!r} has rotations {rotations} with gold letters {sorted(golds)}, "
                    f"expected rotations 0 to K-1 whose gold letters are the K letters (K = {count})"
                )

    questions = sorted(by_question)
    correct = {q: all(answer["parsed"] == answer["gold"] for answer in by_question[q]) for q in questions}
    n = len(questions)
    accuracy = sum(correct.values()) / n
    # Always answering one letter is right on a question only when every record of it has that gold letter:
    # its gold when asked once; under circular scoring the gold moves, so no question counts (baseline 0).
    golds = [{answer["gold"] for answer in by_question[q]} for q in questions]
    letter, baseline = majority_letter([gold.pop() if len(gold) == 1 else None for gold in golds])
    row = {
        "accuracy": accuracy,
        "accuracy_stderr": accuracy_stderr(accuracy, n),
        "n": n,
        "n_invalid": sum(record["parsed"] is None for record in group),
        "majority_letter": letter,
        "majority_baseline": baseline,
    }
    categories = [by_question[q][0].get("category") for q in questions]
    if all(category is not None for category in categories):
        row["per_category"] = per_category_accuracy([correct[q] for q in questions], categories)
    row.update(key_recall_summary(group))
    for field, name in COST_FIELDS.items():
        value = _mean([record.get(field) for record in group])
        row[name] = value / 1e12 if (value is not None and field == "llm_flops") else value
    return row


def aggregate(records: Iterable[dict], circular: bool | None = None) -> dict[str, dict[str, dict]]:
    """Accuracy and costs per (config, method, rate) from per-sample records.

    Args:
        records: per-sample dicts (fields in the module docstring); ``correct`` must equal ``parsed == gold``.
        circular: score a question as correct only if all its rotations are; then a question with K choices
            needs exactly the rotations 0 to K-1, whose gold letters are the K letters (the gold option moves
            once through every position). ``None`` infers it from the records carrying a ``rotation``.

    Returns:
        ``{config: {result_key(method, rate): row}}`` with keys in table order. A row holds
        ``accuracy``, ``accuracy_stderr`` (sqrt(p (1 - p) / (n - 1)), ``None`` for n = 1), ``n`` (questions),
        ``n_invalid`` (records whose answer could not be parsed; in circular mode counted per rotation),
        ``majority_letter`` / ``majority_baseline`` (accuracy of always giving the most frequent gold letter,
        which is 0 under circular scoring), ``per_category`` when every record names its category, and the
        means over records of ``prefill_ms``, ``llm_tflops`` (``llm_flops`` / 1e12), ``peak_memory_gb``,
        ``activation_memory_gb``, ``audio_tokens_before`` and ``audio_tokens_after`` (``None`` when any record
        of the group lacks that field), and ``key_recall`` / ``key_recall_stderr`` / ``key_recall_n``
        (:func:`key_recall_summary`).

    Raises:
        ValueError: no records, a missing field, a ``correct`` that disagrees with ``parsed``/``gold``,
            a repeated record, an incomplete circular question, or records from different audio sources.
    """
    records = list(records)
    if not records:
        raise ValueError("records must not be empty")
    for position, record in enumerate(records):
        _check_record(record, position)
    sources = {record["audio_source"] for record in records if record.get("audio_source") is not None}
    if len(sources) > 1:
        raise ValueError(
            f"records mix audio sources {sorted(sources)}: results on different sources are not comparable"
        )
    if circular is None:
        circular = any(record.get("rotation") is not None for record in records)

    groups: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        groups[record["config"]][result_key(record["method"], record["rate"])].append(record)
    return {
        config: {key: _summarize(by_key[key], circular) for key in sorted(by_key, key=key_order)}
        for config, by_key in sorted(groups.items())
    }


def make_config(
    *,
    model_id: str,
    model_revision: str | None,
    dataset_id: str,
    dataset_revision: str | None,
    audio_source: str,
    scoring: str = "loglik",
    circular: bool = False,
    pruning: dict | None = None,
    seeds: dict | None = None,
    num_processes: int = 1,
    model_content_hash: str | None = None,
    dataset_fingerprint: str | None = None,
    **extra,
) -> dict:
    """The ``config`` block of ``results.json``: what produced the numbers.

    Args:
        model_id: Hub id or local path of the model.
        model_revision: the Hub commit sha, or ``provenance.content_hash`` of a local folder.
        dataset_id: Hub id (``owner/name``) or local path of the SPIRAL dataset.
        dataset_revision: the Hub commit sha, or ``provenance.content_hash`` of the built dataset folder.
        audio_source: ``espeak-ng``, ``styletts2`` or ``authors`` (SPIRAL's speech engines); ``None`` for a task
            whose dataset has its own recordings.
        scoring: ``loglik`` or ``generate``.
        circular: whether each question was asked under its four rotations.
        pruning: settings shared by the run (``methods``, ``rates``, ``phase1_tokens``, ``tokens_per_frame``,
            ``temperature``, ``query``, ...).
        seeds: e.g. ``{"pruning_seed": 0}``.
        num_processes: accelerate processes that ran the evaluation.
        model_content_hash: ``provenance.content_hash`` of the model files, when ``model_revision`` is a commit sha.
        dataset_fingerprint: ``datasets``' fingerprint of the evaluated split.
        **extra: any further settings (``dtype``, ``batch_size``, ``max_new_tokens``, ...).

    >>> make_config(model_id="m", model_revision="r", dataset_id="d", dataset_revision="s",
    ...             audio_source="espeak-ng")["model"]
    {'id': 'm', 'revision': 'r', 'content_hash': None}
    """
    if audio_source is not None and audio_source not in AUDIO_SOURCES:
        raise ValueError(f"audio_source must be one of {AUDIO_SOURCES} (or None off SPIRAL), got {audio_source!r}")
    if scoring not in SCORINGS:
        raise ValueError(f"scoring must be one of {SCORINGS}, got {scoring!r}")
    return {
        "model": {"id": model_id, "revision": model_revision, "content_hash": model_content_hash},
        "dataset": {"id": dataset_id, "revision": dataset_revision, "fingerprint": dataset_fingerprint},
        "audio_source": audio_source,
        "scoring": scoring,
        "circular": bool(circular),
        "pruning": dict(pruning or {}),
        "seeds": dict(seeds or {}),
        "num_processes": int(num_processes),
        **extra,
    }


def build_results(
    records: Iterable[dict],
    *,
    config: dict,
    samples_file: str = "samples.jsonl",
    dataset_sizes: dict[str, int] | None = None,
    date: str | None = None,
    rejected: dict[str, int] | None = None,
    rejects_file: str = "rejects.jsonl",
) -> dict:
    """The whole ``results.json`` document (lm-evaluation-harness shape) for a run.

    Args:
        records: the run's per-sample records (see :func:`aggregate`).
        config: :func:`make_config`'s block; its ``circular`` decides the scoring, and records naming an
            audio source must name ``config["audio_source"]``.
        samples_file: where the records are, relative to ``results.json``.
        dataset_sizes: ``{config: rows in the dataset}`` for ``n-samples.original`` (default: questions seen).
        date: ISO-8601 time; default now (UTC).
        rejected: rows the task left out, by reason (``None``: the key is left out of the document).
        rejects_file: where they are listed, relative to ``results.json``.

    Returns:
        ``{"results", "configs", "n-samples", "config", "versions", "git_hash", "date", "samples_file"}``, and
        ``"rejected": {"total", "by_reason", "file"}`` when ``rejected`` is given.
    """
    records = list(records)
    sources = {record.get("audio_source") for record in records} - {None}
    if sources - {config.get("audio_source")}:
        raise ValueError(
            f"records name audio sources {sorted(sources)} but config says {config.get('audio_source')!r}"
        )
    results = aggregate(records, circular=bool(config.get("circular", False)))
    dataset = config.get("dataset", {})
    task = config.get("task") or {}
    effective = {name: len({r["id"] for r in records if r["config"] == name}) for name in results}
    sizes = dataset_sizes or {}
    document = {
        "results": results,
        "configs": {
            name: {
                "task": name,
                "dataset_path": dataset.get("id"),
                "dataset_name": task.get("config", name),
                "test_split": task.get("split", "test"),
                "metric": "spiral_accuracy",
                "scoring": config.get("scoring"),
                "circular": bool(config.get("circular", False)),
                "version": TASK_VERSION,
            }
            for name in results
        },
        "n-samples": {
            name: {"original": sizes.get(name, effective[name]), "effective": effective[name]} for name in results
        },
        "config": config,
        "versions": package_versions(),
        "git_hash": git_hash(),
        "date": date or datetime.now(UTC).isoformat(timespec="seconds"),
        "samples_file": samples_file,
    }
    if rejected is not None:
        document["rejected"] = {"total": sum(rejected.values()), "by_reason": dict(rejected), "file": rejects_file}
    return document


def write_results(path: str | os.PathLike, results: dict) -> Path:
    """Write a results document atomically (:func:`fileio.write_json`); NaN and infinities become ``null``.

    A reader never sees a half-written ``results.json``, even when the run is killed while writing.
    """
    return fileio.write_json(path, results)


def read_results(path: str | os.PathLike) -> dict:
    """Load a ``results.json``, checking its shape: ``results`` maps configs to rows, and a row's figures are numbers.

    Raises:
        UsageError: the file is missing, is no valid JSON (cut short or edited), or is no results file; the
            message names the file (and the field).
    """
    from speechprune.errors import UsageError

    try:
        results = fileio.read_json(path)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file; give the results.json a run wrote") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a folder; give the results.json inside it") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UsageError(f"{path} is not valid JSON ({error}); it was cut short or edited") from None
    if not isinstance(results, dict) or not isinstance(results.get("results"), dict):
        raise UsageError(f"{path} is not a results file (no 'results' object)")
    for config, rows in results["results"].items():
        if not isinstance(rows, dict) or not all(isinstance(row, dict) for row in rows.values()):
            raise UsageError(f"{path}: results.{config} must map result keys to objects")
        for key, row in rows.items():
            for field in ("accuracy", "accuracy_stderr", "majority_baseline", "n", *COST_FIELDS.values()):
                value = row.get(field)
                if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                    raise UsageError(f"{path}: results.{config}[{key!r}].{field} is {value!r}, not a number")
    return results


def samples_path(results_path: str | os.PathLike, results: dict) -> Path:
    """Where the per-sample records of a ``results.json`` are (``samples_file`` is relative to it)."""
    return Path(results_path).parent / results.get("samples_file", "samples.jsonl")


__all__ = [
    "AUDIO_SOURCES",
    "METHOD_ORDER",
    "aggregate",
    "build_results",
    "key_order",
    "key_recall_summary",
    "make_config",
    "parse_result_key",
    "read_results",
    "result_key",
    "samples_path",
    "write_results",
]
