"""``speechprune eval``: score a model on a task for several pruning methods and rates in one go.

    speechprune eval --model tiny --task spiral --dataset DIR \\
        --methods full,original,random,crop,speechprune --rates 0.2,0.4,0.6,0.8 --output runs/tiny
    speechprune eval --model tiny --task dream_tts_long --dataset DIR_OR_ID --output runs/dream

A task is a preset name or a YAML file (:mod:`speechprune.evaluation.tasks`); ``--config spiral``
is ``--task spiral``. Every sample is asked once per *variant* (a method at a rate; ``full`` and
``original`` have no rate and run once) and, with ``--circular``, once per rotation of its K
choices. Rows the task rejects are counted in ``results.json`` and listed in ``rejects.jsonl``.

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

from speechprune.errors import UsageError
from speechprune.evaluation import checkpoint, fileio
from speechprune.evaluation.tasks import Task, load_task, preset_names
from speechprune.modeling.pruning_settings import RATE_MEANING
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
    add("--task", default=None, help=f"a task preset ({', '.join(preset_names())}) or a task YAML file")
    add("--dataset", default=None, help="a dataset folder or Hub id (default: the task's own)")
    add("--dataset-revision", default=None, help="pin the dataset's Hub revision")
    add("--config", default=None, choices=["spiral", "spiral_h"], help="same as --task spiral / --task spiral_h")
    add("--methods", default=DEFAULT_METHODS, help=f"comma list of pruning methods (default {DEFAULT_METHODS})")
    add("--rates", default=DEFAULT_RATES, help=f"pruning rates, comma list (default {DEFAULT_RATES}); {RATE_MEANING}")
    add("--scoring", default="loglik", choices=["loglik", "generate"], help="answer scoring (SPEC section 5)")
    add("--max-new-tokens", type=int, default=16, help="greedy decoding length for --scoring generate")
    add("--circular", action="store_true", help="ask each question under its K choice rotations; all must be right")
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
    add("--attention-layer", type=int, default=2, help="llm_attention: the decoder layer that ranks (0-based)")
    add("--dart-pivots", type=int, default=8, help="dart: pivot tokens (the largest norms)")
    add("--map-samples", type=int, default=3, help="samples drawn in the pruning map (the first with key times)")
    add("--output", required=True, help="output folder (an existing run there is resumed)")


def resolve_task(args: argparse.Namespace) -> Task:
    """The task of ``--task`` (or of ``--config``, its SPIRAL-only spelling)."""
    if args.task is not None and args.config is not None and args.task != args.config:
        raise UsageError(f"--config: {args.config!r} disagrees with --task {args.task!r}; give one of them")
    name = args.task if args.task is not None else args.config
    if name is None:
        raise UsageError(f"--task: give a task: a preset ({', '.join(preset_names())}) or a task YAML file")
    return load_task(name)


def run_config(
    args: argparse.Namespace, variants: list[Variant], model_revision: str, dataset: dict, task: Task | None = None
) -> dict:
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
        "config": args.config if task is None else task.name,
        "task": None if task is None else task.describe(),
        "limit": args.limit,
        "variants": [[v.method, v.rate] for v in variants],
        "scoring": args.scoring,
        "max_new_tokens": args.max_new_tokens if args.scoring == "generate" else None,
        "circular": args.circular,
        "query": args.query,
        "seed": args.seed,
        "flops_config": args.flops_config,
        "map_samples": args.map_samples,
        **method_settings(args, variants),
    }


def method_settings(args: argparse.Namespace, variants: list[Variant]) -> dict:
    """The settings of SPEC section 8's methods that this run uses (``None`` for a method it does not run).

    ``None`` rather than an absent key keeps run configs written before these settings resumable.
    """
    methods = {v.method for v in variants}
    return {
        "attention_layer": args.attention_layer if "llm_attention" in methods else None,
        "dart_pivots": args.dart_pivots if "dart" in methods else None,
    }


def check_key_times(dataset, variants: list[Variant]) -> None:
    """``oracle`` needs every sample's key times (SPEC section 8): refuse the run before any model call."""
    if not any(v.method == "oracle" for v in variants):
        return
    if not {"key_start", "key_end"} <= set(dataset.column_names):
        raise UsageError("--methods: oracle needs key_start/key_end, and this dataset has no such columns")
    columns = dataset.select_columns(["id", "key_start", "key_end"])
    missing = [row["id"] for row in columns if row["key_start"] is None or row["key_end"] is None]
    if missing:
        raise UsageError(
            f"--methods: oracle needs key times, and {len(missing)} samples have none (e.g. {missing[:3]}); "
            "drop oracle or evaluate a dataset with key_start/key_end"
        )


def check_attention_layer(model, variants: list[Variant], layer: int) -> None:
    """``--attention-layer`` must name one of the model's decoder layers: refuse the run before any model call."""
    if not any(v.method == "llm_attention" for v in variants):
        return
    adapter = getattr(model, "adapter", None)
    count = None if adapter is None else len(adapter.decoder_layers(model))
    if layer < 0 or (count is not None and layer >= count):
        allowed = "a layer index >= 0" if count is None else f"0 to {count - 1} (the model has {count} decoder layers)"
        raise UsageError(f"--attention-layer: got {layer}; pass {allowed}")


def expected_keys(ids: list[str], variants: list[Variant], circular: bool, num_choices: dict | None = None) -> set:
    """Every ``(id, method, rate, rotation)`` a complete run holds (``num_choices``: K per id, default 4)."""
    from speechprune.evaluation.evaluator import rotations, unit_keys

    counts = num_choices or {}
    return {key for i in ids for key in unit_keys(i, variants, rotations(circular, counts.get(i, 4)))}


