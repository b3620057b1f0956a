"""``speechprune eval``: score a model on SPIRAL for several pruning methods and rates in one go.

    speechprune eval --model tiny --dataset DIR --config spiral \\
        --methods full,original,random,crop,speechprune --rates 0.2,0.4,0.6,0.8 --output runs/tiny

Every sample is asked once per *variant* (a method at a rate; ``full`` and ``original`` have
no rate and run once) and, with ``--circular``, once per rotation of its choices.

Several processes: the same command runs under ``torchrun --nproc_per_node N`` or
``accelerate launch``. Samples are split between processes with
``PartialState.split_between_processes``; each process appends its records to its own JSON
Lines file as they are made; the main process gathers the new ones (``gather_object``), checks
that the units (and so the ids) are exactly the dataset's, and writes ``samples.jsonl``,
``results.json``, ``table.md``, the plots and the pruning maps.

Resuming: run the same command again. Records on disk are kept and their units skipped (see
:mod:`speechprune.evaluation.checkpoint`); other arguments are refused with the difference
named. Random methods draw with SPEC's per-sample seed (the model receives ``sample_ids``), so
sharding, batching and resuming never change a selection.

What each cost column measures is in :mod:`speechprune.evaluation.evaluator` and in the
footnotes of ``table.md``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from speechprune.cli import RATE_MEANING
from speechprune.errors import UsageError
from speechprune.evaluation import checkpoint, fileio
from speechprune.sources import local_or_hub

# torch, transformers, datasets and matplotlib are imported where a run needs them, so that
# `speechprune eval --help` (which imports this module for `configure`) answers at once.
if TYPE_CHECKING:
    from speechprune.evaluation.evaluator import Variant

logger = logging.getLogger(__name__)

DEFAULT_METHODS = "full,original,random,crop,phase1,phase2,speechprune"
DEFAULT_RATES = "0.2,0.4,0.6,0.8"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``speechprune eval``'s arguments to ``parser``."""
    add = parser.add_argument
    add("--model", required=True, help="tiny (the embedded random tiny model), a local folder or a Hub id")
    add("--revision", default=None, help="pin the model's Hub revision (branch, tag or commit)")
    add("--dataset", required=True, help="a SPIRAL folder (speechprune build-spiral) or a Hub dataset id")
    add("--dataset-revision", default=None, help="pin the dataset's Hub revision")
    add("--config", required=True, choices=["spiral", "spiral_h"], help="dataset config")
    add("--methods", default=DEFAULT_METHODS, help=f"comma list of pruning methods (default {DEFAULT_METHODS})")
    add("--rates", default=DEFAULT_RATES, help=f"pruning rates, comma list (default {DEFAULT_RATES}); {RATE_MEANING}")
    add("--scoring", default="loglik", choices=["loglik", "generate"], help="answer scoring (SPEC section 5)")
    add("--max-new-tokens", type=int, default=16, help="greedy decoding length for --scoring generate")
    add("--circular", action="store_true", help="ask each question under its 4 choice rotations; all must be right")
    add("--query", default="user_text", choices=["user_text", "question"], help="the text that guides selection")
    add("--batch-size", type=int, default=1, help="samples per model call on each process")
    add("--seed", type=int, default=0, help="pruning seed; each sample draws with sha256(f'{seed}:{id}')")
    add("--limit", type=int, default=None, help="evaluate only the first N samples")
    add("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"], help="model dtype")
    add("--device-map", default=None, help="from_pretrained device_map (for example auto); default: one device")
    add("--trust-remote-code", action="store_true", help="load the model classes the Hub repo ships")
    add(
        "--flops-config",
        default=None,
        help="architecture of the LLM TFLOPs column: 'model' (the evaluated one), 'qwen2-audio-7b' or a "
        "config.json path (default: qwen2-audio-7b for the tiny model, else model)",
    )
    add(
        "--no-audio-cache",
        dest="audio_cache",
        action="store_false",
        help="encode the audio inside every model call instead of once per batch (slower; results are the same, "
        "and each prefill time and CUDA memory peak then comes from one whole call)",
    )
    add("--map-samples", type=int, default=3, help="samples drawn in the pruning map (the first with key times)")
    add("--output", required=True, help="output folder (an existing run there is resumed)")


