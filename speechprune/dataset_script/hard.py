"""Hard subsets: reading id lists and deriving one from a run's per-sample predictions.

The official SPIRAL-H is the ids of ``data_h.jsonl``. ``speechprune derive-hard`` makes the same kind of
list from any evaluation run: the samples that run answered wrongly. Per-sample records are JSON lines
with at least ``id``, ``method``, ``rate`` and ``correct`` (the runner's ``records/rank-*.jsonl``). When the
file holds several ``(method, rate)`` pairs, ``--method``/``--rate`` must pick one. A sample is hard when
any of its picked records is wrong (so with circular evaluation, when any rotation is wrong).

Example:
    $ speechprune derive-hard --predictions out/records --method full --out hard_ids.txt
    $ speechprune build-spiral --annotations data.jsonl --hard hard_ids.txt --out spiral

The builder's ``--hard`` takes such an id list (one id per line, ``#`` comments) or a SPIRAL annotations
file like ``data_h.jsonl`` (see :func:`read_id_list`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from speechprune.errors import UsageError


def read_id_list(path: str | Path) -> list[str]:
    """The ids in ``path``: a JSON-lines file (``metadata.id`` or ``id`` of each object) or one id per line.

    The kind is told by the first non-blank line: ``{`` starts JSON lines. In a plain list, blank lines and
    lines starting with ``#`` are skipped. Repeated ids are kept once, in first-seen order.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = Path(folder, "hard_ids.txt")
    ...     _ = path.write_text("# hard\\nlecture_1\\n\\nmeeting_2\\nlecture_1\\n")
    ...     read_id_list(path)
    ['lecture_1', 'meeting_2']
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such id list (give data_h.jsonl or a file from derive-hard)") from None
    except UnicodeDecodeError as err:
        raise UsageError(f"{path}: not UTF-8 text ({err}); an id list is JSON lines or one id per line") from None
    numbered = [(number, line.strip()) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    ids: list[str] = []
    if numbered and numbered[0][1].startswith("{"):
        for number, line in numbered:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise UsageError(f"{path}, line {number}: not valid JSON ({err}); was the file cut short?") from None
            value = None
            if isinstance(obj, dict):
                metadata = obj.get("metadata")
                value = metadata["id"] if isinstance(metadata, dict) and "id" in metadata else obj.get("id")
            if not isinstance(value, str):
                raise UsageError(f"{path}, line {number}: has neither metadata.id nor id")
            ids.append(value)
    else:
        ids = [line for _, line in numbered if not line.startswith("#")]
    return list(dict.fromkeys(ids))


def _prediction_files(paths: list[str | Path]) -> list[Path]:
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(path.rglob("*.jsonl"))
            if not found:
                raise UsageError(f"--predictions: folder {path} holds no .jsonl file")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise UsageError(f"--predictions: {path} does not exist")
    return files


def _rate_label(rate) -> str:
    return "none" if rate is None else f"{rate:g}"


def derive_hard(
    predictions: list[str | Path] | str | Path,
    method: str | None = None,
    rate: float | None = None,
    config: str | None = None,
) -> tuple[list[str], dict]:
    """The ids a run answered wrongly.

    Args:
        predictions: per-sample JSON-lines files, or folders searched for ``*.jsonl``.
        method: keep records of this method (required when several are present).
        rate: keep records of this pruning rate (required when the kept method has several rates).
        config: keep records of this dataset config (``spiral``/``spiral_h``) when records carry one.

    Returns:
        ``(ids, info)``: the wrongly answered ids in first-seen order, and ``info`` with ``method``, ``rate``,
        ``samples`` (ids scored) and ``wrong`` (``len(ids)``), ``skipped_lines`` (cut-short lines).

    Raises:
        UsageError: no records match, the choice of run is ambiguous (the message lists the choices), or a
            record is malformed (the message names the file and line): ``correct`` must be ``true`` or ``false``.
    """
    if isinstance(predictions, (str, Path)):
        predictions = [predictions]
    records, skipped = [], 0
    for path in _prediction_files(predictions):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise UsageError(f"--predictions: {path} is not UTF-8 text ({err})") from None
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                skipped += 1  # a line cut short by a killed run
                continue
            if not isinstance(record, dict):
                raise UsageError(f"--predictions: {path}, line {number}: a record must be a JSON object")
            missing = [k for k in ("id", "method", "rate", "correct") if k not in record]
            if missing:
                raise UsageError(f"--predictions: {path}, line {number}: the record lacks {', '.join(missing)}")
            if not isinstance(record["correct"], bool):  # "false" or null would silently count as right/wrong
                raise UsageError(
                    f"--predictions: {path}, line {number}: correct is {record['correct']!r}; only true or false"
                )
            records.append(record)
    if config is not None:
        records = [r for r in records if r.get("config", config) == config]
    if method is not None:
        records = [r for r in records if r["method"] == method]
    if rate is not None:
        records = [r for r in records if r["rate"] is not None and math.isclose(r["rate"], rate, abs_tol=1e-9)]
    runs = sorted({(r["method"], r["rate"]) for r in records}, key=lambda mr: (mr[0], mr[1] is not None, mr[1]))
    if not runs:
        raise UsageError("--method: no per-sample record matches the given --method/--rate/--config")
    if len(runs) > 1:
        listed = ", ".join(f"{m}@{_rate_label(r)}" for m, r in runs)
        raise UsageError(f"--method: the predictions hold several runs ({listed}); pick one with --method and --rate")
    correct: dict[str, bool] = {}
    for record in records:
        correct[record["id"]] = correct.get(record["id"], True) and bool(record["correct"])
    ids = [sample for sample, ok in correct.items() if not ok]
    info = {"method": runs[0][0], "rate": runs[0][1], "samples": len(correct), "wrong": len(ids)}
    info["skipped_lines"] = skipped
    return ids, info


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--predictions", nargs="+", required=True, help="per-sample JSON-lines files or folders")
    parser.add_argument("--out", required=True, help="where to write the id list (one id per line)")
    parser.add_argument("--method", help="the method whose answers to use (required if the file has several)")
    parser.add_argument("--rate", type=float, help="the pruning rate whose answers to use (if several)")
    parser.add_argument("--config", help="only records of this dataset config (spiral or spiral_h)")


def main(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.is_dir():
        raise UsageError(
            f"--out: {out} is a folder; give the path of the id list to write, e.g. {out / 'hard_ids.txt'}"
        )
    ids, info = derive_hard(args.predictions, method=args.method, rate=args.rate, config=args.config)
    header = (
        f"# hard subset: ids answered wrongly by method={info['method']} rate={_rate_label(info['rate'])}"
        f" ({info['wrong']} of {info['samples']}) in {' '.join(map(str, args.predictions))}\n"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(header + "".join(f"{sample}\n" for sample in ids), encoding="utf-8")
    print(f"{info['wrong']} of {info['samples']} samples answered wrongly -> {out}")
    if info["skipped_lines"]:
        print(f"skipped {info['skipped_lines']} unreadable (cut short) lines", file=sys.stderr)
    return 0