def check_complete(
    records: list[dict], ids: list[str], variants: list[Variant], circular: bool, num_choices: dict | None = None
) -> None:
    """Raise unless the records hold each expected unit exactly once, and the dataset's ids exactly.

    Raises:
        RuntimeError: naming missing, foreign and duplicated units, and missing or foreign ids.
    """
    keys = [checkpoint.record_key(r) for r in records]
    expected = expected_keys(ids, variants, circular, num_choices)
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
    if count <= 0 or not {"id", "key_start"} <= set(dataset.column_names):  # only SPIRAL has key-sentence times
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
    from speechprune.evaluation.evaluator import Evaluator, parse_variants
    from speechprune.evaluation.loading import is_tiny, load_model
    from speechprune.evaluation.tasks.data import load_task_data

    if args.batch_size < 1:
        raise ValueError(f"batch_size: expected at least 1, got {args.batch_size}")
    if args.max_new_tokens < 1:
        raise ValueError(f"max_new_tokens: expected at least 1, got {args.max_new_tokens}")
    variants = parse_variants(args.methods, args.rates)
    task = resolve_task(args)
    _check_device_map(args.device_map)
    if not is_tiny(args.model):  # a mistyped folder is a missing folder, before anything slow happens
        local_or_hub(args.model, "--model", "model folder", names=("tiny",))
    if args.dataset is not None:  # a mistyped folder is a missing folder, before anything slow happens
        local_or_hub(
            args.dataset, "--dataset", "SPIRAL folder" if task.name in ("spiral", "spiral_h") else "dataset folder"
        )
    if args.flops_config is None:
        args.flops_config = "qwen2-audio-7b" if is_tiny(args.model) else "model"
    state = _process_state()
    output = Path(args.output)

    with state.main_process_first():  # the first load writes the datasets cache; the others read it
        data = load_task_data(task, args.dataset, args.limit, args.dataset_revision)
    args.dataset = data.dataset_id
    dataset = data.accepted
    ids = data.ids
    if not ids:
        raise UsageError(f"--dataset: no row of {data.dataset_id} passed the task's checks: {data.reject_counts()}")
    check_key_times(dataset, variants)
    identity = data.identity()
    if len(identity["audio_source"]) > 1:
        raise ValueError(f"dataset: expected one audio_source, got {identity['audio_source']} (not comparable)")
    model, processor, revision = load_model(
        args.model, args.revision, args.dtype, args.device_map, args.trust_remote_code
    )
    if args.device_map is None or (is_tiny(args.model) and args.device_map != "auto"):
        model.to(state.device if args.device_map is None else args.device_map)  # the tiny model has no device map
    check_attention_layer(model, variants, args.attention_layer)
    config = run_config(args, variants, revision, identity, task)

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
            data,
            variants=variants,
            circular=args.circular,
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
            attention_layer=args.attention_layer,
            dart_pivots=args.dart_pivots,
        )
        total = sum(evaluator.pending(i) for i in shard)
        if previous and state.is_main_process and not any(evaluator.pending(i) for i in range(len(ids))):
            print(
                f"speechprune eval: nothing left to do, all {len(previous)} records are in {output}; writing outputs"
            )
        with tqdm(total=total, desc="speechprune eval", disable=not state.is_main_process or total == 0) as progress:
            new = evaluator.run(list(shard), args.batch_size, task.name, progress)
    gathered = gather_object(new)
    if not state.is_main_process:
        return None

    records = previous + gathered
    check_complete(records, ids, variants, args.circular, {row["id"]: len(row["choices"]) for row in data.rows})
    records = canonical_order(records, ids, variants)
    fileio.write_jsonl(output / "samples.jsonl", records)
    fileio.write_jsonl(output / outputs.REJECTS_FILE, data.rejects)
    paths = {"samples": output / "samples.jsonl", "rejects": output / outputs.REJECTS_FILE}
    config = results_config(args, variants, model, revision, identity, state.num_processes, task)
    notes = [outputs.TINY_NOTE] if is_tiny(args.model) else []
    notes.append(outputs.choices_note(task.name, [len(row["choices"]) for row in data.rows]))
    paths.update(outputs.write_run_outputs(output, records, config, len(ids), notes, data.reject_counts()))
    maps = outputs.write_pruning_maps(output, records, dataset)
    if maps:
        paths["pruning_map"] = maps[0].parent
    return {"records": records, "paths": paths}


def results_config(
    args, variants: list[Variant], model, revision: str, identity: dict, num_processes: int, task: Task
) -> dict:
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
        audio_source=identity["audio_source"][0] if identity["audio_source"] else None,
        scoring=args.scoring,
        circular=args.circular,
        pruning={
            "methods": [v.method for v in variants],
            "rates": sorted({v.rate for v in variants} - {None}),
            **{name: value for name, value in method_settings(args, variants).items() if value is not None},
        },
        seeds={"pruning_seed": args.seed},
        num_processes=num_processes,
        query=args.query,
        dtype=str(model.dtype).removeprefix("torch."),
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens if args.scoring == "generate" else None,
        flops_config=args.flops_config,
        task=task.describe(),
        limit=args.limit,  # a run on the first N samples only; `submit` refuses it unless --allow-partial
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


__all__ = [
    "configure",
    "main",
    "evaluate",
    "run_config",
    "check_complete",
    "expected_keys",
    "canonical_order",
    "resolve_task",
]
