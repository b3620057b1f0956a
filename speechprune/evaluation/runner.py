"""``speechprune eval``: score a model on SPIRAL for several pruning methods and rates in one go.

    speechprune eval --model tiny --dataset DIR --config spiral \\
        --methods full,original,random,crop,speechprune --rates 0.2,0.4,0.6,0.8 --output runs/tiny

Every sample is asked once per *variant* (a method at a rate; ``full`` and ``original`` have
no rate and run once) and, with ``--circular``, once per rotation of its choices. The
processor inputs of a batch are built once per rotation and reused by every variant.

The same command runs under ``accelerate launch`` or ``torchrun``: samples are split between
processes with ``PartialState.split_between_processes``, every process appends its
per-sample records to its own JSON Lines file as they are made, and the main process gathers
them (``gather_object``), checks that the ids are exactly the dataset's, and writes
``samples.jsonl``, ``results.json``, the Table-1-style table, plots and a pruning map.

Resuming: run the same command again. The records already on disk are kept and their units
skipped (see :mod:`speechprune.evaluation.checkpoint`); different arguments are refused.
Random methods draw with SPEC's per-sample seed (the model receives ``sample_ids``), so
sharding, batching and resuming never change a selection.

What the cost columns measure (per record):

- ``llm_flops``: LLM prefill FLOPs from :func:`efficiency.llm_prefill_flops` for the
  sequence the language model actually sees (text tokens + kept audio tokens), counted on
  ``--flops-config`` (default: the evaluated model's own architecture).
- ``prefill_ms``: wall time of the model's first forward call on the prompt (audio encoder,
  selection and LLM prefill; CUDA-synchronised on a GPU), divided by the batch size.
- ``peak_memory_bytes`` / ``activation_memory_bytes``: CUDA peak allocated memory during that
  call, and that peak minus what was allocated before it; ``None`` on CPU.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from speechprune.evaluation import checkpoint, efficiency
from speechprune.evaluation.loading import dataset_identity, decode_audio, load_model, load_spiral
from speechprune.evaluation.scoring import (
    LETTERS,
    generated_answers,
    letter_token_ids,
    loglik_answers,
    prompt_hash,
    rotate_choices,
)

logger = logging.getLogger(__name__)

DEFAULT_METHODS = "full,original,random,crop,phase1,phase2,speechprune"
DEFAULT_RATES = "0.2,0.4,0.6,0.8"
UNRATED = ("full", "original")  # methods without a pruning rate
# Record fields that are measurements of this machine and moment, not results: a resumed or
# re-sharded run reproduces every other field exactly.
MEASURED_FIELDS = ("prefill_ms", "peak_memory_bytes", "activation_memory_bytes", "batch_size")


@dataclass(frozen=True)
class Variant:
    """One method at one pruning rate (``rate`` is ``None`` for ``full`` and ``original``)."""

    method: str
    rate: float | None

    @property
    def label(self) -> str:
        return self.method if self.rate is None else f"{self.method}@{self.rate:g}"


def parse_variants(methods: str, rates: str) -> list[Variant]:
    """``"full,speechprune"``, ``"0.2,0.8"`` -> ``[full, speechprune@0.2, speechprune@0.8]``.

    ``none`` is accepted for ``full``. Rated methods are crossed with every rate; ``full`` and
    ``original`` appear once. Order follows the arguments.

    Example:
        >>> [v.label for v in parse_variants("original,none,random", "0.2,0.8")]
        ['original', 'full', 'random@0.2', 'random@0.8']
    """
    from speechprune.modeling.pruning import METHODS

    names = [m.strip() for m in methods.split(",") if m.strip()]
    names = ["full" if m == "none" else m for m in names]
    unknown = [m for m in names if m not in METHODS]
    if not names or unknown:
        raise ValueError(f"methods: expected a comma list of {', '.join(METHODS)} (or none); got {methods!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"methods: {methods!r} names a method twice")
    try:
        rate_values = [float(r) for r in rates.split(",") if r.strip()]
    except ValueError as err:
        raise ValueError(f"rates: expected a comma list of numbers, got {rates!r}") from err
    if any(not 0.0 <= r < 1.0 for r in rate_values) or len(set(rate_values)) != len(rate_values):
        raise ValueError(f"rates: expected distinct rates in [0, 1), got {rates!r}")
    if not rate_values and any(m not in UNRATED for m in names):
        raise ValueError("rates: the rated methods need at least one rate")
    variants = []
    for name in names:
        variants += [Variant(name, None)] if name in UNRATED else [Variant(name, r) for r in rate_values]
    return variants


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``speechprune eval``'s arguments to ``parser``."""
    add = parser.add_argument
    add("--model", required=True, help="tiny (the embedded random tiny model), a local folder or a Hub id")
    add("--revision", default=None, help="pin the model's Hub revision (branch, tag or commit)")
    add("--dataset", required=True, help="a SPIRAL folder (speechprune build-spiral) or a Hub dataset id")
    add("--dataset-revision", default=None, help="pin the dataset's Hub revision")
    add("--config", required=True, choices=["spiral", "spiral_h"], help="dataset config")
    add("--methods", default=DEFAULT_METHODS, help=f"comma list of pruning methods (default {DEFAULT_METHODS})")
    add("--rates", default=DEFAULT_RATES, help=f"comma list of pruning rates in [0, 1) (default {DEFAULT_RATES})")
    add("--scoring", default="loglik", choices=["loglik", "generate"], help="answer scoring (SPEC section 5)")
    add("--max-new-tokens", type=int, default=16, help="greedy decoding length for --scoring generate")
    add("--circular", action="store_true", help="ask each question under its 4 choice rotations; all must be right")
    add("--query", default="user_text", choices=["user_text", "question"], help="the text that guides selection")
    add("--batch-size", type=int, default=1, help="samples per forward call on each process")
    add("--seed", type=int, default=0, help="pruning seed; each sample draws with sha256(f'{seed}:{id}')")
    add("--limit", type=int, default=None, help="evaluate only the first N samples")
    add("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"], help="model dtype")
    add("--device-map", default=None, help="from_pretrained device_map (for example auto); default: one device")
    add("--trust-remote-code", action="store_true", help="load the model classes the Hub repo ships")
    add(
        "--flops-config",
        default="model",
        help="architecture for the LLM FLOPs column: 'model' (the evaluated one), 'qwen2-audio-7b' or a config.json",
    )
    add("--map-samples", type=int, default=3, help="samples whose kept-token times are kept for the pruning map")
    add("--output", required=True, help="output folder (an existing run there is resumed)")


