"""Load a task's rows: the dataset split, its columns mapped onto SPEC section 9's fields, bad rows set aside.

:func:`load_task_data` returns a :class:`TaskData`: the accepted rows in dataset order (their audio decoding
to 16 kHz mono) and the rejected ones, each with its reason (:data:`rows.REASONS`). Every process of a run
computes the same split, so they agree on the rows without talking to each other.

Example (a two-row folder in AudioBench's layout, one row answered with no choice's text):
    >>> import io, tempfile, wave, pathlib
    >>> import datasets
    >>> def tone():
    ...     buffer = io.BytesIO()
    ...     with wave.open(buffer, "wb") as w:
    ...         w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000); w.writeframes(b"\\0\\1" * 8000)
    ...     return {"bytes": buffer.getvalue(), "path": None}
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = datasets.Dataset.from_dict(
    ...     {"context": [tone(), tone()], "instruction": ["Who?", "Where?"],
    ...      "choices": [["Ann", "Bob", "Cy"], ["here", "there"]], "answer": ["(B) Bob", "nowhere"]},
    ...     features=datasets.Features({"context": datasets.Audio(), "instruction": datasets.Value("string"),
    ...                                 "choices": datasets.List(datasets.Value("string")),
    ...                                 "answer": datasets.Value("string")}),
    ... ).to_parquet(str(folder / "test.parquet"))
    >>> from speechprune.evaluation.tasks import load_task
    >>> data = load_task_data(load_task("dream_tts"), str(folder))
    >>> data.ids, data.rows[0]["answer"], data.reject_counts()
    (['0'], 'B', {'answer_matches_none': 1})
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from speechprune.errors import UsageError
from speechprune.evaluation.tasks import Task
from speechprune.evaluation.tasks.rows import (
    REASONS,
    RowRejected,
    gold_letter,
    one_line,
    split_choices,
    split_question,
)

SAMPLING_RATE = 16000


@dataclass
class TaskData:
    """A task's accepted rows and its rejected ones.

    Attributes:
        task: the task.
        dataset_id: the dataset that was loaded (Hub id or folder).
        accepted: the ``datasets.Dataset`` of accepted rows, in dataset order, audio decoding to 16 kHz mono
            (its fingerprint identifies the evaluated rows).
        rows: per accepted row: ``id``, ``question``, ``choices`` (K option texts), ``answer`` (gold letter),
            ``category`` and ``audio_source`` (``None`` when the task maps no such column).
        rejects: per rejected row: ``index`` (its row in the split), ``id``, ``reason``, ``detail``.
    """

    task: Task
    dataset_id: str
    accepted: object
    rows: list[dict]
    rejects: list[dict]

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def ids(self) -> list[str]:
        return [row["id"] for row in self.rows]

    def example(self, index: int) -> dict:
        """Accepted row ``index``: the split's own columns (SPIRAL's key times, ...), the task's fields over them,
        and ``audio`` (a decoder giving 16 kHz mono)."""
        raw = self.accepted[index]
        return {**raw, **self.rows[index], "audio": raw[self.task.columns["audio"]]}

    def reject_counts(self) -> dict[str, int]:
        """Rejected rows per reason, in :data:`REASONS` order (reasons with none left out)."""
        counts = Counter(reject["reason"] for reject in self.rejects)
        return {reason: counts[reason] for reason in REASONS if counts[reason]}

    def identity(self) -> dict:
        """What results.json records about the evaluated rows: fingerprint, size, audio sources."""
        sources = sorted({row["audio_source"] for row in self.rows} - {None})
        return {"fingerprint": self.accepted._fingerprint, "num_rows": len(self.rows), "audio_source": sources}


def _load_split(task: Task, dataset: str, revision: str | None):
    from datasets import load_dataset

    from speechprune.evaluation.loading import local_cache_dir
    from speechprune.sources import hub_failure, local_or_hub

    local = local_or_hub(dataset, "--dataset", "dataset folder")
    if local is not None and not local.is_dir():
        raise UsageError(
            f"--dataset: {dataset} is a file; give a dataset folder (for SPIRAL: speechprune build-spiral)"
        )
    if local is not None:
        kwargs = {"cache_dir": str(local_cache_dir(dataset))}
    else:
        kwargs = {} if revision is None else {"revision": revision}
    names = () if task.config is None else (task.config,)
    try:
        return load_dataset(dataset, *names, split=task.split, **kwargs)
    except (OSError, ConnectionError) as error:  # offline, no such repo, no access
        if local is not None:
            raise
        raise hub_failure("--dataset", dataset, error) from None


def _check_columns(task: Task, dataset: str, names: list[str]) -> None:
    for field, column in task.columns.items():
        if column is not None and column not in names:
            raise UsageError(
                f"--task: {task.name}: columns.{field} names column {column!r}, which {dataset} does not have "
                f"(its columns: {', '.join(names)}); fix columns.{field} in {task.source}"
            )


def _row_id(task: Task, values: dict, index: int) -> str:
    """The row's id: its id column, or its index in the split when the task maps none."""
    if task.columns["id"] is None:
        return str(index)
    sample_id = values[task.columns["id"]]
    if sample_id is None or not str(sample_id).strip():
        raise RowRejected("missing_value", f"column {task.columns['id']!r} is empty")
    return str(sample_id)


