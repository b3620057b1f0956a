"""The one place where evaluation outputs and dataset builds touch the disk: atomic files, JSON, JSON Lines.

Three rules hold for everything written through here:

- **Atomic**: a file is written under a temporary name in its own folder and moved over the target with
  ``os.replace``, so a reader (or a resumed run) never sees half a file, even after a kill.
- **Your umask**: files are created with mode ``0o666`` filtered by the process umask, like ``open()``
  would (``tempfile.mkstemp`` would make them ``0600``, unreadable to a group on a shared cluster).
- **One JSON form**: NaN and infinities are written as ``null`` (JSON has neither, and other readers reject
  the ``NaN`` that Python emits by default); a record is one line, keys sorted, so two runs that make the
  same records write the same bytes.

JSON Lines files are append-friendly: every record is one ``write`` call ending in a newline, so a killed
writer can leave at most its last line cut short; :func:`repair_tail` cuts it and :func:`read_jsonl` drops
it with a warning. A bad line anywhere else is corruption and raises.

Example:
    >>> import math, tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = write_jsonl(folder / "a.jsonl", [{"b": 1, "a": math.nan}])
    >>> (folder / "a.jsonl").read_text()
    '{"a": null, "b": 1}\\n'
    >>> append_jsonl(folder / "a.jsonl", [{"a": 2}])
    >>> read_jsonl(folder / "a.jsonl")
    [{'a': None, 'b': 1}, {'a': 2}]
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)


def finite(value):
    """``value`` with every NaN and infinity (at any depth of dicts, lists and tuples) replaced by ``None``.

    >>> finite({"x": [1.0, float("inf")], "y": float("nan")})
    {'x': [1.0, None], 'y': None}
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value


def json_line(record: dict) -> str:
    """One JSON Lines line for ``record``: keys sorted, NaN as ``null``, newline last."""
    return json.dumps(finite(record), sort_keys=True, allow_nan=False) + "\n"


@contextmanager
def atomic_path(path: str | os.PathLike, tmp_dir: str | os.PathLike | None = None) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on any error it is removed.

    For writers that want a file name rather than bytes (``Dataset.to_parquet``). The temporary name
    starts with a dot, so data-file patterns such as ``test-*.parquet`` never match it. ``tmp_dir``
    (default: ``path``'s folder) must be on the same file system as ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tmp_dir) if tmp_dir is not None else path.parent
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike, data: bytes | str, tmp_dir: str | os.PathLike | None = None) -> Path:
    """Write ``data`` (text is UTF-8, written as given) to ``path`` atomically, fsync'ed, mode from the umask.

    A failed write leaves the old file as it was and no temporary behind.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    path = Path(path)
    with atomic_path(path, tmp_dir) as tmp:
        # O_EXCL on a fresh random name; 0o666 is filtered by the umask, as for open().
        descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(descriptor, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    return path


def write_json(path: str | os.PathLike, document, *, sort_keys: bool = False) -> Path:
    """Write a JSON document atomically, indented by 2, newline last; NaN and infinities become ``null``."""
    return atomic_write(path, json.dumps(finite(document), indent=2, sort_keys=sort_keys, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike):
    """Load a JSON document."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> Path:
    """Write ``records`` as a whole JSON Lines file, atomically (same lines as :func:`append_jsonl`)."""
    return atomic_write(path, "".join(json_line(record) for record in records))


def repair_tail(path: str | os.PathLike) -> bool:
    """Cut a JSON Lines file after its last complete line (one that ends with a newline).

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
    with path.open("r+b") as handle:
        handle.truncate(keep)
    return True


def append_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> None:
    """Append records as JSON lines; first cuts a partial last line left by a killed writer (:func:`repair_tail`)."""
    with JsonlAppender(path, repair=True) as log:
        for record in records:
            log.append(record)


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSON Lines file of objects, tolerating a writer killed mid-line.

    A last line without its newline that is not valid JSON is dropped with a warning. Blank lines are
    skipped. Any other line that is not a JSON object raises ``ValueError`` naming its line number.
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


class JsonlAppender:
    """Append-only JSON Lines writer; every record is flushed to the OS as soon as it is written.

    Flushing (not fsync) is what survives a killed process; fsync would add protection against a machine
    crash only, at the price of a disk round trip per record.

    Args:
        path: the file (created with its folders; mode from the umask).
        repair: first cut a cut-short last line (:func:`repair_tail`).
    """

    def __init__(self, path: str | os.PathLike, repair: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if repair:
            repair_tail(self.path)
        self._file = self.path.open("a", encoding="utf-8")

    def append(self, record: dict) -> None:
        # One write call per line, newline last: a kill leaves at most one cut-short last line.
        self._file.write(json_line(record))
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = [
    "finite",
    "json_line",
    "atomic_path",
    "atomic_write",
    "write_json",
    "read_json",
    "write_jsonl",
    "repair_tail",
    "append_jsonl",
    "read_jsonl",
    "JsonlAppender",
]