def run_config(args: argparse.Namespace, variants: list[Variant], model_revision: str, dataset: dict) -> dict:
    """The arguments that decide the results, as stored in ``run_config.json``.

    ``--batch-size`` and the number of processes are left out on purpose: they change no
    selection and no answer beyond the last bits of floating point, and a resume after an
    out-of-memory error must be allowed to lower the batch size.
    """
    return {
        "model": args.model,
        "model_revision": model_revision,
        "dtype": args.dtype,
        "dataset": str(args.dataset),
        "dataset_fingerprint": dataset["fingerprint"],
        "config": args.config,
        "limit": args.limit,
        "variants": [[v.method, v.rate] for v in variants],
        "scoring": args.scoring,
        "max_new_tokens": args.max_new_tokens if args.scoring == "generate" else None,
        "circular": args.circular,
        "query": args.query,
        "seed": args.seed,
        "flops_config": args.flops_config,
        "map_samples": args.map_samples,
    }


def expected_keys(ids: list[str], variants: list[Variant], circular: bool) -> set:
    """Every ``(id, method, rate, rotation)`` a complete run holds."""
    from speechprune.evaluation.evaluator import rotations, unit_keys

    return {key for i in ids for key in unit_keys(i, variants, rotations(circular))}


def check_complete(records: list[dict], ids: list[str], variants: list[Variant], circular: bool) -> None:
    """Raise unless the records hold each expected unit exactly once, and the dataset's ids exactly.

    Raises:
        RuntimeError: naming missing, foreign and duplicated units, and missing or foreign ids.
    """
    keys = [checkpoint.record_key(r) for r in records]
    expected = expected_keys(ids, variants, circular)
    missing, extra = expected - set(keys), set(keys) - expected
    duplicated = len(keys) - len(set(keys))
    record_ids, dataset_ids = {r["id"] for r in records}, set(ids)
    if missing or extra or duplicated or record_ids != dataset_ids:
        raise RuntimeError(
            "the gathered records do not match the dataset: "
            f"{len(missing)} missing units (e.g. {sorted(missing, key=str)[:3]}), "
            f"{len(extra)} foreign units (e.g. {sorted(extra, key=str)[:3]}), {duplicated} duplicated; "
            f"ids missing {sorted(dataset_ids - record_ids)[:5]}, foreign ids {sorted(record_ids - dataset_ids)[:5]}"
        )


def canonical_order(records: list[dict], ids: list[str], variants: list[Variant]) -> list[dict]:
    """Records sorted by dataset position, then variant order, then rotation."""
    position = {i: n for n, i in enumerate(ids)}
    rank = {(v.method, v.rate): n for n, v in enumerate(variants)}
    return sorted(records, key=lambda r: (position[r["id"]], rank[(r["method"], r["rate"])], r["rotation"]))


def _map_sample_ids(dataset, count: int) -> frozenset:
    """The first ``count`` ids (dataset order) whose key sentence has known times."""
    if count <= 0:
        return frozenset()
    columns = dataset.select_columns(["id", "key_start"])
    return frozenset([row["id"] for row in columns if row["key_start"] is not None][:count])


def _cost_config(spec: str, model):
    """The architecture of the FLOPs and activation-estimate columns, and its bytes per element."""
    from speechprune.evaluation import efficiency

    if spec == "model":
        return model.config, model.dtype.itemsize
    # A named architecture is costed in bf16, the paper's setting.
    return (efficiency.QWEN2_AUDIO_7B_CONFIG if spec == "qwen2-audio-7b" else spec), 2


def _process_state():
    import torch
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    # accelerate sets up a CPU process group (gloo) only when told the run is on CPU; under torchrun
    # on a machine without CUDA nobody tells it, and every process would think it is alone.
    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available())


