"""Data path throughput: decode (24 kHz FLAC/WAV) -> resample to 16 kHz -> log-mel, long audio vs stock.

The long-audio path turns a 90 s recording into three 30 s windows of Whisper features; the stock
path turns a 30 s clip into one. Both decode with TorchCodec, resampling inside the decoder
(``AudioDecoder(..., sample_rate=16000)``, FFmpeg's resampler), and extract features with
``WhisperFeatureExtractor`` (128 mel bins). The processor rows add the tokenizer: the project's
``SpeechPruneProcessor`` on the 90 s recordings against the stock ``Qwen2AudioProcessor`` on the
30 s clips, each with the SPIRAL prompt.

Throughput is measured the way a data loader runs: a pool of ``--workers`` processes with one
torch thread each, over the same amount of audio for both paths (the 30 s clips are the thirds
of the 90 s recordings), repeated and interleaved; medians are reported.

Recordings are espeak-ng speech (synthetic tones where espeak-ng is missing), written at 24 kHz
like SPIRAL's FLAC.

Usage::

    python benchmarks/bench_datapath.py                   # FLAC, 2 workers, 5 repeats
    python benchmarks/bench_datapath.py --format wav
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing as mp
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

SOURCE_RATE = 24000  # SPIRAL's storage rate
MODEL_RATE = 16000
WINDOW_SECONDS = 30
QUESTION = "What did the speaker say about the new schedule for the project review?"
CHOICES = ["It moves to Tuesday", "It was cancelled", "It stays on Friday", "It needs a new room"]

_SENTENCES = [
    "The lecture explains how the nervous system processes information and drives behaviour.",
    "In the meeting, the team discussed the budget, the schedule and the new product launch.",
    "During the conversation, two friends talk about travel, food, music and the weather.",
    "The speaker mentions that the results were presented at a conference earlier this year.",
    "We should schedule the review for next Tuesday and invite the design team.",
]


def _speech(seconds: float, seed: int) -> np.ndarray:
    """``seconds`` of espeak-ng speech at 24 kHz (looped), or a synthetic stand-in without espeak-ng."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SOURCE_RATE)
    if shutil.which("espeak-ng") is None:
        t = np.arange(n) / SOURCE_RATE
        tone = np.sin(2 * np.pi * (150 + 100 * np.sin(2 * np.pi * 0.3 * t)) * t)
        return (0.3 * tone * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(n)).astype(
            np.float32
        )
    from torchcodec.decoders import AudioDecoder

    text = " ".join(rng.permutation(_SENTENCES).tolist() * 3)
    voice = ["en-us", "en-gb", "en-us+f3", "en-gb+m3"][seed % 4]
    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", "160", "--stdout", text], capture_output=True, check=True)
    speech = AudioDecoder(wav.stdout, sample_rate=SOURCE_RATE).get_all_samples().data[0].numpy()
    reps = int(np.ceil(n / len(speech)))
    return np.tile(speech, reps)[:n].astype(np.float32)


def make_recordings(folder: Path, count: int, seconds: float, fmt: str) -> tuple[list[Path], list[Path]]:
    """``count`` long recordings of ``seconds`` and their consecutive 30 s clips, as 16-bit files."""
    longs, clips = [], []
    per_clip = WINDOW_SECONDS * SOURCE_RATE
    for i in range(count):
        wave = _speech(seconds, seed=i)
        path = folder / f"long_{i}.{fmt}"
        sf.write(path, wave, SOURCE_RATE, subtype="PCM_16")
        longs.append(path)
        for j in range(0, len(wave) - per_clip + 1, per_clip):
            clip = folder / f"clip_{i}_{j // per_clip}.{fmt}"
            sf.write(clip, wave[j : j + per_clip], SOURCE_RATE, subtype="PCM_16")
            clips.append(clip)
    return longs, clips


# ---- worker side: one torch thread per process, tools built once per process ----

_TOOLS: dict = {}


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)
    from speechprune.modeling.processing_speechprune import SpeechPruneProcessor
    from speechprune.testing import tiny_processor

    stock = tiny_processor()
    long_proc = SpeechPruneProcessor(feature_extractor=stock.feature_extractor, tokenizer=stock.tokenizer)
    _TOOLS["fe"] = stock.feature_extractor  # WhisperFeatureExtractor, 128 mel bins, 30 s windows
    _TOOLS["stock"], _TOOLS["long"] = stock, long_proc
    _TOOLS["prompt"] = long_proc.spiral_prompt(QUESTION, CHOICES)  # the same chat text for both processors


def _decode(path: str) -> np.ndarray:
    from torchcodec.decoders import AudioDecoder

    data = Path(path).read_bytes()  # like datasets, which hands the decoder the stored bytes
    return AudioDecoder(data, sample_rate=MODEL_RATE).get_all_samples().data[0].numpy()


def _windows(wave: np.ndarray) -> list[np.ndarray]:
    size = WINDOW_SECONDS * MODEL_RATE
    return [wave[i : i + size] for i in range(0, len(wave), size)]


def task_decode(path: str) -> int:
    return len(_decode(path))


