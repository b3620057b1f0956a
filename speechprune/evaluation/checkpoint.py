"""Resumable per-sample records: a run killed at any point and started again loses nothing.

An output folder holds:

- ``run_config.json``: the arguments that decide the results. A restart with different
  arguments is refused (:func:`check_run_config`), so one folder never mixes two runs.
- ``records/rank-00000.jsonl`` ...: one append-only JSON Lines file per process, one line per
  finished work unit, flushed as soon as it is made. A kill can only cut the last line of a
  file short; :func:`~speechprune.evaluation.fileio.repair_tail` drops such a line before anyone reads or
  appends.

A record's identity is :func:`record_key`: ``(id, method, rate, rotation)``. Resuming reads
every rank file (the number of processes may differ between the two runs) and skips the
units whose key is present.

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> from speechprune.evaluation.fileio import JsonlAppender, repair_tail
    >>> with JsonlAppender(folder / "records" / "rank-00000.jsonl") as log:
    ...     log.append({"id": "a", "method": "full", "rate": None, "rotation": 0, "correct": True})
    >>> _ = (folder / "records" / "rank-00000.jsonl").open("a").write('{"id": "b", "meth')  # a kill mid-line
    >>> repair_tail(folder / "records" / "rank-00000.jsonl")
    True
    >>> [record_key(r) for r in load_records(folder)]
    [('a', 'full', None, 0)]
"""

from __future__ import annotations

import json
from pathlib import Path

from speechprune.evaluation import fileio

RUN_CONFIG = "run_config.json"
RECORDS_DIR = "records"


def record_key(record: dict) -> tuple:
    """The identity of one work unit: ``(id, method, rate, rotation)`` (rate ``None`` for full/original)."""
    return (record["id"], record["method"], record["rate"], record["rotation"])


def rank_file(output: Path, rank: int) -> Path:
    """The JSON Lines file that process ``rank`` appends to."""
    return Path(output) / RECORDS_DIR / f"rank-{rank:05d}.jsonl"


def check_run_config(output: Path, config: dict) -> bool:
    """Compare ``config`` with the one stored in ``output``.

    Returns:
        ``True`` when a stored config exists and equals ``config`` (a resume), ``False`` when
        there is none yet (a fresh run; the caller writes it with :func:`write_run_config`).

    Raises:
        ValueError: the stored config differs; the message names every differing field.
    """
    path = Path(output) / RUN_CONFIG
    if not path.exists():
        return False
    stored = fileio.read_json(path)
    # JSON turns tuples into lists; compare both through JSON.
    wanted = json.loads(json.dumps(config))
    diff = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
    if diff:
        details = "; ".join(f"{k}: stored {stored.get(k)!r}, now {wanted.get(k)!r}" for k in diff)
        raise ValueError(
            f"--output {output} holds a run with different arguments ({details}). "
            "Use a fresh output folder, or repeat the stored arguments to resume that run."
        )
    return True


def write_run_config(output: Path, config: dict) -> None:
    """Store ``config`` as ``output/run_config.json`` (atomically, :func:`fileio.write_json`)."""
    fileio.write_json(Path(output) / RUN_CONFIG, config, sort_keys=True)


def load_records(output: Path) -> list[dict]:
    """Every record in ``output/records/rank-*.jsonl``, file by file in name order.

    Run :func:`fileio.repair_tail` first after a kill: a bad line other than a cut-short last one raises
    ``ValueError`` (:func:`fileio.read_jsonl`).
    """
    return [
        record
        for path in sorted((Path(output) / RECORDS_DIR).glob("rank-*.jsonl"))
        for record in fileio.read_jsonl(path)
    ]


__all__ = [
    "RUN_CONFIG",
    "RECORDS_DIR",
    "record_key",
    "rank_file",
    "check_run_config",
    "write_run_config",
    "load_records",
]