def _check_output(output: Path) -> None:
    """Refuse an ``--output`` that is a file, or a non-empty folder holding no run of ours (nothing is overwritten)."""
    if output.exists() and not output.is_dir():
        raise UsageError(f"--output: {output} is a file; give a folder (new, empty, or a run to resume)")
    ours = (output / checkpoint.RUN_CONFIG).exists() or (output / checkpoint.RECORDS_DIR).is_dir()
    if output.is_dir() and not ours and any(output.iterdir()):
        raise UsageError(
            f"--output: {output} is not empty and holds no speechprune eval run (no {checkpoint.RUN_CONFIG}); "
            "give a new or empty folder"
        )


def _open_output(state, output: Path, config: dict) -> list[dict]:
    """Check or store the run config, repair cut-short records, and return the records already made.

    Nothing is written before every check has passed: the stored config, then each record's run stamp.
    """
    # Every process compares before anyone writes, so a mismatch stops all of them together.
    _check_output(output)
    resumed = checkpoint.check_run_config(output, config)
    state.wait_for_everyone()
    if state.is_main_process:
        for path in (output / checkpoint.RECORDS_DIR).glob("rank-*.jsonl"):
            if fileio.repair_tail(path):  # only ever cuts a line a kill left unfinished
                logger.warning("dropped a cut-short last record in %s (the run was interrupted)", path)
    state.wait_for_everyone()  # nobody reads before the repair
    records = checkpoint.load_records(output, checkpoint.run_hash(config))
    if state.is_main_process and not resumed:
        checkpoint.write_run_config(output, config)
    return records


def _check_device_map(device_map: str | None) -> None:
    """``--device-map cuda...`` on a machine without CUDA is a mistake, not something to ignore."""
    import torch

    if device_map is not None and device_map.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device-map: {device_map!r} asks for CUDA, which this machine lacks; leave it out")


def evaluate(args: argparse.Namespace) -> dict | None:
    """Run (or resume) the evaluation and write every output.

    Returns:
        On the main process ``{"records": [...] (canonical order), "paths": {name: Path}}``;
        ``None`` on the others.
    """
    from accelerate.utils import gather_object
    from tqdm.auto import tqdm

    from speechprune.evaluation import outputs
    from speechprune.evaluation.evaluator import Evaluator, parse_variants, rotations
    from speechprune.evaluation.loading import dataset_identity, is_tiny, load_model, load_spiral

    if args.batch_size < 1:
        raise ValueError(f"batch_size: expected at least 1, got {args.batch_size}")
    if args.max_new_tokens < 1:
        raise ValueError(f"max_new_tokens: expected at least 1, got {args.max_new_tokens}")
    variants = parse_variants(args.methods, args.rates)
    _check_device_map(args.device_map)
    if not is_tiny(args.model):  # a mistyped folder is a missing folder, before anything slow happens
        local_or_hub(args.model, "--model", "model folder", names=("tiny",))
    local_or_hub(args.dataset, "--dataset", "SPIRAL folder")
    if args.flops_config is None:
        args.flops_config = "qwen2-audio-7b" if is_tiny(args.model) else "model"
    state = _process_state()
    output = Path(args.output)

    with state.main_process_first():  # the first load writes the datasets cache; the others read it
        dataset = load_spiral(args.dataset, args.config, args.limit, args.dataset_revision)
    ids = list(dataset["id"])
    if len(set(ids)) != len(ids):
        raise ValueError(f"dataset: {args.dataset} has repeated ids")
    identity = dataset_identity(dataset)
    if len(identity["audio_source"]) != 1:
        raise ValueError(f"dataset: expected one audio_source, got {identity['audio_source']} (not comparable)")
    model, processor, revision = load_model(
        args.model, args.revision, args.dtype, args.device_map, args.trust_remote_code
    )
    if args.device_map is None or (is_tiny(args.model) and args.device_map != "auto"):
        model.to(state.device if args.device_map is None else args.device_map)  # the tiny model has no device map
    config = run_config(args, variants, revision, identity)

    previous = _open_output(state, output, config)
    done = {checkpoint.record_key(r) for r in previous}

    cost_config, dtype_bytes = _cost_config(args.flops_config, model)
    with (
        checkpoint.RecordLog(checkpoint.rank_file(output, state.process_index), checkpoint.run_hash(config)) as log,
        state.split_between_processes(list(range(len(ids)))) as shard,
    ):
        evaluator = Evaluator(
            model,
            processor,
            dataset,
            variants=variants,
            rotations=rotations(args.circular),
            done=done,
            log=log,
            scoring=args.scoring,
            max_new_tokens=args.max_new_tokens,
            query=args.query,
            seed=args.seed,
            cost_config=cost_config,
            dtype_bytes=dtype_bytes,
            map_ids=_map_sample_ids(dataset, args.map_samples),
            audio_cache=args.audio_cache,
        )
        total = sum(evaluator.pending(i) for i in shard)
        if previous and state.is_main_process and not any(evaluator.pending(i) for i in range(len(ids))):
            print(
                f"speechprune eval: nothing left to do, all {len(previous)} records are in {output}; writing outputs"
            )
        with tqdm(total=total, desc="speechprune eval", disable=not state.is_main_process or total == 0) as progress:
            new = evaluator.run(list(shard), args.batch_size, args.config, progress)
    gathered = gather_object(new)
    if not state.is_main_process:
        return None

    records = previous + gathered
    check_complete(records, ids, variants, args.circular)
    records = canonical_order(records, ids, variants)
    fileio.write_jsonl(output / "samples.jsonl", records)
    paths = {"samples": output / "samples.jsonl"}
    config = results_config(args, variants, model, revision, identity, state.num_processes)
    notes = [outputs.TINY_NOTE] if is_tiny(args.model) else []
    paths.update(outputs.write_run_outputs(output, records, config, len(ids), notes))
    maps = outputs.write_pruning_maps(output, records, dataset)
    if maps:
        paths["pruning_map"] = maps[0].parent
    return {"records": records, "paths": paths}


