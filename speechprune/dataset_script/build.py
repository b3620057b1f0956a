"""``speechprune build-spiral``: SPIRAL annotations in, a Hub dataset folder out.

The output folder is a dataset repository as it stands::

    OUT/README.md                               dataset card with the `configs:` block (spiral, spiral_h)
    OUT/eval.yaml                               Hub benchmark registration, tasks spiral and spiral_h
    OUT/data/spiral/test-00000-of-00016.parquet every row, audio embedded (24 kHz mono FLAC)
    OUT/data/spiral_h/test-00000-of-00007.parquet
    OUT/rejects.jsonl                           malformed source records: line, id, reason
    OUT/.spiral-build/                          build state (not part of the dataset; never uploaded)

Steps: validate every record (malformed ones go to ``rejects.jsonl`` and the build goes on), make each
dialogue's audio (a worker writes it to ``.spiral-build/cache`` as soon as it is done), write every
parquet shard once all its dialogues are ready (temporary file, then ``os.replace``), then the hard-subset
shards from the written ones, then the card. A build killed at any point and started again with the
same arguments skips all finished dialogues and shards and ends with the same files, byte for byte, as an
uninterrupted build, because every dialogue's audio depends only on the dialogue.

Example (without ``--annotations`` the published files are fetched once and cached, see ``published``):
    $ speechprune build-spiral --out spiral --workers 2
    >>> from datasets import load_dataset  # doctest: +SKIP
    >>> from speechprune.evaluation.loading import local_cache_dir  # doctest: +SKIP
    >>> cache = str(local_cache_dir("spiral"))  # datasets would cache a local folder by its name  # doctest: +SKIP
    >>> load_dataset("spiral", "spiral_h", split="test", cache_dir=cache).num_rows  # doctest: +SKIP
    401
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import multiprocessing
import shlex
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from tqdm.auto import tqdm

from speechprune.cache import CACHE_VARIABLE
from speechprune.errors import UsageError
from speechprune.evaluation.fileio import atomic_write, write_jsonl

from . import SAMPLE_ANNOTATIONS, published
from . import card as card_module
from . import shards as shard_io
from .hard import read_id_list
from .records import SpiralRecord, read_annotations
from .speech import (
    EDGE_SILENCE_S,
    SENTENCE_PAUSE_S,
    TARGET_LUFS,
    TRIM_SAMPLES,
    TURN_PAUSE_S,
    authors_audio_paths,
    encode_flac,
    load_authors_audio,
    synthesize_dialogue,
)
from .tts import DEFAULT_WORDS_PER_MINUTE, make_engine

BUILD_FORMAT = 1  # bump when the audio or row layout changes, so old partial builds are not resumed
STATE_DIR = ".spiral-build"
ROWS_PER_SHARD = 64
# Upper bound used by the free-space check: 16-bit PCM (FLAC is smaller) of a 120 s dialogue.
BYTES_PER_ROW = 2 * 24000 * 120


class BuildStateError(UsageError):
    """The output folder holds another build (other arguments or inputs) or something that is no build."""


# ---------------------------------------------------------------- making one dialogue's audio


def _engine_spec(tts: str, wavs, words_per_minute: int, voice_prompts) -> tuple:
    return (tts, None if wavs is None else str(wavs), words_per_minute, voice_prompts)


_WORKER_ENGINE = None


def _init_worker(spec: tuple) -> None:
    global _WORKER_ENGINE
    tts, wavs, words_per_minute, voice_prompts = spec
    _WORKER_ENGINE = None if wavs is not None else make_engine(tts, words_per_minute, voice_prompts)


def _cache_paths(cache: Path, index: int) -> tuple[Path, Path]:
    return cache / f"{index:05d}.flac", cache / f"{index:05d}.json"


def _produce(index: int, record: SpiralRecord, cache: Path, wavs: str | None, engine=None) -> int:
    """Make the audio of one dialogue and store it in the cache (FLAC first, then its JSON, which marks it done)."""
    engine = engine if engine is not None else _WORKER_ENGINE
    if wavs is not None:
        recording = load_authors_audio(record, wavs)
    else:
        recording = synthesize_dialogue(record, engine)
    flac_path, meta_path = _cache_paths(cache, index)
    atomic_write(flac_path, encode_flac(recording))
    meta = {
        "id": record.id,
        "key_start": recording.key_start,
        "key_end": recording.key_end,
        "duration": recording.duration,
        "audio_source": recording.source,
    }
    atomic_write(meta_path, json.dumps(meta).encode())
    return index


def _cached(cache: Path, index: int, record_id: str) -> dict | None:
    flac_path, meta_path = _cache_paths(cache, index)
    if not (meta_path.exists() and flac_path.exists()):
        return None
    meta = json.loads(meta_path.read_text())
    if meta["id"] != record_id:
        raise BuildStateError(f"cache entry {meta_path} is for {meta['id']!r}, expected {record_id!r}")
    return meta


# ---------------------------------------------------------------- the build


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _existing_ancestor(out: Path) -> Path:
    probe = out.absolute()
    while not probe.exists():
        probe = probe.parent
    return probe


def _check_writable(out: Path) -> None:
    """Raise UsageError unless a folder can be made where ``out`` goes (tried for real: as root, os.access lies)."""
    probe = _existing_ancestor(out)
    if probe == out.absolute() and not probe.is_dir():
        raise UsageError(f"--out: {out} is a file; give a folder (absent, empty, or a build to resume)")
    try:
        shutil.rmtree(tempfile.mkdtemp(prefix=".speechprune-probe-", dir=probe))
    except OSError as err:
        raise UsageError(f"--out: cannot write under {probe} ({err.strerror}); give a writable folder") from None


def _check_free_space(out: Path, rows: int, hard_rows: int) -> int:
    """Raise UsageError when the disk holding ``out`` cannot take the build; returns the bytes needed."""
    # cache + spiral shards may coexist for a shard's worth of rows; hard shards copy their rows
    needed = (rows + hard_rows + ROWS_PER_SHARD) * BYTES_PER_ROW
    probe = _existing_ancestor(out)
    free = shutil.disk_usage(probe).free
    if free < needed:
        raise UsageError(
            f"--out: not enough free disk space for {rows} rows (+{hard_rows} hard): need about "
            f"{needed / 1e9:.1f} GB under {probe}, {free / 1e9:.1f} GB free"
        )
    return needed


def _write_rejects_only(out: Path, rejects: list[dict]) -> Path | None:
    """When nothing can be built, still leave ``rejects.jsonl`` (in a new or empty --out, or our own build)."""
    if out.exists() and any(out.iterdir()) and not (out / STATE_DIR).is_dir():
        return None  # somebody else's folder: write nothing into it
    out.mkdir(parents=True, exist_ok=True)
    return write_jsonl(out / "rejects.jsonl", rejects)


def _prepare_out(out: Path, fingerprint: str, settings: dict) -> Path:
    """Create ``out`` or check that it holds this very build; returns the state folder."""
    state_dir = out / STATE_DIR
    state_file = state_dir / "state.json"
    if state_file.exists():
        stored = json.loads(state_file.read_text())
        if stored.get("fingerprint") != fingerprint:
            raise BuildStateError(
                f"{out} holds a build with other inputs or arguments; use an empty --out folder "
                f"(stored settings: {json.dumps(stored.get('settings'))[:300]})"
            )
    elif out.exists() and any(out.iterdir()):
        raise BuildStateError(f"--out {out} exists and is not empty (and holds no SPIRAL build to resume)")
    state_dir.mkdir(parents=True, exist_ok=True)
    if not state_file.exists():
        atomic_write(state_file, json.dumps({"fingerprint": fingerprint, "settings": settings}, indent=1).encode())
    shutil.rmtree(state_dir / "tmp", ignore_errors=True)  # half-written files of a killed run
    for stale in (state_dir / "cache").glob(".*.tmp"):
        stale.unlink()
    return state_dir


def _resolve_ids(ids) -> list[str] | None:
    if ids is None:
        return None
    if isinstance(ids, (str, Path)):
        return read_id_list(ids)
    return list(dict.fromkeys(ids))


def _default_command(annotations, hard, tts, wavs, limit, ids) -> str:
    parts = ["speechprune", "build-spiral", "--annotations", Path(annotations).name]
    if hard is not None:
        parts += ["--hard", Path(hard).name]
    parts += ["--out", "OUT", "--tts", tts]
    if wavs is not None:
        parts += ["--wavs", "WAVS"]
    if limit is not None:
        parts += ["--limit", str(limit)]
    if ids is not None:
        parts += ["--ids", Path(ids).name if isinstance(ids, (str, Path)) else "IDS"]
    return shlex.join(parts)  # --workers is left out: it changes nothing in the output


def _synthesize_all(jobs, records, cache, spec, workers, engine, on_done, bar) -> None:
    """Run the dialogue jobs (in this process when ``workers == 1``), calling ``on_done(index)`` after each."""
    wavs = spec[1]
    if workers == 1:
        for index in jobs:
            _produce(index, records[index], cache, wavs, engine)
            bar.update(1)
            on_done(index)
        return
    context = multiprocessing.get_context("spawn")  # no fork of a process that may hold threads
    with concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(spec,)
    ) as pool:
        futures = [pool.submit(_produce, index, records[index], cache, wavs) for index in jobs]
        try:
            for future in concurrent.futures.as_completed(futures):
                index = future.result()
                bar.update(1)
                on_done(index)
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise


def build_spiral(
    annotations: str | Path,
    out: str | Path,
    hard: str | Path | None = None,
    tts: str = "espeak",
    wavs: str | Path | None = None,
    limit: int | None = None,
    workers: int = 1,
    ids: Iterable[str] | str | Path | None = None,
    *,
    rows_per_shard: int = ROWS_PER_SHARD,
    words_per_minute: int = DEFAULT_WORDS_PER_MINUTE,
    voice_prompts: str | Path | None = None,
    repo_id: str = "<user>/spiral",
    command: str | None = None,
    progress: bool = True,
) -> dict:
    """Build the SPIRAL dataset folder ``out`` (see the module docstring); resumes a killed build.

    Args:
        annotations: SPIRAL annotations (JSON lines, SPEC section 4), e.g. the published ``data.jsonl``.
        out: output folder; must be empty, absent, or an earlier run of this same build.
        hard: the hard subset: ``data_h.jsonl`` or an id list (``speechprune derive-hard``). Without it only the
            ``spiral`` config is written.
        tts: ``"espeak"`` (default, offline) or ``"styletts2"`` (optional package). Ignored with ``wavs``.
        wavs: folder with the authors' recordings (``audio_data.combined.audio_files``); then no synthesis
            and ``key_start``/``key_end`` are null. Records whose files are missing are rejected.
        limit: use only the first ``limit`` records of ``annotations``.
        workers: processes making audio in parallel.
        ids: build only these ids (a list, or an id-list file), in annotation order.
        rows_per_shard: rows per parquet file.
        words_per_minute: espeak-ng speaking rate.
        voice_prompts: folder of LibriTTS-R prompt wavs (``styletts2`` only).
        repo_id: Hub id shown in the card's loading example.
        command: the command line quoted on the card (default: rebuilt from the arguments, file names only).
        progress: show a tqdm progress bar.

    Returns:
        A summary: ``records_in`` (records read), ``rows``, ``rejects``, ``not_selected`` (left out by ``ids``),
        ``hard_rows``, ``hard_missing`` (hard ids that are not among the rows), ``made`` (dialogues made by this
        run), ``reused`` (finished by an earlier run), ``seconds``, ``mean_duration``, ``audio_source``, ``out``.
    """
    start_time = time.perf_counter()
    annotations, out = Path(annotations), Path(out)
    if workers < 1:
        raise UsageError(f"--workers: expected at least 1, got {workers}")
    if limit is not None and limit < 1:
        raise UsageError(f"--limit: {limit} leaves no record to build; give at least 1, or leave it out")
    if not annotations.is_file():
        raise UsageError(f"--annotations: no such file {annotations}")
    _check_writable(out)
    records, rejects = read_annotations(annotations, limit=limit)
    records_in = len(records) + len(rejects)
    if wavs is not None:
        kept = []
        for record in records:
            try:
                authors_audio_paths(record, wavs)
                kept.append(record)
            except FileNotFoundError as err:
                rejects.append({"line": record.line, "id": record.id, "reason": f"authors' audio missing: {err}"})
        records = kept
        rejects.sort(key=lambda r: r["line"])
    wanted = _resolve_ids(ids)
    not_selected = 0
    if wanted is not None:
        wanted_set = set(wanted)
        not_selected = sum(r.id not in wanted_set for r in records)
        records = [r for r in records if r.id in wanted_set]
    hard_ids = read_id_list(hard) if hard is not None else None
    if not records:
        written = _write_rejects_only(out, rejects)
        where = f"the reasons are in {written}" if written else f"nothing was written into {out}"
        if wanted is not None and not_selected:
            raise UsageError(
                f"--ids: none of the {len(wanted)} ids of {ids} is among the {not_selected} valid records of "
                f"{annotations} (e.g. {wanted[:3]}); {len(rejects)} records rejected, {where}"
            )
        raise UsageError(f"--annotations: no valid record in {annotations}: {len(rejects)} rejected, {where}")

    if wavs is not None:
        engine, settings = None, {"engine": "authors"}
    else:
        try:
            engine = make_engine(tts, words_per_minute, voice_prompts)
        except RuntimeError as err:  # the optional engine is not installed: the message names the extra
            raise UsageError(f"--tts: {err}") from None
        settings = engine.settings() | {
            "sentence_pause_s": list(SENTENCE_PAUSE_S),
            "turn_pause_s": list(TURN_PAUSE_S),
            "edge_silence_s": EDGE_SILENCE_S,
            "trim_samples": TRIM_SAMPLES,
            "target_lufs": TARGET_LUFS,
        }
    key = {
        "format": BUILD_FORMAT,
        "annotations_sha256": _sha256(annotations),
        "ids": [r.id for r in records],
        "hard_ids": hard_ids,
        "rows_per_shard": rows_per_shard,
        "wavs": None if wavs is None else str(Path(wavs).resolve()),
        "audio": settings,
    }
    fingerprint = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    row_ids = {r.id for r in records}
    hard_in_rows = [] if hard_ids is None else [i for i in hard_ids if i in row_ids]
    _check_free_space(out, len(records), len(hard_in_rows))
    state_dir = _prepare_out(out, fingerprint, settings)
    cache, tmp_dir = state_dir / "cache", state_dir / "tmp"
    cache.mkdir(exist_ok=True)
    write_jsonl(out / "rejects.jsonl", rejects)

    # 1. the spiral shards: make missing dialogues, write each shard as soon as all its rows are ready
    ranges = shard_io.shard_ranges(len(records), rows_per_shard)
    spiral_dir = out / "data" / "spiral"
    shard_paths = [spiral_dir / shard_io.shard_name(j, len(ranges)) for j in range(len(ranges))]
    shard_of = {index: j for j, rows in enumerate(ranges) for index in rows}
    remaining = {j: 0 for j in range(len(ranges))}
    jobs = []
    for j, rows in enumerate(ranges):
        if shard_paths[j].exists():
            continue
        for index in rows:
            if _cached(cache, index, records[index].id) is None:
                jobs.append(index)
                remaining[j] += 1

    def finish_shard(j: int) -> None:
        if shard_paths[j].exists():
            return
        rows = []
        for index in ranges[j]:
            meta = _cached(cache, index, records[index].id)
            flac = _cache_paths(cache, index)[0].read_bytes()
            rows.append(shard_io.make_row(records[index], flac, meta))
        shard_io.write_shard(rows, shard_paths[j], tmp_dir)
        for index in ranges[j]:
            for path in _cache_paths(cache, index):
                path.unlink(missing_ok=True)

    def on_done(index: int) -> None:
        j = shard_of[index]
        remaining[j] -= 1
        if remaining[j] == 0:
            finish_shard(j)

    for j in range(len(ranges)):
        if remaining[j] == 0:
            finish_shard(j)  # every row cached by an earlier run
    spec = _engine_spec(tts, wavs, words_per_minute, voice_prompts)
    with tqdm(
        total=len(records), initial=len(records) - len(jobs), desc="SPIRAL", unit="dialogue", disable=not progress
    ) as bar:
        _synthesize_all(jobs, records, cache, spec, workers, engine, on_done, bar)

    # 2. the hard-subset shards, copied row by row from the spiral shards (no audio is made twice)
    stats = {"spiral": _config_stats(shard_paths)}
    if hard_in_rows:  # datasets cannot load a config without rows, so none is written
        hard_paths = _write_hard_shards(out, shard_paths, set(hard_in_rows), rows_per_shard, tmp_dir)
        stats["spiral_h"] = _config_stats(hard_paths)

    # 3. card and benchmark file
    configs = list(stats)
    hard_source = None
    if hard_in_rows:
        hard_source = f"the {len(hard_in_rows)} ids of `{Path(hard).name}` found among the rows"
        if Path(hard).name == "data_h.jsonl":
            hard_source += " (the official SPIRAL-H: where stock Qwen2-Audio scored 0 in the paper)"
    card = card_module.render_card(
        stats,
        settings,
        hard_source=hard_source,
        records_in=records_in,
        rejects=len(rejects),
        annotations_sha256=key["annotations_sha256"],
        command=command or _default_command(annotations, hard, tts, wavs, limit, ids),
        repo_id=repo_id,
    )
    atomic_write(out / "README.md", str(card).encode())
    atomic_write(out / "eval.yaml", card_module.render_eval_yaml(configs).encode())
    shutil.rmtree(tmp_dir, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)

    summary = {
        "records_in": records_in,
        "rows": len(records),
        "rejects": len(rejects),
        "not_selected": not_selected,
        "hard_rows": len(hard_in_rows),
        "hard_missing": 0 if hard_ids is None else len(hard_ids) - len(hard_in_rows),
        "made": len(jobs),
        "reused": len(records) - len(jobs),
        "seconds": round(time.perf_counter() - start_time, 2),
        "mean_duration": stats["spiral"]["duration"]["mean"],
        "audio_source": settings["engine"],
        "out": str(out),
    }
    atomic_write(state_dir / "summary.json", json.dumps(summary, indent=1).encode())
    return summary


def _config_stats(paths: list[Path]) -> dict:
    return card_module.config_stats(
        shard_io.read_column(paths, "answer"),
        shard_io.read_column(paths, "category"),
        shard_io.read_column(paths, "duration"),
    )


def _write_hard_shards(
    out: Path, spiral_paths: list[Path], hard: set[str], rows_per_shard: int, tmp_dir
) -> list[Path]:
    """Write ``data/spiral_h`` from the spiral shards: the rows whose id is in ``hard``, in spiral order."""
    home = {}  # hard id -> the spiral shard holding it, in spiral order
    for path in spiral_paths:
        home.update((i, path) for i in shard_io.read_column([path], "id") if i in hard)
    order = list(home)
    ranges = shard_io.shard_ranges(len(order), rows_per_shard)
    paths = [out / "data" / "spiral_h" / shard_io.shard_name(k, len(ranges)) for k in range(len(ranges))]
    for k in range(len(ranges)):
        if paths[k].exists():
            continue
        wanted = [order[i] for i in ranges[k]]
        rows = {}
        for path in dict.fromkeys(home[i] for i in wanted):  # one spiral shard in memory at a time
            rows.update((row["id"], row) for row in shard_io.read_rows(path, set(wanted)))
        shard_io.write_shard([rows[i] for i in wanted], paths[k], tmp_dir)
    return paths


# ---------------------------------------------------------------- command line


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--annotations",
        help="SPIRAL annotations, JSON lines (e.g. data.jsonl). Default: the published data.jsonl and data_h.jsonl "
        f"(downloaded once from github.com/{published.REPOSITORY}, sha256-checked, cached under "
        f"${CACHE_VARIABLE}/{published.CACHE_SUBDIR}); then --hard defaults to data_h.jsonl",
    )
    parser.add_argument(
        "--sample",
        action="store_true",
        help="instead of --annotations: the 24 published records packaged with speechprune (offline; a quick try)",
    )
    parser.add_argument("--hard", help="hard subset: data_h.jsonl or an id list from `speechprune derive-hard`")
    parser.add_argument("--out", required=True, help="output folder (empty, absent, or a build to resume)")
    parser.add_argument("--tts", choices=("espeak", "styletts2"), default="espeak", help="speech engine")
    parser.add_argument("--wavs", help="folder with the authors' recordings: use them instead of synthesis")
    parser.add_argument("--limit", type=int, help="use only the first N records")
    parser.add_argument("--ids", help="build only the ids listed in this file")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes making audio (default 1)")
    parser.add_argument(
        "--words-per-minute", type=int, default=DEFAULT_WORDS_PER_MINUTE, help="espeak-ng speaking rate"
    )
    parser.add_argument("--voice-prompts", help="folder of LibriTTS-R voice prompt wavs (styletts2 backend)")
    parser.add_argument("--rows-per-shard", type=int, default=ROWS_PER_SHARD, help="rows per parquet file")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--push-to-hub", metavar="REPO", help="upload the folder to this Hub dataset repo")
    parser.add_argument(
        "--i-have-the-right-to-publish",
        action="store_true",
        help="required with --push-to-hub: you confirm you may publish audio derived from the SPIRAL annotations, "
        "whose authors state no licence",
    )
    parser.add_argument("--private", action="store_true", help="with --push-to-hub: create a private repo")


def push_to_hub(out: str | Path, repo_id: str, private: bool = False) -> str:
    """Upload a built folder (without its build state) to the Hub dataset repo ``repo_id``; returns its URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    api.upload_folder(
        folder_path=str(out),
        repo_id=repo_id,
        repo_type="dataset",
        ignore_patterns=[f"{STATE_DIR}/**"],
        commit_message="SPIRAL built with speechprune build-spiral",
    )
    return f"https://huggingface.co/datasets/{repo_id}"