def run_config(args: argparse.Namespace, model_revision: str, dataset: dict) -> dict:
    """The arguments that decide the results, as stored in ``run_config.json``.

    ``--batch-size`` and the number of processes are left out on purpose: they change neither
    a selection nor a record beyond the last bits of floating point, and a resume after an
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
        "variants": [[v.method, v.rate] for v in args.variants],
        "scoring": args.scoring,
        "max_new_tokens": args.max_new_tokens if args.scoring == "generate" else None,
        "circular": args.circular,
        "query": args.query,
        "seed": args.seed,
        "flops_config": args.flops_config,
        "map_samples": args.map_samples,
    }


class PrefillMeter:
    """Time (and on CUDA, measure memory of) the first forward call of ``model`` in a block.

    ``generate`` calls ``forward`` once on the whole prompt, then once per new token; the
    first call is the prefill. A forward hook also copies ``model.last_selection`` right after
    that call, before decoding steps could touch it.
    """

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.cuda = next(model.parameters()).device.type == "cuda"
        self.ms = self.peak = self.activation = self._start = None
        self.selection = None

    def _before(self, module, args):
        if self._start is not None:  # a decoding step after the prefill
            return
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._allocated = torch.cuda.memory_allocated()
        self._start = time.perf_counter()

    def _after(self, module, args, output):
        if self.ms is not None:
            return
        if self.cuda:
            torch.cuda.synchronize()
            self.peak = int(torch.cuda.max_memory_allocated())
            self.activation = self.peak - self._allocated
        self.ms = (time.perf_counter() - self._start) * 1000.0
        self.selection = list(module.last_selection)

    def __enter__(self) -> PrefillMeter:
        self._hooks = [
            self.model.register_forward_pre_hook(self._before),
            self.model.register_forward_hook(self._after),
        ]
        return self

    def __exit__(self, *exc) -> None:
        for hook in self._hooks:
            hook.remove()


def _cost_config(spec: str, model):
    """The architecture the FLOPs and activation-estimate columns are computed for."""
    if spec == "model":
        return model.config
    if spec == "qwen2-audio-7b":
        return efficiency.QWEN2_AUDIO_7B_CONFIG
    return spec


class Evaluator:
    """Runs the work units of one process and writes their records."""

    def __init__(self, args, model, processor, dataset, ids, done: set, log: checkpoint.RecordLog, map_ids: set):
        self.args = args
        self.ids = ids
        self.model = model
        self.processor = processor
        self.dataset = dataset
        self.done = done
        self.log = log
        self.map_ids = map_ids
        self.rotations = range(len(LETTERS)) if args.circular else range(1)
        self.letter_ids = letter_token_ids(processor.tokenizer) if args.scoring == "loglik" else None
        self.cost_config = _cost_config(args.flops_config, model)
        # Bytes per element for the activation estimate: the model's own dtype when the costs are
        # for the evaluated model, bf16 (the paper's setting) for a named architecture.
        self.dtype_bytes = model.dtype.itemsize if args.flops_config == "model" else 2
        self.audio_token_id = model.config.audio_token_id
        self.device = model.device

    def pending(self, sample_id: str) -> int:
        """How many of this sample's units are still to do."""
        keys = ((sample_id, v.method, v.rate, r) for v in self.args.variants for r in self.rotations)
        return sum(key not in self.done for key in keys)

    def run(self, indices: list[int], progress) -> list[dict]:
        """Evaluate the samples at ``indices`` (this process's shard) in batches; return new records."""
        new = []
        size = self.args.batch_size
        # Batches are cut from the whole shard, finished or not, so that a resumed run puts every
        # sample in the same batch (same padding) as an uninterrupted one.
        for start in range(0, len(indices), size):
            batch = indices[start : start + size]
            if any(self.pending(self.ids[i]) for i in batch):
                new += self._run_batch([self.dataset[i] for i in batch], progress)
        return new

    def _run_batch(self, rows: list[dict], progress) -> list[dict]:
        waves = [decode_audio(row["audio"]).numpy() for row in rows]
        ids = [row["id"] for row in rows]
        new = []
        for rotation in self.rotations:
            todo = [
                v for v in self.args.variants if any((i, v.method, v.rate, rotation) not in self.done for i in ids)
            ]
            if not todo:
                continue
            asked = [rotate_choices(list(row["choices"]), row["answer"], rotation) for row in rows]
            prompts = [
                self.processor.spiral_prompt(row["question"], choices) for row, (choices, _) in zip(rows, asked)
            ]
            inputs = self.processor(
                text=prompts,
                audio=waves,
                sampling_rate=16000,
                return_tensors="pt",
                padding=True,
                query=self.args.query,
            ).to(self.device)
            inputs["input_features"] = inputs["input_features"].to(self.model.dtype)
            for variant in todo:
                answers, meter = self._ask(inputs, variant, ids, [c for c, _ in asked])
                for j, row in enumerate(rows):
                    key = (row["id"], variant.method, variant.rate, rotation)
                    if key in self.done:
                        continue
                    record = self._record(
                        row, variant, rotation, prompts[j], asked[j][1], answers[j], inputs, j, meter
                    )
                    self.log.append(record)
                    self.done.add(key)
                    new.append(record)
                    progress.update(1)
        return new

    def _ask(self, inputs, variant: Variant, ids: list[str], choices: list[list[str]]):
        pruning = {
            "pruning_method": variant.method,
            "pruning_rate": 0.0 if variant.rate is None else variant.rate,
            "pruning_seed": self.args.seed,
            "sample_ids": ids,
        }
        with torch.no_grad(), PrefillMeter(self.model) as meter:
            if self.args.scoring == "loglik":
                logits = self.model(**inputs, **pruning).logits
                answers = loglik_answers(logits[:, -1], self.letter_ids)
            else:
                out = self.model.generate(
                    **inputs, **pruning, max_new_tokens=self.args.max_new_tokens, do_sample=False
                )
                answers = generated_answers(out[:, inputs["input_ids"].shape[1] :], self.processor.tokenizer, choices)
        return answers, meter

    def _record(self, row, variant, rotation, prompt, gold, answer, inputs, j, meter) -> dict:
        spans = meter.selection[j]
        spans = spans if isinstance(spans, list) else [spans]
        before = sum(int(s["num_audio_tokens"]) for s in spans)
        kept = sum(int(s["num_kept"]) for s in spans)
        mask = inputs["attention_mask"][j].bool()
        text_tokens = int(mask.sum()) - int((inputs["input_ids"][j][mask] == self.audio_token_id).sum())
        batch = inputs["input_ids"].shape[0]
        letter = answer["letter"]
        record = {
            "id": row["id"],
            "config": self.args.config,
            "category": row.get("category"),
            "method": variant.method,
            "rate": variant.rate,
            "rotation": rotation,
            "prompt_hash": prompt_hash(prompt),
            "output": answer.get("text", letter),
            "parsed": letter,
            "gold": gold,
            "correct": letter == gold,
            "audio_tokens": before,
            "audio_tokens_kept": kept,
            "text_tokens": text_tokens,
            "llm_tokens": text_tokens + kept,
            "llm_flops": efficiency.llm_prefill_flops(self.cost_config, text_tokens + kept),
            "activation_estimate_bytes": efficiency.activation_memory_estimate(
                self.cost_config, text_tokens + kept, self.dtype_bytes
            )["total"],
            "prefill_ms": meter.ms / batch,
            "batch_size": batch,
            "peak_memory_bytes": meter.peak,
            "activation_memory_bytes": meter.activation,
        }
        if "logprobs" in answer:
            record["logprobs"] = answer["logprobs"]
        if row["id"] in self.map_ids and rotation == 0:
            record["kept_times"] = [round(float(t), 3) for s in spans for t in s["times"]]
        return record