def results_config(args, variants: list[Variant], model, revision: str, identity: dict, num_processes: int) -> dict:
    """The ``config`` block of results.json: what produced the numbers, and what each cost column measured."""
    import torch

    from speechprune.evaluation import outputs, provenance, results

    cuda = model.device.type == "cuda"
    device = torch.cuda.get_device_name(model.device) if cuda else str(model.device)
    architecture = {"qwen2-audio-7b": "Qwen2-Audio-7B", "model": f"evaluated model's ({args.model})"}
    return results.make_config(
        model_id=args.model,
        model_revision=revision,
        dataset_id=str(args.dataset),
        dataset_revision=provenance.dataset_revision(str(args.dataset), args.dataset_revision),
        dataset_fingerprint=identity["fingerprint"],
        audio_source=identity["audio_source"][0],
        scoring=args.scoring,
        circular=args.circular,
        pruning={"methods": [v.method for v in variants], "rates": sorted({v.rate for v in variants} - {None})},
        seeds={"pruning_seed": args.seed},
        num_processes=num_processes,
        query=args.query,
        dtype=str(model.dtype).removeprefix("torch."),
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens if args.scoring == "generate" else None,
        flops_config=args.flops_config,
        measurements=outputs.measurements(
            device, architecture.get(args.flops_config, args.flops_config), args.batch_size, cuda, args.audio_cache
        ),
    )


def _close_process_group() -> None:
    """Wait for every process, then close the process group (a no-op in a single process).

    A process that exits while its gloo group is alive aborts ("terminate called without an active
    exception"), and torchrun then kills the peers that are still writing the outputs.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def main(args: argparse.Namespace) -> int:
    done = evaluate(args)
    if done is not None:
        print(done["paths"]["table"].read_text(encoding="utf-8"))
        for name, path in done["paths"].items():
            print(f"{name}: {path}")
    _close_process_group()
    return 0


__all__ = ["configure", "main", "evaluate", "run_config", "check_complete", "expected_keys", "canonical_order"]