def _text_fields(task: Task, values: dict, sample_id: str) -> dict:
    """The normalized fields of one row from its text columns; raises :class:`RowRejected`."""
    columns = task.columns

    def value(field):
        return values[columns[field]] if columns[field] is not None else None

    question = value("question")
    if question is None or not str(question).strip():
        raise RowRejected("missing_value", f"column {columns['question']!r} is empty")
    if task.embedded_choices:
        question, choices = split_question(question)
    else:
        cell = value("choices")
        if cell is None:
            raise RowRejected("missing_value", f"column {columns['choices']!r} is empty")
        question, choices = one_line(question), split_choices(cell)
    answer = gold_letter(value("answer"), choices)
    category = value("category")
    source = value("audio_source")
    return {
        "id": sample_id,
        "question": question,
        "choices": choices,
        "answer": answer,
        "category": None if category is None else str(category),
        "audio_source": None if source is None else str(source),
    }


def _duration(decoder) -> float:
    seconds = decoder.metadata.duration_seconds_from_header
    if seconds is None:
        samples = decoder.get_all_samples()
        seconds = samples.data.shape[-1] / samples.sample_rate
    return float(seconds)


def _check_audio(task: Task, audio_rows, index: int, duration) -> None:
    """Open the row's audio (a decoder that cannot is ``unreadable_audio``) and apply the duration filter."""
    if task.min_seconds is None and task.max_seconds is None and duration is not None:
        duration = None  # nothing to filter: only check that the audio opens
    try:
        decoder = audio_rows[index][task.columns["audio"]]
        if decoder is None:
            raise RowRejected("missing_value", f"column {task.columns['audio']!r} is empty")
        seconds = duration if duration is not None else _duration(decoder)
    except RowRejected:
        raise
    except Exception as error:  # any decoder failure: the file is damaged or not audio
        raise RowRejected("unreadable_audio", f"{type(error).__name__}: {str(error)[:120]}") from None
    if task.min_seconds is not None and seconds < task.min_seconds:
        raise RowRejected("shorter_than_min_seconds", f"{seconds:.2f} s < {task.min_seconds:g} s")
    if task.max_seconds is not None and seconds > task.max_seconds:
        raise RowRejected("longer_than_max_seconds", f"{seconds:.2f} s > {task.max_seconds:g} s")


def load_task_data(task: Task, dataset: str | None = None, limit: int | None = None, revision: str | None = None):
    """Load and check a task's rows.

    Args:
        task: the task (:func:`speechprune.evaluation.tasks.load_task`).
        dataset: a Hub id or local folder; default ``task.dataset``.
        limit: keep only the first ``limit`` accepted rows (rows are read in order until that many pass).
        revision: a Hub revision to pin (ignored for folders).

    Returns:
        A :class:`TaskData`.

    Raises:
        UsageError: no dataset, a bad limit, or a mapped column the dataset lacks (naming the column and the
            task file to fix).
    """
    from datasets import Audio

    dataset = dataset if dataset is not None else task.dataset
    if dataset is None:
        raise UsageError(f"--dataset: the task {task.name!r} has no default dataset; give --dataset DIR_OR_ID")
    if limit is not None and limit < 1:
        raise UsageError(f"--limit: expected a positive number of samples, got {limit}")
    split = _load_split(task, str(dataset), revision)
    _check_columns(task, str(dataset), split.column_names)
    audio_column = task.columns["audio"]
    text_columns = sorted({c for f, c in task.columns.items() if c is not None and f not in ("audio", "duration")})
    texts = split.select_columns(text_columns)
    audio_rows = split.select_columns([audio_column])
    durations = split[task.columns["duration"]] if task.columns["duration"] is not None else None
    rows, rejects, accepted, seen = [], [], [], set()
    for index in range(len(split)):
        if limit is not None and len(rows) == limit:
            break
        sample_id = None
        try:
            values = texts[index]
            sample_id = _row_id(task, values, index)
            row = _text_fields(task, values, sample_id)
            if sample_id in seen:
                raise RowRejected("duplicate_id", f"id {sample_id!r} appears earlier in the split")
            _check_audio(task, audio_rows, index, None if durations is None else durations[index])
        except RowRejected as rejected:
            rejects.append({"index": index, "id": sample_id, "reason": rejected.reason, "detail": rejected.detail})
            continue
        seen.add(sample_id)
        rows.append(row)
        accepted.append(index)
    # The same operations as before tasks existed (select only under a limit or when rows were left out, then
    # cast), so that a SPIRAL split keeps its fingerprint.
    if limit is not None or accepted != list(range(len(split))):
        contiguous = accepted == list(range(len(accepted)))
        split = split.select(range(len(accepted)) if contiguous else accepted)
    split = split.cast_column(audio_column, Audio(sampling_rate=SAMPLING_RATE, num_channels=1))
    return TaskData(task=task, dataset_id=str(dataset), accepted=split, rows=rows, rejects=rejects)


__all__ = ["TaskData", "load_task_data", "SAMPLING_RATE"]
