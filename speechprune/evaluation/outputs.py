"""What a finished run writes beside its ``samples.jsonl``.

- ``results.json``: lm-evaluation-harness shape (:func:`results.build_results`), with the
  model revision, dataset revision and fingerprint, audio source and what each cost column
  measured (``config.measurements``).
- ``table.md``: the Table-1-style table (:func:`report.results_table`) and footnotes saying
  which columns are measurements on this machine and which are computed.
- ``accuracy.png``, ``cost.png`` (:mod:`speechprune.evaluation.report`).
- ``pruning_map/<id>.png``: for a few samples, which audio tokens every variant kept, with
  the key sentence shaded.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from speechprune.evaluate_metric.spiral_accuracy.spiral_accuracy import ALL_LETTERS
from speechprune.evaluation import report, results
from speechprune.modeling.pruning_settings import RATE_MEANING  # the one wording of what a rate keeps

REJECTS_FILE = "rejects.jsonl"  # beside samples.jsonl: the rows the task left out, with their reasons
TINY_NOTE = (
    "The tiny model has random weights: its accuracy is meaningless (chance level or a letter bias); "
    "it only shows that the pipeline runs."
)


def measurements(device: str, flops_architecture: str, batch_size: int, cuda: bool, audio_cache: bool) -> dict:
    """Plain words for what each cost column is, stored in results.json and printed under the table."""
    prefill = (
        f"wall time on {device} from the model call to the end of its first forward (audio encoder + "
        f"selection + LLM prefill), per sample (batch size {batch_size}, batch time / batch size)"
    )
    if cuda:
        memory = (
            "torch.cuda.max_memory_allocated during the prefill (total) and that peak minus the memory allocated "
            "before the call (activation), GiB"
        )
    else:
        memory = (
            "not measured: CUDA memory statistics do not exist on CPU (the columns show '-'); "
            "activation_estimate_gb in the records is an analytic estimate (efficiency.activation_memory_estimate)"
        )
    if audio_cache:  # the batch's audio was encoded once (measure.EncoderCache)
        prefill += "; the audio encoder ran once per batch and its time is added to every method's"
        if cuda:
            memory += "; calls that reused the batch's audio encoding leave the encoder's activations out"
    return {
        "llm_tflops": (
            f"LLM prefill FLOPs (torch.utils.flop_counter, audio encoder excluded) of the {flops_architecture} "
            "architecture at this run's token counts (text + kept audio tokens), mean per sample; computed, "
            "not timed, so the same on any machine"
        ),
        "prefill_ms": prefill,
        "memory": memory,
    }


def choices_note(task: str, counts: list[int]) -> str:
    """The table footnote that says how many choices the questions had (the majority baseline is over these).

    >>> choices_note("spiral", [4, 4]), choices_note("mine", [2, 10, 3])
    ('spiral: 4 choices per question (A-D)', 'mine: 2 to 10 choices per question (A-B to A-J)')
    """
    low, high = min(counts), max(counts)
    letters = ALL_LETTERS
    if low == high:
        return f"{task}: {low} choices per question (A-{letters[low - 1]})"
    return f"{task}: {low} to {high} choices per question (A-{letters[low - 1]} to A-{letters[high - 1]})"


def write_run_outputs(
    output: Path, records: list[dict], config: dict, dataset_size: int, notes: list[str], rejected: dict | None = None
) -> dict:
    """Write results.json, table.md (footnotes: what each cost column is, then ``notes``) and the plots.

    ``rejected`` counts the rows the task left out, by reason (listed in :data:`REJECTS_FILE`).

    Returns:
        Their paths by name: ``results``, ``table``, ``accuracy``, ``cost``.
    """
    output = Path(output)
    name = records[0]["config"]
    document = results.build_results(
        records, config=config, dataset_sizes={name: dataset_size}, rejected=rejected, rejects_file=REJECTS_FILE
    )
    paths = {"results": results.write_results(output / "results.json", document)}
    footnotes = [f"pruning rate: {RATE_MEANING}"]
    footnotes += [f"{key}: {text}" for key, text in config.get("measurements", {}).items()]
    if rejected:
        reasons = ", ".join(f"{reason} {count}" for reason, count in rejected.items())
        footnotes.append(f"rows the task left out: {sum(rejected.values())} ({reasons}), listed in {REJECTS_FILE}")
    paths.update(report.render_report(document, output, footnotes + notes + _estimate_lines(records)))
    return paths


def _estimate_lines(records: list[dict]) -> list[str]:
    """Per variant, the mean analytic activation estimate (only when memory was not measured): 0 or 1 footnote."""
    if any(r.get("activation_memory_gb") is not None for r in records):
        return []
    by_key = defaultdict(list)
    for r in records:
        if r.get("activation_estimate_gb") is not None:
            by_key[results.result_key(r["method"], r["rate"])].append(r["activation_estimate_gb"])
    if not by_key:
        return []
    cells = ", ".join(
        f"{k} {sum(v) / len(v):.3f}" for k, v in sorted(by_key.items(), key=lambda kv: results.key_order(kv[0]))
    )
    return [f"analytic activation estimate, GiB (not a measurement): {cells}"]


def write_pruning_maps(output: Path, records: list[dict], dataset) -> list[Path]:
    """One image per sample that has ``kept_times`` records: a row per variant."""
    by_id = defaultdict(list)
    for r in records:
        if r.get("kept_times") is not None:
            by_id[r["id"]].append(r)
    if not by_id:
        return []
    info = {row["id"]: row for row in dataset.select_columns(["id", "duration", "key_start", "key_end"])}
    paths = []
    for sample_id, rows in by_id.items():
        meta = info[sample_id]
        samples = [
            {
                "kept_times": r["kept_times"],
                "duration": meta["duration"],
                "key_start": meta["key_start"],
                "key_end": meta["key_end"],
                "label": results.result_key(r["method"], r["rate"]),
                "num_audio_tokens": r["audio_tokens_before"],
            }
            for r in rows
        ]
        title = f"{sample_id}: kept audio tokens per method (key sentence shaded)"
        paths.append(report.plot_pruning_map(Path(output) / "pruning_map" / f"{sample_id}.png", samples, title=title))
    return paths


__all__ = ["choices_note", "measurements", "write_run_outputs", "write_pruning_maps", "TINY_NOTE", "REJECTS_FILE"]
