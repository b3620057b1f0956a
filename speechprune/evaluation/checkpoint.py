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

Nothing mixed: every line on disk carries ``run``, :func:`run_hash` of the run config that made
it (:class:`RecordLog` writes it), and a resume refuses any record whose hash is not its own (a
folder whose ``run_config.json`` was lost or replaced cannot pass off another run's records, for
example those of another ``--seed``). The field is dropped when records are read back, so outputs
never show it.

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> from speechprune.evaluation.fileio import repair_tail
    >>> stamp = run_hash({"seed": 0})
    >>> with RecordLog(folder / "records" / "rank-00000.jsonl", stamp) as log:
    ...     log.append({"id": "a", "method": "full", "rate": None, "rotation": 0, "correct": True})
    >>> _ = (folder / "records" / "rank-00000.jsonl").open("a").write('{"id": "b", "meth')  # a kill mid-line
    >>> repair_tail(folder / "records" / "rank-00000.jsonl")
    True
    >>> [record_key(r) for r in load_records(folder, stamp)]
    [('a', 'full', None, 0)]
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from speechprune.errors import UsageError
from speechprune.evaluation import fileio

RUN_CONFIG = "run_config.json"
RECORDS_DIR = "records"
RUN_FIELD = "run"  # the run_hash a record carries on disk


def run_hash(config: dict) -> str:
    """A short sha256 of a run config (as JSON, keys sorted): the stamp every record of that run carries."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


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
        UsageError: the stored config differs (the message names every differing field), or it is no
            valid JSON (cut short or edited; the message names the file).
    """
    path = Path(output) / RUN_CONFIG
    if not path.exists():
        return False
    try:
        stored = fileio.read_json(path)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UsageError(
            f"--output: {path} is not valid JSON ({error}); it was cut short or edited, so the run there cannot "
            "be resumed safely: use a fresh --output folder"
        ) from None
    if not isinstance(stored, dict):
        raise UsageError(f"--output: {path} holds no run config (a JSON object); use a fresh --output folder")
    # JSON turns tuples into lists; compare both through JSON.
    wanted = json.loads(json.dumps(config))
    diff = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
    if diff:
        details = "; ".join(f"{k}: stored {stored.get(k)!r}, now {wanted.get(k)!r}" for k in diff)
        raise UsageError(
            f"--output: {output} holds a run with different arguments ({details}); "
            "use a fresh output folder, or repeat the stored arguments to resume that run"
        )
    return True


def write_run_config(output: Path, config: dict) -> None:
    """Store ``config`` as ``output/run_config.json`` (atomically, :func:`fileio.write_json`)."""
    fileio.write_json(Path(output) / RUN_CONFIG, config, sort_keys=True)


def load_records(output: Path, stamp: str) -> list[dict]:
    """Every record in ``output/records/rank-*.jsonl``, file by file in name order, without its ``run`` stamp.

    Run :func:`fileio.repair_tail` first after a kill: a bad line other than a cut-short last one raises
    ``ValueError`` (:func:`fileio.read_jsonl`).

    Raises:
        UsageError: a record was made by another run (its stamp is not ``stamp``, or it has none): the
            settings that made it cannot be shown to be this run's.
    """
    records, foreign = [], {}
    for path in sorted((Path(output) / RECORDS_DIR).glob("rank-*.jsonl")):
        for record in fileio.read_jsonl(path):
            if record.pop(RUN_FIELD, None) != stamp:
                foreign[path.name] = foreign.get(path.name, 0) + 1
            records.append(record)
    if foreign:
        where = ", ".join(f"{count} in {name}" for name, count in foreign.items())
        raise UsageError(
            f"--output: {output} holds records made with other settings ({where}: their run stamp is not this "
            "run's); they cannot be mixed in: use a fresh --output folder, or the arguments of the run that made them"
        )
    return records


class RecordLog(fileio.JsonlAppender):
    """A process's rank file: :class:`fileio.JsonlAppender` whose every line carries the run's stamp."""

    def __init__(self, path: Path, stamp: str):
        super().__init__(path)
        self.stamp = stamp  # run_hash of the run config

    def append(self, record: dict) -> None:
        super().append({**record, RUN_FIELD: self.stamp})


__all__ = [
    "RUN_CONFIG",
    "RECORDS_DIR",
    "RUN_FIELD",
    "run_hash",
    "RecordLog",
    "record_key",
    "rank_file",
    "check_run_config",
    "write_run_config",
    "load_records",
]
