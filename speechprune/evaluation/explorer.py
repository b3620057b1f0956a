"""The run explorer: one static HTML page to see, per sample, what each method kept and answered.

``speechprune report RUN/results.json --html`` writes ``RUN/explorer/index.html`` and, beside it,
``RUN/explorer/audio/<id>.flac`` (16 kHz, what the model heard). The page loads nothing from the
network: its style, script and data are inline, and the audio players point at the files beside
it, so the folder can be opened from a laptop or served as a static Hub Space as it is.

Per sample the page shows an audio player, the transcript with the key sentence highlighted, a
timeline of the kept tokens of each method and rate with the key span shaded (click it to play
from there), and the question and choices with the gold letter and each method's answer. Filters
(method, rate, correct or wrong, category) live in the URL hash, for example
``index.html#method=speechprune&rate=0.2&outcome=wrong``, so a filtered view can be linked.

A full run can hold 1,012 samples of 90 s; the page holds ``samples`` of them (default 20), the
failures first (most variants wrong), so that a report never writes gigabytes of audio unasked.

Example:
    >>> ordered_ids([{"id": "a", "correct": True}, {"id": "b", "correct": False}], count=None)
    ['b', 'a']
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from importlib import resources
from pathlib import Path

from speechprune.errors import UsageError
from speechprune.evaluation.fileio import read_jsonl
from speechprune.evaluation.kept import decode_mask
from speechprune.evaluation.results import key_order, read_results, result_key, samples_path

DEFAULT_SAMPLES = 20
ORDERS = ("failures", "dataset")
TEMPLATE = "explorer.html"
_DATA_SLOT = "/*EXPLORER_DATA*/null"


def ordered_ids(records: list[dict], count: int | None, order: str = "failures") -> list[str]:
    """The sample ids the page shows, in page order.

    Args:
        records: the run's records.
        count: how many samples (``None``: all of them).
        order: ``failures`` (most wrong variants first, then run order) or ``dataset`` (run order).
    """
    if order not in ORDERS:
        raise UsageError(f"--order: expected one of {', '.join(ORDERS)}, got {order!r}")
    position: dict[str, int] = {}
    wrong: dict[str, int] = defaultdict(int)
    for record in records:
        position.setdefault(record["id"], len(position))
        wrong[record["id"]] += not record["correct"]
    ids = sorted(position, key=lambda i: (-wrong[i] if order == "failures" else 0, position[i]))
    return ids if count is None else ids[:count]


def highlight_turns(transcript: list[dict], key_sentence: str | None) -> tuple[list[dict], bool]:
    """Split each turn's text around the key sentence.

    Returns:
        ``([{"speaker", "parts": [{"text", "key"}]}], found)``. The sentence is looked up without regard
        to case or runs of whitespace; where it is not in any turn verbatim (SPIRAL has such records: its
        ``key_sentence`` is the source's wording, not always the spoken one), nothing is marked.

    >>> turns, found = highlight_turns([{"speaker": "a", "text": "Hi there. The key  is 7. Bye."}], "the key is 7.")
    >>> found, [p["text"] for p in turns[0]["parts"] if p["key"]]
    (True, ['The key  is 7.'])
    """
    pattern = None
    if key_sentence and key_sentence.strip():
        pattern = re.compile(r"\s+".join(map(re.escape, key_sentence.split())), re.IGNORECASE)
    found = False
    turns = []
    for turn in transcript or []:
        text = str(turn.get("text", ""))
        match = pattern.search(text) if pattern is not None else None
        if match is None:
            parts = [{"text": text, "key": False}]
        else:
            found = True
            parts = [
                {"text": text[: match.start()], "key": False},
                {"text": match.group(0), "key": True},
                {"text": text[match.end() :], "key": False},
            ]
        turns.append({"speaker": str(turn.get("speaker", "")), "parts": [p for p in parts if p["text"]]})
    return turns, found


def _kept_indices(record: dict) -> list[int] | None:
    """Kept token indices of a record, from ``kept_mask`` (every record of a new run) or ``kept_times``."""
    total = record.get("audio_tokens_before")
    if record.get("kept_mask") is not None and total is not None:
        return decode_mask(record["kept_mask"], int(total))
    if record.get("kept_times") is not None:
        step = float(record.get("token_seconds") or 0.04)
        return [round(float(t) / step) for t in record["kept_times"]]
    return None


def _variant_entries(records: list[dict], variant_rank: dict) -> list[dict]:
    """One entry per (method, rate) of one sample; under circular scoring all rotations must be right."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for record in records:
        groups[(record["method"], record["rate"])].append(record)
    entries = []
    for (method, rate), group in sorted(groups.items(), key=lambda item: variant_rank[item[0]]):
        first = min(group, key=lambda r: r.get("rotation") or 0)
        entries.append(
            {
                "key": result_key(method, rate),
                "method": method,
                "rate": rate,
                "answer": first["parsed"],
                "correct": all(bool(r["correct"]) for r in group),
                "kept": first.get("kept_mask"),
                "kept_indices": None if first.get("kept_mask") is not None else _kept_indices(first),
                "num_tokens": first.get("audio_tokens_before"),
                "num_kept": first.get("audio_tokens_after"),
                "key_recall": first.get("key_recall"),
            }
        )
    return entries


def _dataset_rows(results: dict, records: list[dict], ids: list[str], dataset: str | None):
    """The chosen rows of the evaluated task, ``{id: row}``: the task's fields over the split's own columns."""
    from speechprune.evaluation.tasks import load_task, parse_task
    from speechprune.evaluation.tasks.data import load_task_data

    config = records[0]["config"]
    info = results.get("configs", {}).get(config, {})
    source = dataset or info.get("dataset_path") or results.get("config", {}).get("dataset", {}).get("id")
    if not source:
        raise UsageError("--dataset: results.json does not name its dataset; pass --dataset DIR_OR_HUB_ID")
    described = results.get("config", {}).get("task")  # runs before tasks existed were SPIRAL's
    task = parse_task(described, "results.json") if described else load_task(info.get("dataset_name", config))
    try:
        data = load_task_data(task, str(source))
    except (FileNotFoundError, ValueError) as error:
        message = f"--dataset: cannot load {source!r} ({error}); pass --dataset with the run's dataset"
        raise UsageError(message) from None
    position = {sample_id: n for n, sample_id in enumerate(data.ids)}
    missing = [i for i in ids if i not in position]
    if missing:
        raise UsageError(f"--dataset: {source!r} lacks the run's samples {missing[:5]}; pass the run's dataset")
    rows = {}
    for sample_id in ids:
        raw = data.accepted[position[sample_id]]
        rows[sample_id] = {**raw, **data.rows[position[sample_id]], "audio": raw[task.columns["audio"]]}
    return rows


def _write_audio(row: dict, folder: Path) -> Path:
    import soundfile

    from speechprune.evaluation.loading import SAMPLING_RATE, decode_audio

    path = folder / f"{_safe_name(row['id'])}.flac"
    soundfile.write(path, decode_audio(row["audio"]).numpy(), SAMPLING_RATE, subtype="PCM_16")
    return path


def _safe_name(sample_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(sample_id))


def _sample_entry(row: dict, records: list[dict], audio: str, variant_rank: dict) -> dict:
    turns, found = highlight_turns(list(row.get("transcript") or []), row.get("key_sentence"))
    step = next((r.get("token_seconds") for r in records if r.get("token_seconds")), None)
    return {
        "id": row["id"],
        "category": row.get("category") or "",
        "question": row["question"],
        "choices": list(row["choices"]),
        "gold": row["answer"],
        "duration": float(row.get("duration") or 0.0),
        "key_start": row.get("key_start"),
        "key_end": row.get("key_end"),
        "key_sentence": row.get("key_sentence") or "",
        "key_found": found,
        "transcript": turns,
        "audio": audio,
        "token_seconds": 0.04 if step is None else float(step),
        "variants": _variant_entries(records, variant_rank),
    }


def _page(data: dict) -> str:
    template = resources.files("speechprune.evaluation").joinpath(TEMPLATE).read_text(encoding="utf-8")
    # Inside a <script> element only "</" can end it early; "<\/" is the same string to JSON.
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
    if _DATA_SLOT not in template:
        raise RuntimeError(f"{TEMPLATE} lacks its data slot {_DATA_SLOT!r}")
    return template.replace(_DATA_SLOT, payload)


def write_explorer(
    results_path: str | Path,
    out: str | Path | None = None,
    samples: int | None = DEFAULT_SAMPLES,
    order: str = "failures",
    dataset: str | None = None,
) -> dict:
    """Write the explorer page and its audio files for a run.

    Args:
        results_path: the run's ``results.json`` (its ``samples.jsonl`` is read from beside it).
        out: the page's folder (default ``RUN/explorer``).
        samples: how many samples the page holds (``None``: all).
        order: ``failures`` first or ``dataset`` order (see :func:`ordered_ids`).
        dataset: the evaluated dataset, when it is no longer where ``results.json`` says.

    Returns:
        ``{"page": Path, "audio": [Path, ...], "audio_bytes": int, "shown": int, "total": int}``.
    """
    if samples is not None and samples < 1:
        raise UsageError(f"--samples: expected a positive count or 'all', got {samples}")
    results_path = Path(results_path)
    results = read_results(results_path)
    records = read_jsonl(samples_path(results_path, results))
    if not records:
        raise UsageError(f"{results_path}: the run has no records")
    ids = ordered_ids(records, samples, order)
    rows = _dataset_rows(results, records, ids, dataset)

    folder = Path(out) if out is not None else results_path.parent / "explorer"
    audio_folder = folder / "audio"
    audio_folder.mkdir(parents=True, exist_ok=True)
    for stale in audio_folder.glob("*.flac"):  # a previous page's choice of samples
        stale.unlink()

    by_id: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_id[record["id"]].append(record)
    keys = sorted({result_key(r["method"], r["rate"]) for r in records}, key=key_order)
    variant_rank = {}
    for record in records:
        variant_rank[(record["method"], record["rate"])] = keys.index(result_key(record["method"], record["rate"]))
    entries, audio_paths = [], []
    for sample_id in ids:
        path = _write_audio(rows[sample_id], audio_folder)
        audio_paths.append(path)
        entries.append(_sample_entry(rows[sample_id], by_id[sample_id], f"audio/{path.name}", variant_rank))

    config = results.get("config", {})
    data = {
        "title": f"SpeechPrune run: {config.get('model', {}).get('id', '?')} on {records[0]['config']}",
        "model": config.get("model", {}).get("id"),
        "dataset": config.get("dataset", {}).get("id"),
        "config": records[0]["config"],
        "circular": bool(config.get("circular")),
        "total": len(by_id),
        "order": order,
        "variants": keys,
        "methods": list(dict.fromkeys(key.partition("@")[0] for key in keys)),
        "rates": sorted({r["rate"] for r in records if r["rate"] is not None}),
        "categories": sorted({e["category"] for e in entries if e["category"]}),
        "samples": entries,
    }
    page = folder / "index.html"
    page.write_text(_page(data), encoding="utf-8")
    return {
        "page": page,
        "audio": audio_paths,
        "audio_bytes": sum(p.stat().st_size for p in audio_paths),
        "shown": len(ids),
        "total": len(by_id),
    }


def summary_line(written: dict, order: str) -> str:
    """What :func:`write_explorer` wrote, in one line for the terminal."""
    megabytes = written["audio_bytes"] / 1e6
    ordering = "failures first" if order == "failures" else "dataset order"
    return (
        f"explorer: {written['page']} ({written['shown']} of {written['total']} samples, {ordering}; "
        f"audio: {len(written['audio'])} files, {megabytes:.1f} MB, in {written['page'].parent / 'audio'})"
    )


__all__ = ["write_explorer", "ordered_ids", "highlight_turns", "summary_line", "DEFAULT_SAMPLES", "ORDERS"]