def expected_keys(ids: list[str], variants: list[Variant], circular: bool) -> set:
    """Every ``(id, method, rate, rotation)`` a complete run holds."""
    rotations = range(len(LETTERS)) if circular else range(1)
    return {(i, v.method, v.rate, r) for i in ids for v in variants for r in rotations}


def check_complete(records: list[dict], ids: list[str], variants: list[Variant], circular: bool) -> None:
    """Raise unless the records hold each expected unit exactly once and nothing else.

    Raises:
        RuntimeError: names missing, duplicated or foreign units (and ids).
    """
    keys = [checkpoint.record_key(r) for r in records]
    expected = expected_keys(ids, variants, circular)
    missing = expected - set(keys)
    extra = set(keys) - expected
    duplicated = len(keys) - len(set(keys))
    record_ids, dataset_ids = {r["id"] for r in records}, set(ids)
    if missing or extra or duplicated or record_ids != dataset_ids:
        raise RuntimeError(
            "the gathered records do not match the dataset: "
            f"{len(missing)} missing units (e.g. {sorted(missing, key=str)[:3]}), "
            f"{len(extra)} foreign units (e.g. {sorted(extra, key=str)[:3]}), {duplicated} duplicates; "
            f"ids missing {sorted(dataset_ids - record_ids)[:5]}, ids foreign {sorted(record_ids - dataset_ids)[:5]}"
        )


