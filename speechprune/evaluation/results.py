"""Per-sample records in, lm-evaluation-harness-shaped ``results.json`` out.

A run keeps one JSON line per answered prompt in ``samples.jsonl`` (:func:`append_records` and
:func:`read_records` here; ``speechprune eval`` appends through :mod:`speechprune.evaluation.checkpoint`) and, at
the end, writes a ``results.json`` beside it (:func:`build_results` + :func:`write_results`). Everything in
``results.json`` can be recomputed from the per-sample file with :func:`aggregate`; ``speechprune submit``
does exactly that before it publishes a score.

A record is a dict with these fields (extra fields are kept in the file and ignored here):

==========================  =====================================================================
``id``                      sample id (``lecture_3``)
``config``                  ``spiral`` or ``spiral_h``
``method``, ``rate``        pruning method and rate; ``rate`` is ``None`` for ``full`` / ``original``
``parsed``, ``gold``        the answer letter (``None`` = invalid) and the correct letter
``correct``                 ``parsed == gold`` (checked)
``rotation``                circular evaluation only: 0-3, how far the choices were rotated
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

import hashlib
import json
import logging
import math
import os
import platform
import re
import subprocess
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from speechprune.evaluate_metric.spiral_accuracy.spiral_accuracy import (
    LETTERS,
    accuracy_stderr,
    majority_letter,
    per_category_accuracy,
)

logger = logging.getLogger(__name__)

AUDIO_SOURCES = ("espeak-ng", "styletts2", "authors")
SCORINGS = ("loglik", "generate")
# Table order of methods (docs/CONTRACTS.md METHODS); unknown methods sort after these, by name.
METHOD_ORDER = ("full", "original", "speechprune", "phase1", "phase2", "random", "crop")
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
# Names skipped at any depth by content_hash: the card and eval results change when results are published,
# and the git/cache folders are not content.
HASH_EXCLUDE = frozenset({".git", ".gitattributes", ".eval_results", ".cache", "__pycache__", "README.md"})
PACKAGES = ("speechprune", "torch", "transformers", "datasets", "evaluate", "accelerate", "huggingface_hub")
_PINNED = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def result_key(method: str, rate: float | None) -> str:
    """The key of a (method, rate) result: ``"speechprune@0.2"``; just the method when ``rate`` is None.

    >>> result_key("speechprune", 0.2), result_key("original", None)
    ('speechprune@0.2', 'original')
    """
    return method if rate is None else f"{method}@{float(rate):g}"


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
    if record["gold"] not in LETTERS:
        raise ValueError(f"records[{position}] (id {record['id']!r}) has gold {record['gold']!r}, not a letter A-D")
    if record["parsed"] is not None and record["parsed"] not in LETTERS:
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
            if rotations != [0, 1, 2, 3]:
                raise ValueError(f"circular: id {question!r} has rotations {rotations}, expected [0, 1, 2, 3]")

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
        circular: score a question as correct only if all four rotations are; then every question needs
            exactly the rotations 0, 1, 2, 3. ``None`` infers it from the records carrying a ``rotation``.

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


def package_versions(packages: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    """Installed versions of the packages a result depends on (``None`` when one is absent), and Python's."""
    versions = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_hash(folder: str | os.PathLike | None = None) -> str | None:
    """The commit checked out where ``folder`` (default: this package) lives, or ``None`` outside git."""
    where = Path(folder) if folder is not None else Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def is_pinned(revision: object) -> bool:
    """Whether ``revision`` names fixed content: a 40-hex git commit or a 64-hex :func:`content_hash`.

    >>> is_pinned("main"), is_pinned("0" * 40), is_pinned("f" * 64), is_pinned(None)
    (False, True, True, False)
    """
    return isinstance(revision, str) and _PINNED.fullmatch(revision) is not None


