"""``speechprune demo``: the whole pipeline offline, in a few minutes, with no arguments.

1. Build a small SPIRAL: 24 dialogues (8 lectures, 8 meetings, 8 conversations, from the
   published annotations packaged as ``speechprune/dataset_script/sample_annotations.jsonl``),
   spoken with espeak-ng, into ``$SPEECHPRUNE_CACHE/demo/spiral`` (default
   ``~/.cache/speechprune``). A second demo reuses it.
2. Run ``speechprune eval`` on the embedded tiny Qwen2-Audio (random weights) with ``original``,
   ``random``, ``crop`` and ``speechprune`` at pruning rates 0.2 and 0.8, into ``--output``
   (default ``$SPEECHPRUNE_CACHE/demo/run``; replaced by each demo, and only ever an earlier demo's folder).
3. Print the Table-1-style table, say which columns are real measurements, and where the
   plots are.

What the numbers mean: the tiny model's accuracy is meaningless (random weights). The LLM
TFLOPs column is real: the prefill FLOPs of the actual Qwen2-Audio-7B architecture at the token
counts this run produced (SpeechPrune's saving is in it). The prefill time is the tiny model's,
on this machine's CPU; memory is not measured on CPU.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from speechprune.cache import CACHE_VARIABLE, cache_dir
from speechprune.dataset_script import SAMPLE_ANNOTATIONS
from speechprune.errors import UsageError
from speechprune.evaluation import runner
from speechprune.modeling.pruning_settings import RATE_MEANING

DEMO_DIALOGUES = 24
DEMO_METHODS = ("original", "random", "crop", "speechprune")
DEMO_RATES = (0.2, 0.8)


def demo_annotations() -> Path:
    """The packaged 24 sample annotations.

    Raises:
        FileNotFoundError: the packaged file is missing (a broken install).
    """
    if SAMPLE_ANNOTATIONS.is_file():
        return SAMPLE_ANNOTATIONS
    raise FileNotFoundError(f"the packaged SPIRAL sample {SAMPLE_ANNOTATIONS} is missing; reinstall speechprune")


def balanced_ids(annotations: Path, count: int) -> list[str]:
    """The first ``count`` ids, taking the categories in turn (lecture, meeting, conversation) in file order.

    The packaged file is already in this order; for the full published file this picks the same
    kind of balanced subset.
    """
    by_category: dict[str, list[str]] = {}
    with annotations.open(encoding="utf-8") as lines:
        for line in lines:
            meta = json.loads(line)["metadata"]
            by_category.setdefault(meta["transcript_type"], []).append(meta["id"])
    order = [by_category[c] for c in ("lecture", "meeting", "conversation") if c in by_category]
    picked = [ids[i] for i in range(max(map(len, order))) for ids in order if i < len(ids)]
    return picked[:count]


def build_demo_dataset(folder: Path, count: int = DEMO_DIALOGUES) -> dict:
    """Build (or reuse) the demo SPIRAL in ``folder``; returns ``build_spiral``'s summary."""
    from speechprune.dataset_script.build import BuildStateError, build_spiral

    annotations = demo_annotations()
    ids = balanced_ids(annotations, count)
    try:
        return build_spiral(annotations, folder, ids=ids)
    except BuildStateError:
        # Our own cache from another version of the demo (other annotations or settings): start over.
        shutil.rmtree(folder)
        return build_spiral(annotations, folder, ids=ids)


DEMO_MARKER = "speechprune-demo.txt"  # written into the output folder: a later demo may replace that folder


def _fresh_output(output: Path) -> None:
    """Empty ``output`` for a new run, refusing to touch a folder that holds anything but an earlier demo."""
    if output.exists() and not output.is_dir():
        raise UsageError(f"--output: {output} is a file; give a folder for the demo's outputs")
    if output.is_dir() and any(output.iterdir()):
        if not _earlier_demo(output):
            raise UsageError(f"--output: {output} is not empty and holds no earlier demo; give a new or empty folder")
        shutil.rmtree(output)  # a fresh run: the timings are this machine's, now