def canonical_order(records: list[dict], ids: list[str], variants: list[Variant]) -> list[dict]:
    """Sort records by dataset position, then variant order, then rotation."""
    position = {i: n for n, i in enumerate(ids)}
    rank = {(v.method, v.rate): n for n, v in enumerate(variants)}
    return sorted(records, key=lambda r: (position[r["id"]], rank[(r["method"], r["rate"])], r["rotation"]))


def evaluate(args: argparse.Namespace) -> list[dict] | None:
    """Run (or resume) the evaluation; the main process returns every record in canonical order.

    Other processes return ``None``. The records are also written to ``OUTPUT/samples.jsonl``.
    """
    from accelerate import PartialState
    from accelerate.utils import gather_object
    from tqdm.auto import tqdm

    if args.batch_size < 1:
        raise ValueError(f"batch_size: expected at least 1, got {args.batch_size}")
    if args.max_new_tokens < 1:
        raise ValueError(f"max_new_tokens: expected at least 1, got {args.max_new_tokens}")
    args.variants = parse_variants(args.methods, args.rates)
    state = PartialState()
    output = Path(args.output)

    with state.main_process_first():
        dataset = load_spiral(args.dataset, args.config, args.limit, args.dataset_revision)
    ids = list(dataset["id"])
    if len(set(ids)) != len(ids):
        raise ValueError(f"dataset: {args.dataset} has repeated ids")
    model, processor, revision = load_model(
        args.model, args.revision, args.dtype, args.device_map, args.trust_remote_code
    )
    if args.device_map is None:
        model.to(state.device)
    config = run_config(args, revision, dataset_identity(dataset))

    # Every process compares before anyone writes, so a mismatch stops all of them together.
    resumed = checkpoint.check_run_config(output, config)
    state.wait_for_everyone()
    if state.is_main_process:
        if not resumed:
            checkpoint.write_run_config(output, config)
        for path in (output / checkpoint.RECORDS_DIR).glob("rank-*.jsonl"):
            if checkpoint.repair_tail(path):
                logger.warning("dropped a cut-short last record in %s (the run was interrupted)", path)
    state.wait_for_everyone()
    previous = checkpoint.load_records(output)
    done = {checkpoint.record_key(r) for r in previous}

    map_ids = set(_map_sample_ids(dataset, args.map_samples))
    log = checkpoint.RecordLog(checkpoint.rank_file(output, state.process_index))
    with state.split_between_processes(list(range(len(ids)))) as shard, log:
        evaluator = Evaluator(args, model, processor, dataset, ids, done, log, map_ids)
        total = sum(evaluator.pending(ids[i]) for i in shard)
        with tqdm(total=total, desc="speechprune eval", disable=not state.is_main_process) as progress:
            new = evaluator.run(list(shard), progress)
    gathered = gather_object(new)
    if not state.is_main_process:
        return None
    records = previous + gathered
    check_complete(records, ids, args.variants, args.circular)
    records = canonical_order(records, ids, args.variants)
    checkpoint.write_jsonl(output / "samples.jsonl", records)
    return records


def _map_sample_ids(dataset, count: int) -> list[str]:
    """The first ``count`` ids (dataset order) whose key sentence has known times."""
    if count <= 0:
        return []
    columns = dataset.select_columns(["id", "key_start"])
    return [row["id"] for row in columns if row["key_start"] is not None][:count]


def main(args: argparse.Namespace) -> int:
    records = evaluate(args)
    if records is not None:
        print(f"wrote {len(records)} records to {Path(args.output) / 'samples.jsonl'}")
    return 0


__all__ = [
    "configure",
    "main",
    "evaluate",
    "parse_variants",
    "Variant",
    "PrefillMeter",
    "check_complete",
    "expected_keys",
    "MEASURED_FIELDS",
]