def task_features(path: str) -> int:
    """Decode + resample + Whisper features of every 30 s window (1 for a clip, 3 for 90 s).

    One extractor call per window, as ``SpeechPruneProcessor`` does: a single batched call over
    the three windows of a 90 s recording costs about a quarter more on this CPU.
    """
    windows = _windows(_decode(path))
    feats = [_TOOLS["fe"](w, sampling_rate=MODEL_RATE, return_tensors="np")["input_features"] for w in windows]
    return len(feats)


def task_processor(which: str, path: str) -> int:
    """The whole processor (``which``: ``stock`` on a 30 s clip, ``long`` on a 90 s recording), prompt included."""
    processor = _TOOLS[which]
    out = processor(text=[_TOOLS["prompt"]], audio=[_decode(path)], sampling_rate=MODEL_RATE, return_tensors="pt")
    return out["input_features"].shape[0]


_TASKS = {
    "decode": task_decode,
    "features": task_features,
    "stock_processor": functools.partial(task_processor, "stock"),
    "long_processor": functools.partial(task_processor, "long"),
}


def _run(job: tuple[str, str]) -> float:
    """Run one task on one file in a worker; returns the worker's CPU seconds for it."""
    name, path = job
    start = time.process_time()
    _TASKS[name](path)
    return time.process_time() - start


# ---- driver ----


def _measure(pool, task: str, paths: list[str]) -> dict[str, float]:
    """Wall seconds for the pool to get through ``paths``, and the CPU seconds its workers spent."""
    start = time.perf_counter()
    cpu = pool.map(_run, [(task, p) for p in paths], chunksize=1)
    return {"wall": time.perf_counter() - start, "cpu": sum(cpu)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--format", default="flac", choices=["flac", "wav"], help="storage format (24 kHz, 16 bit)")
    parser.add_argument("--recordings", type=int, default=8, help="long recordings per repeat (default 8)")
    parser.add_argument("--seconds", type=float, default=90.0, help="length of a long recording (default 90)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes, one torch thread each (default 2)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if args.recordings < 1 or args.workers < 1 or args.repeats < 1:
        parser.error("--recordings, --workers and --repeats must be at least 1")
    if args.seconds < WINDOW_SECONDS:
        parser.error(f"--seconds must be at least {WINDOW_SECONDS}")

    with tempfile.TemporaryDirectory() as tmp:
        longs, clips = make_recordings(Path(tmp), args.recordings, args.seconds, args.format)
        longs, clips = [str(p) for p in longs], [str(p) for p in clips]
        ctx = mp.get_context("spawn")
        with ctx.Pool(args.workers, initializer=_init_worker) as pool:
            cases = {
                "decode + resample": ("decode", "decode"),
                "+ features": ("features", "features"),
                "processor (long vs stock)": ("long_processor", "stock_processor"),
            }
            runs = [
                (name, side, fn, paths)
                for name, fns in cases.items()
                for side, fn, paths in (("long", fns[0], longs), ("stock", fns[1], clips))
            ]
            for _, _, task, paths in runs:  # warm-up: imports, FFmpeg, FFT plans
                _measure(pool, task, paths[: args.workers])
            times: dict[tuple[str, str], list[dict]] = {(name, side): [] for name, side, _, _ in runs}
            for rep in range(args.repeats):
                order = runs if rep % 2 == 0 else runs[::-1]
                for name, side, task, paths in order:
                    times[(name, side)].append(_measure(pool, task, paths))

    long_seconds = args.seconds * len(longs)
    clip_seconds = WINDOW_SECONDS * len(clips)
    print(
        f"{len(longs)} x {args.seconds:g} s recordings vs {len(clips)} x {WINDOW_SECONDS} s clips, "
        f"{args.format.upper()} at {SOURCE_RATE} Hz -> {MODEL_RATE} Hz; {args.workers} workers x 1 thread; "
        f"{args.repeats} repeats, medians"
    )
    print()
    print(
        "| stage | long: 90 s rec/s (wall) | stock: 30 s clips/s (wall) | long / stock per audio s (wall) "
        "| long: CPU ms per audio s | stock: CPU ms per audio s | long / stock per audio s (CPU) "
        "| long: rec/s from CPU |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in cases:
        stats = {}
        for side, count, seconds in (("long", len(longs), long_seconds), ("stock", len(clips), clip_seconds)):
            wall = statistics.median(t["wall"] for t in times[(name, side)])
            cpu = statistics.median(t["cpu"] for t in times[(name, side)])
            stats[side] = {"rate": count / wall, "wall_per_s": wall / seconds, "cpu_per_s": cpu / seconds}
        long, stock = stats["long"], stats["stock"]
        # What the workers could sustain if they had their cores to themselves.
        ideal = args.workers / (long["cpu_per_s"] * args.seconds)
        print(
            f"| {name} | {long['rate']:.2f} | {stock['rate']:.2f} | {long['wall_per_s'] / stock['wall_per_s']:.3f} "
            f"| {1e3 * long['cpu_per_s']:.2f} | {1e3 * stock['cpu_per_s']:.2f} "
            f"| {long['cpu_per_s'] / stock['cpu_per_s']:.3f} | {ideal:.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