def _earlier_demo(output: Path) -> bool:
    """A finished demo leaves DEMO_MARKER; one killed part way leaves a run of the tiny model."""
    if (output / DEMO_MARKER).is_file():
        return True
    try:
        return json.loads((output / "run_config.json").read_text())["model"].startswith("tiny")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def run_demo(
    cache: Path | None = None,
    count: int = DEMO_DIALOGUES,
    methods: tuple[str, ...] = DEMO_METHODS,
    rates: tuple[float, ...] = DEMO_RATES,
    output: Path | None = None,
) -> dict:
    """Build the demo dataset, run the evaluation and print the report; returns the run's paths and timings.

    Args:
        cache: the cache folder (default ``cache_dir()``); the dataset goes to ``cache/demo/spiral``.
        count: dialogues in the demo dataset (1 to 24).
        methods, rates: what to evaluate.
        output: the run's folder (default ``cache/demo/run``): new, empty, or an earlier demo's (replaced).
    """
    if not 1 <= count <= DEMO_DIALOGUES:
        raise UsageError(f"--dialogues: {count} is not in 1..{DEMO_DIALOGUES} (the packaged sample has 24)")
    cache = (cache or cache_dir()) / "demo"
    output = Path(output) if output is not None else cache / "run"
    _fresh_output(output)
    start = time.perf_counter()
    print(f"speechprune demo: building a {count}-dialogue SPIRAL with espeak-ng in {cache / 'spiral'} ...")
    summary = build_demo_dataset(cache / "spiral", count)
    built = time.perf_counter() - start
    print(
        f"  {summary['rows']} dialogues ({summary['made']} synthesised now, {summary['reused']} reused), "
        f"mean duration {summary['mean_duration']:.1f} s, {built:.0f} s"
    )

    parser = argparse.ArgumentParser()
    runner.configure(parser)
    args = parser.parse_args(
        ["--model", "tiny", "--dataset", str(cache / "spiral"), "--config", "spiral", "--output", str(output)]
        + ["--methods", ",".join(methods), "--rates", ",".join(f"{r:g}" for r in rates)]
    )
    print(f"speechprune demo: evaluating the tiny model ({', '.join(methods)}; rates {args.rates}) ...")
    done = runner.evaluate(args)
    (output / DEMO_MARKER).write_text("written by `speechprune demo`; the next demo into this folder replaces it\n")
    total = time.perf_counter() - start
    paths = done["paths"]
    print()
    print(paths["table"].read_text(encoding="utf-8"))
    print(
        "How to read this table:\n"
        "- Accuracy: MEANINGLESS. The tiny model has random weights; the column only shows that scoring runs.\n"
        "- LLM TFLOPs: REAL. Prefill FLOPs of the actual Qwen2-Audio-7B architecture (counted on the meta device)\n"
        "  for the token counts of this run, so the savings of each method and rate are the real ones.\n"
        "  (The paper's Table 1 has 12.2 for original; these prompts tokenize a little longer with the\n"
        "  tiny tokenizer.)\n"
        "- prefill ms: measured, but for the TINY model on this CPU: it says nothing about a 7B prefill on a GPU.\n"
        "- memory columns: not measured on CPU (CUDA statistics only); the footnote gives an analytic estimate.\n"
        "For real numbers: speechprune eval --model Qwen/Qwen2-Audio-7B-Instruct on a GPU (see docs/runner.md)."
    )
    print()
    print(f"speechprune demo: wrote everything into {output} (the dataset is in {cache / 'spiral'}):")
    for name in ("results", "table", "samples", "accuracy", "cost", "pruning_map"):
        if name in paths:
            print(f"{name:>12}: {paths[name]}")
    print(f"speechprune demo: done in {total:.0f} s (dataset {built:.0f} s, evaluation {total - built:.0f} s)")
    return {"paths": paths, "summary": summary, "seconds": {"dataset": built, "total": total}}


def configure(parser: argparse.ArgumentParser) -> None:
    """Every option has a default: ``speechprune demo`` alone runs the whole demo."""
    parser.epilog = (
        f"The dataset is built once into ${CACHE_VARIABLE}/demo/spiral (default ~/.cache/speechprune; set "
        f"{CACHE_VARIABLE} to put it elsewhere) and reused by later demos."
    )
    parser.add_argument(
        "--output", type=Path, default=None, help=f"folder for the run's outputs (default ${CACHE_VARIABLE}/demo/run)"
    )
    parser.add_argument(
        "--dialogues",
        type=int,
        default=DEMO_DIALOGUES,
        help=f"dialogues to build and score (default {DEMO_DIALOGUES})",
    )
    parser.add_argument("--methods", default=",".join(DEMO_METHODS), help="comma list of methods")
    parser.add_argument(
        "--rates", default=",".join(f"{r:g}" for r in DEMO_RATES), help=f"comma list of rates; {RATE_MEANING}"
    )


def main(args: argparse.Namespace) -> int:
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    try:
        rates = tuple(float(r) for r in args.rates.split(",") if r.strip())
    except ValueError:
        raise UsageError(f"--rates: expected a comma list of numbers such as 0.2,0.8, got {args.rates!r}") from None
    run_demo(count=args.dialogues, methods=methods, rates=rates, output=args.output)
    return 0


__all__ = ["run_demo", "build_demo_dataset", "balanced_ids", "demo_annotations", "cache_dir", "configure", "main"]