def main(args: argparse.Namespace) -> int:
    if args.push_to_hub and not args.i_have_the_right_to_publish:
        raise UsageError(
            "--push-to-hub: refused without --i-have-the-right-to-publish; the SPIRAL authors state "
            "no licence for their data, so publish derived audio only if you have the right to"
        )
    annotations, hard = args.annotations, args.hard
    if args.sample:
        if annotations is not None:
            raise UsageError("--sample: it replaces --annotations; give one of the two")
        annotations = SAMPLE_ANNOTATIONS
    elif annotations is None:
        fetched = published.fetch_published()
        annotations, hard = fetched["data.jsonl"], hard or fetched["data_h.jsonl"]
        print(f"annotations: the published SPIRAL files, checked by sha256, in {annotations.parent}")
    summary = build_spiral(
        annotations,
        args.out,
        hard=hard,
        tts=args.tts,
        wavs=args.wavs,
        limit=args.limit,
        workers=args.workers,
        ids=args.ids,
        rows_per_shard=args.rows_per_shard,
        words_per_minute=args.words_per_minute,
        voice_prompts=args.voice_prompts,
        repo_id=args.push_to_hub or "<user>/spiral",
        progress=not args.no_progress,
    )
    extra = f" + {summary['not_selected']} not selected by --ids" if summary["not_selected"] else ""
    print(
        f"{summary['records_in']} records in = {summary['rows']} rows kept + {summary['rejects']} rejects{extra}; "
        f"spiral_h: {summary['hard_rows']} rows ({summary['hard_missing']} hard ids not among the rows)"
    )
    print(
        f"made {summary['made']} recordings, reused {summary['reused']}; mean duration "
        f"{summary['mean_duration']:.2f} s; {summary['seconds']:.1f} s -> {summary['out']}"
    )
    if args.push_to_hub:
        print(f"uploaded: {push_to_hub(args.out, args.push_to_hub, private=args.private)}")
    return 0
