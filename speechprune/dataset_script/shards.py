"""SPIRAL rows (SPEC section 4) and their parquet shards.

A row is built from a validated record and its recording; shards are written with ``datasets``
(``Dataset.to_parquet``: the ``Audio`` feature stored with its bytes, the features in the schema
metadata) to a temporary file first and then moved into place with ``os.replace``, so a shard under its
final name is always complete.

Example:
    >>> FEATURES["audio"]
    Audio(sampling_rate=24000, decode=True, num_channels=None, stream_index=None)
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import datasets
import pyarrow.parquet as pq
from datasets import Audio, Features, List, Value

from speechprune.evaluation.fileio import atomic_path

from .records import SpiralRecord

FEATURES = Features(
    {
        "id": Value("string"),
        "audio": Audio(sampling_rate=24000),
        "category": Value("string"),
        "main_topic": Value("string"),
        "subtopic": Value("string"),
        "question": Value("string"),
        "choices": List(Value("string")),
        "answer": Value("string"),
        "key_sentence": Value("string"),
        "key_start": Value("float64"),
        "key_end": Value("float64"),
        "transcript": List({"speaker": Value("string"), "text": Value("string")}),
        "duration": Value("float64"),
        "audio_source": Value("string"),
    }
)
ROWS_PER_ROW_GROUP = 16


def make_row(record: SpiralRecord, flac: bytes, meta: dict) -> dict:
    """The SPIRAL row of ``record``.

    Args:
        record: the validated source record.
        flac: the recording as FLAC bytes (24 kHz mono).
        meta: ``{"key_start", "key_end", "duration", "audio_source"}`` of the recording.
    """
    return {
        "id": record.id,
        "audio": {"bytes": flac, "path": f"{record.id}.flac"},
        "category": record.category,
        "main_topic": record.main_topic,
        "subtopic": record.subtopic,
        "question": record.question,
        "choices": list(record.choices),
        "answer": record.answer,
        "key_sentence": record.key_sentence,
        "key_start": meta["key_start"],
        "key_end": meta["key_end"],
        "transcript": [{"speaker": speaker, "text": text} for speaker, text in record.turns],
        "duration": meta["duration"],
        "audio_source": meta["audio_source"],
    }


def shard_name(index: int, count: int) -> str:
    """``test-00003-of-00016.parquet``: the Hub's naming, matched by the card's ``test-*.parquet``."""
    return f"test-{index:05d}-of-{count:05d}.parquet"


def shard_ranges(num_rows: int, rows_per_shard: int) -> list[range]:
    """Row ranges of the shards: consecutive, ``rows_per_shard`` each, the last one shorter.

    >>> shard_ranges(5, 2)
    [range(0, 2), range(2, 4), range(4, 5)]
    """
    if rows_per_shard < 1:
        raise ValueError(f"rows_per_shard must be >= 1, got {rows_per_shard}")
    return [range(start, min(start + rows_per_shard, num_rows)) for start in range(0, num_rows, rows_per_shard)]


@contextlib.contextmanager
def _quiet_datasets():
    was_disabled = datasets.utils.are_progress_bars_disabled()
    datasets.utils.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.utils.enable_progress_bars()


def write_shard(rows: list[dict], path: Path, tmp_dir: Path) -> None:
    """Write ``rows`` as one parquet shard at ``path``, atomically (temporary file in ``tmp_dir``, then rename).

    ``tmp_dir`` must be on the same file system as ``path``.
    """
    columns = {name: [row[name] for row in rows] for name in FEATURES}
    with _quiet_datasets(), atomic_path(path, tmp_dir) as tmp:
        table = datasets.Dataset.from_dict(columns, features=FEATURES)
        table.to_parquet(str(tmp), batch_size=ROWS_PER_ROW_GROUP)


def read_rows(path: Path, keep_ids: set[str] | None = None) -> list[dict]:
    """The rows of a shard written by :func:`write_shard` (audio left encoded), optionally only ``keep_ids``."""
    filters = None if keep_ids is None else [("id", "in", sorted(keep_ids))]
    return pq.read_table(path, filters=filters).to_pylist()


def read_column(paths: list[Path], name: str) -> list:
    """One column of several shards, in order, without reading the audio."""
    values: list = []
    for path in paths:
        values.extend(pq.read_table(path, columns=[name]).column(name).to_pylist())
    return values
