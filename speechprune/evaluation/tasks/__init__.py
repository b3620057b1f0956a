"""Tasks as data: any audio multiple-choice dataset, described by a small YAML file (SPEC section 9).

A task names a dataset (a Hub id or a local folder), its config and split, the dataset's column for each
field, and an optional duration filter::

    task: listening_mcq          # the name results are filed under
    dataset: owner/name          # default dataset; --dataset overrides it
    config: null                 # dataset config name
    split: test
    columns:
      audio: context
      question: instruction
      choices: choices           # a list, a JSON list in a string, or one string with (A)/A./A)/A: markers;
                                 # the question's own column when the options are embedded in the question
      answer: answer             # a letter, "(B) text", a 0-based index, or the text of one choice
      id: null                   # default: the row index
      category: null             # per-category accuracy when given
    filter:
      min_seconds: 60            # and/or max_seconds

``columns`` may also name ``audio_source`` (SPIRAL's speech engine, kept in every record) and ``duration``
(seconds; filters without decoding). Presets ship in this folder (:func:`preset_names`); ``--task NAME``
loads ``NAME.yaml`` from here, and ``--task FILE.yaml`` any file. :func:`load_task` checks every key.

Example:
    >>> task = load_task("dream_tts_long")
    >>> task.name, task.dataset, task.columns["question"], task.min_seconds
    ('dream_tts_long', 'AudioLLMs/dream_tts_test', 'instruction', 60.0)
    >>> "spiral" in preset_names()
    True
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from speechprune.errors import UsageError

PRESETS_DIR = Path(__file__).resolve().parent
FIELDS = ("audio", "question", "choices", "answer", "id", "category", "audio_source", "duration")
REQUIRED_FIELDS = ("audio", "question", "choices", "answer")
KEYS = ("task", "dataset", "config", "split", "columns", "filter", "doc")
FILTER_KEYS = ("min_seconds", "max_seconds")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class Task:
    """One task: what to load and how its columns map onto SPEC section 9's fields.

    Attributes:
        name: the name results are filed under (the records' ``config`` field).
        dataset: default dataset (Hub id or folder), or ``None`` when the user must give one.
        config, split: the dataset config (``None``: the default) and split.
        columns: field -> dataset column (``None`` when the dataset has no such column).
        min_seconds, max_seconds: duration filter (``None``: no bound).
        source: the YAML file the task came from (named in errors about its columns).
        doc: the preset's doc card (free text).
    """

    name: str
    dataset: str | None
    config: str | None
    split: str
    columns: dict = field(hash=False)
    min_seconds: float | None = None
    max_seconds: float | None = None
    source: str = ""
    doc: str = ""

    @property
    def embedded_choices(self) -> bool:
        """Whether the options are embedded in the question text (one column for both)."""
        return self.columns["choices"] == self.columns["question"]

    def describe(self) -> dict:
        """What decides the task's rows, for ``run_config.json`` and ``results.json``."""
        return {
            "task": self.name,
            "config": self.config,
            "split": self.split,
            "columns": dict(self.columns),
            "filter": {"min_seconds": self.min_seconds, "max_seconds": self.max_seconds},
        }


def preset_names() -> list[str]:
    """The tasks that ship with the package, by name."""
    return sorted(path.stem for path in PRESETS_DIR.glob("*.yaml"))


def preset_path(name: str) -> Path:
    """The YAML file of a preset."""
    return PRESETS_DIR / f"{name}.yaml"


def load_task(spec: str | Path) -> Task:
    """A preset by name, or a task YAML file by path.

    Raises:
        UsageError: an unknown name, an unreadable file, or a file whose keys or values are wrong (the
            message names the file and the key).
    """
    path = Path(spec)
    # a folder beside the run (often named like its preset: `--dataset spiral --task spiral`) is not a task file
    if not (path.suffix in (".yaml", ".yml") or path.is_file()):
        if str(spec) not in preset_names():
            raise UsageError(
                f"--task: no preset called {str(spec)!r} and no such file; presets: {', '.join(preset_names())} "
                "(or give a task YAML file)"
            )
        path = preset_path(str(spec))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise UsageError(f"--task: cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise UsageError(f"--task: {path} is not valid YAML ({str(error).splitlines()[0]})") from None
    return parse_task(data, path)


def parse_task(data, source: str | Path = "<task>") -> Task:
    """Check a task's mapping (as read from YAML) and build the :class:`Task`."""

    def bad(what: str) -> UsageError:
        return UsageError(f"--task: {source}: {what}; fix the task file")

    if not isinstance(data, dict):
        raise bad("expected a mapping with keys task, dataset, config, split, columns, filter")
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise bad(f"unknown keys {unknown} (allowed: {', '.join(KEYS)})")
    name = data.get("task")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise bad(f"'task' must be a name of letters, digits, '_', '.' or '-', got {name!r}")
    for key in ("dataset", "config"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise bad(f"'{key}' must be a string or null, got {data[key]!r}")
    split = data.get("split", "test")
    if not isinstance(split, str) or not split:
        raise bad(f"'split' must be a split name, got {split!r}")
    columns = data.get("columns")
    if not isinstance(columns, dict):
        raise bad("'columns' must map fields (audio, question, choices, answer, id, category) to column names")
    unknown = sorted(set(columns) - set(FIELDS))
    if unknown:
        raise bad(f"unknown fields in 'columns': {unknown} (allowed: {', '.join(FIELDS)})")
    mapped = {name: columns.get(name) for name in FIELDS}
    for name_, column in mapped.items():
        if column is not None and not isinstance(column, str):
            raise bad(f"columns.{name_} must be a column name or null, got {column!r}")
    missing = [name_ for name_ in REQUIRED_FIELDS if not mapped[name_]]
    if missing:
        raise bad(f"columns.{missing[0]} is required (the dataset column that holds the {missing[0]})")
    limits = data.get("filter") or {}
    if not isinstance(limits, dict) or set(limits) - set(FILTER_KEYS):
        raise bad(f"'filter' takes only {', '.join(FILTER_KEYS)}, got {limits!r}")
    bounds = {}
    for key in FILTER_KEYS:
        value = limits.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value < 0):
            raise bad(f"filter.{key} must be a number of seconds >= 0, got {value!r}")
        bounds[key] = None if value is None else float(value)
    if None not in bounds.values() and bounds["min_seconds"] > bounds["max_seconds"]:
        raise bad(f"filter.min_seconds {bounds['min_seconds']} is above filter.max_seconds {bounds['max_seconds']}")
    return Task(
        name=name,
        dataset=data.get("dataset"),
        config=data.get("config"),
        split=split,
        columns=mapped,
        min_seconds=bounds["min_seconds"],
        max_seconds=bounds["max_seconds"],
        source=str(source),
        doc=str(data.get("doc") or "").strip(),
    )


__all__ = ["Task", "load_task", "parse_task", "preset_names", "preset_path", "FIELDS", "REQUIRED_FIELDS"]