def content_hash(folder: str | os.PathLike, exclude: Iterable[str] = HASH_EXCLUDE) -> str:
    """A sha256 (64 hex digits) over a folder's files: the revision of a local model or dataset folder.

    Files are visited in sorted order of their relative POSIX path; each contributes its path, a NUL byte,
    the sha256 of its bytes and a newline. Any file or folder whose name is in ``exclude`` is skipped
    (by default the card ``README.md``, ``.eval_results``, ``.git``, ``.gitattributes``, ``.cache`` and
    ``__pycache__``), so publishing results into a model folder does not change its hash, and a Hub snapshot
    (symlinks are followed) hashes like the folder it was uploaded from.
    """
    root = Path(folder)
    digest = hashlib.sha256()
    for relative in payload_files(root, exclude):
        file_digest = hashlib.sha256()
        with open(root / relative, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                file_digest.update(chunk)
        digest.update(relative.encode() + b"\0" + file_digest.digest() + b"\n")
    return digest.hexdigest()


def payload_files(folder: str | os.PathLike, exclude: Iterable[str] = HASH_EXCLUDE) -> list[str]:
    """Relative POSIX paths of the files :func:`content_hash` covers, sorted."""
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"folder {str(root)!r} is not a directory")
    skip = frozenset(exclude)
    files = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = [name for name in dirnames if name not in skip]
        files.extend(Path(dirpath, name).relative_to(root).as_posix() for name in filenames if name not in skip)
    return sorted(files)


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
        model_revision: the Hub commit sha, or :func:`content_hash` of a local folder.
        dataset_id: Hub id (``owner/name``) or local path of the SPIRAL dataset.
        dataset_revision: the Hub commit sha, or :func:`content_hash` of the built dataset folder.
        audio_source: ``espeak-ng``, ``styletts2`` or ``authors``.
        scoring: ``loglik`` or ``generate``.
        circular: whether each question was asked under its four rotations.
        pruning: settings shared by the run (``methods``, ``rates``, ``phase1_tokens``, ``tokens_per_frame``,
            ``temperature``, ``query``, ...).
        seeds: e.g. ``{"pruning_seed": 0}``.
        num_processes: accelerate processes that ran the evaluation.
        model_content_hash: :func:`content_hash` of the model files, when ``model_revision`` is a commit sha.
        dataset_fingerprint: ``datasets``' fingerprint of the evaluated split.
        **extra: any further settings (``dtype``, ``batch_size``, ``max_new_tokens``, ...).

    >>> make_config(model_id="m", model_revision="r", dataset_id="d", dataset_revision="s",
    ...             audio_source="espeak-ng")["model"]
    {'id': 'm', 'revision': 'r', 'content_hash': None}
    """
    if audio_source not in AUDIO_SOURCES:
        raise ValueError(f"audio_source must be one of {AUDIO_SOURCES}, got {audio_source!r}")
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
) -> dict:
    """The whole ``results.json`` document (lm-evaluation-harness shape) for a run.

    Args:
        records: the run's per-sample records (see :func:`aggregate`).
        config: :func:`make_config`'s block; its ``circular`` decides the scoring, and records naming an
            audio source must name ``config["audio_source"]``.
        samples_file: where the records are, relative to ``results.json``.
        dataset_sizes: ``{config: rows in the dataset}`` for ``n-samples.original`` (default: questions seen).
        date: ISO-8601 time; default now (UTC).

    Returns:
        ``{"results", "configs", "n-samples", "config", "versions", "git_hash", "date", "samples_file"}``.
    """
    records = list(records)
    sources = {record.get("audio_source") for record in records} - {None}
    if sources - {config.get("audio_source")}:
        raise ValueError(
            f"records name audio sources {sorted(sources)} but config says {config.get('audio_source')!r}"
        )
    results = aggregate(records, circular=bool(config.get("circular", False)))
    dataset = config.get("dataset", {})
    effective = {name: len({r["id"] for r in records if r["config"] == name}) for name in results}
    sizes = dataset_sizes or {}
    return {
        "results": results,
        "configs": {
            name: {
                "task": name,
                "dataset_path": dataset.get("id"),
                "dataset_name": name,
                "test_split": "test",
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


def _finite(value):
    """JSON has no NaN or infinity: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically: a temporary file in the same folder, fsync, then ``os.replace``.

    A reader never sees a half-written file, even when the writer is killed; a failed write leaves the old
    file as it was and no temporary behind. The text is written as given (no newline translation).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_results(path: str | os.PathLike, results: dict) -> Path:
    """Write a results document atomically (:func:`write_text_atomic`); NaN and infinities become ``null``.

    A reader never sees a half-written ``results.json``, even when the run is killed while writing.
    """
    return write_text_atomic(path, json.dumps(_finite(results), indent=2, allow_nan=False) + "\n")


def read_results(path: str | os.PathLike) -> dict:
    """Load a ``results.json``."""
    with open(path, encoding="utf-8") as handle:
        results = json.load(handle)
    if not isinstance(results, dict) or "results" not in results:
        raise ValueError(f"{path} is not a results file (no 'results' key)")
    return results


def samples_path(results_path: str | os.PathLike, results: dict) -> Path:
    """Where the per-sample records of a ``results.json`` are (``samples_file`` is relative to it)."""
    return Path(results_path).parent / results.get("samples_file", "samples.jsonl")


def read_records(path: str | os.PathLike) -> list[dict]:
    """Read a ``samples.jsonl``, tolerating a run killed while writing.

    A last line without its newline that is not valid JSON is a record cut short: it is dropped with a
    warning. Blank lines are skipped. Any other line that is not a JSON object raises ``ValueError`` naming
    its line number.
    """
    data = Path(path).read_bytes()
    lines = data.split(b"\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        cut_short = number == len(lines)  # the text after the last newline
        try:
            record = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            if cut_short:
                logger.warning("%s: dropping the truncated last line %d (%d bytes)", path, number, len(line))
                continue
            raise ValueError(f"{path}, line {number}: not valid JSON ({error})") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path}, line {number}: a record must be a JSON object")
        records.append(record)
    return records


def repair_tail(path: str | os.PathLike) -> bool:
    """Cut a JSON Lines file after its last complete line (one that ends with a newline).

    A writer that puts each record in one write call, newline last, can only leave the last line cut short
    when it is killed (``json.dumps`` never emits a raw newline); :func:`read_records` raises on a bad line
    anywhere else, which is corruption, not an interruption.

    Returns:
        ``True`` when something was cut.
    """
    path = Path(path)
    if not path.exists():
        return False
    data = path.read_bytes()
    keep = data.rfind(b"\n") + 1  # 0 when there is no complete line at all
    if keep == len(data):
        return False
    with path.open("r+b") as f:
        f.truncate(keep)
    return True


def append_records(path: str | os.PathLike, records: Iterable[dict]) -> None:
    """Append records as JSON lines; first cuts a partial last line left by a killed run (:func:`repair_tail`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    repair_tail(path)
    with open(path, "a", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(_finite(record), allow_nan=False) + "\n")
        handle.flush()


__all__ = [
    "AUDIO_SOURCES",
    "aggregate",
    "append_records",
    "build_results",
    "content_hash",
    "git_hash",
    "is_pinned",
    "key_order",
    "key_recall_summary",
    "make_config",
    "package_versions",
    "parse_result_key",
    "payload_files",
    "read_records",
    "read_results",
    "repair_tail",
    "result_key",
    "samples_path",
    "write_results",
    "write_text_atomic",
]
