"""The work loop of one process: ask the model every pending unit of its samples, write records.

A *unit* is one sample asked once: ``(id, method, rate, rotation)``; with ``--circular`` a
question with K choices has the K rotations 0..K-1. Samples go through the model in batches;
per batch and rotation the processor inputs are built once and reused by every variant (a
method at a rate), since every method runs on the same inputs.

A record (one JSON line) holds the fields of :mod:`speechprune.evaluation.results` plus:
``rotation``, ``prompt_hash``, ``raw_output`` (generated text, or the winning letter for
``loglik``), ``logprobs`` (``loglik``: log-probabilities of the K letters), ``audio_tokens_before`` /
``audio_tokens_after``, ``text_tokens``, ``llm_tokens`` (what the language model prefilled),
``llm_flops``, ``activation_estimate_gb`` (analytic, from the token count), the measurements
``prefill_ms``, ``peak_memory_gb``, ``activation_memory_gb`` and ``batch_size``
(:data:`MEASURED_FIELDS`), ``key_recall`` (:func:`record_key_recall`), ``token_seconds`` (seconds
per audio token), ``kept_mask`` (which audio tokens were kept, :mod:`speechprune.evaluation.kept`;
spans concatenated in prompt order), and for the pruning-map samples ``kept_times`` (seconds).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch

from speechprune.evaluation import efficiency
from speechprune.evaluation.kept import encode_mask
from speechprune.evaluation.loading import SAMPLING_RATE, decode_audio
from speechprune.evaluation.measure import EncoderCache, PrefillMeter
from speechprune.evaluation.scoring import (
    generated_answers,
    letter_token_ids,
    loglik_answers,
    prompt_hash,
    rotate_choices,
)

UNRATED = ("full", "original")  # methods without a pruning rate
# Record fields that measure this machine and moment rather than the model's answers: a resumed
# or re-sharded run reproduces every other field exactly.
MEASURED_FIELDS = ("prefill_ms", "peak_memory_gb", "activation_memory_gb", "batch_size")
GIB = 1024**3


@dataclass(frozen=True)
class Variant:
    """One method at one pruning rate (``rate`` is ``None`` for ``full`` and ``original``)."""

    method: str
    rate: float | None


def parse_variants(methods: str, rates: str) -> list[Variant]:
    """``"full,speechprune"``, ``"0.2,0.8"`` -> ``[full, speechprune@0.2, speechprune@0.8]``.

    ``none`` is accepted for ``full``. Rated methods are crossed with every rate; ``full`` and
    ``original`` appear once. Order follows the arguments.

    Example:
        >>> [(v.method, v.rate) for v in parse_variants("original,none,random", "0.2,0.8")]
        [('original', None), ('full', None), ('random', 0.2), ('random', 0.8)]
    """
    import difflib

    from speechprune.errors import UsageError
    from speechprune.modeling.pruning import METHOD_ALIASES, METHODS

    names = [m.strip() for m in methods.split(",") if m.strip()]
    names = [METHOD_ALIASES.get(m, m) for m in names]
    unknown = [m for m in names if m not in METHODS]
    if not names or unknown:
        close = difflib.get_close_matches(unknown[0], METHODS, n=1) if unknown else []
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UsageError(
            f"--methods: {', '.join(unknown) or 'nothing'} is no method{hint}; "
            f"give a comma list of {', '.join(METHODS)} (or none)"
        )
    if len(set(names)) != len(names):
        raise UsageError(f"--methods: {methods!r} names a method twice; name each once")
    try:
        rate_values = [float(r) for r in rates.split(",") if r.strip()]
    except ValueError:
        raise UsageError(f"--rates: expected a comma list of numbers such as 0.2,0.8, got {rates!r}") from None
    if any(not 0.0 <= r < 1.0 for r in rate_values) or len(set(rate_values)) != len(rate_values):
        raise UsageError(
            f"--rates: {rates!r}: each rate is the fraction of the first min(N, 750) audio tokens removed, "
            "so give distinct rates in [0, 1), such as 0.2,0.8"
        )
    if not rate_values and any(m not in UNRATED for m in names):
        raise UsageError("--rates: the rated methods need at least one rate, such as --rates 0.2")
    variants = []
    for name in names:
        variants += [Variant(name, None)] if name in UNRATED else [Variant(name, r) for r in rate_values]
    return variants


def rotations(circular: bool, num_choices: int = 4) -> range:
    """The rotations a question is asked under: the K of its choices with ``--circular``, else only 0."""
    return range(num_choices) if circular else range(1)


def unit_keys(sample_id: str, variants: list[Variant], rotations: range) -> list[tuple]:
    """The ``(id, method, rate, rotation)`` keys of one sample (see ``checkpoint.record_key``)."""
    return [(sample_id, v.method, v.rate, r) for v in variants for r in rotations]


class Evaluator:
    """Asks the model the pending units of one process's samples and logs a record per unit.

    Args:
        model, processor: a SpeechPrune model (``last_selection`` after each call) and its
            long-audio processor.
        data: the task's rows (:class:`speechprune.evaluation.tasks.data.TaskData`), audio decoding to 16 kHz.
        variants: what to ask each sample; circular: each question under the K rotations of its choices.
        done: keys already on disk; units in it are skipped, new ones are added.
        log: where records go (``append(record)``).
        scoring: ``loglik`` or ``generate``; max_new_tokens: decoding length for ``generate``.
        query: the processor's ``query`` (``user_text`` or ``question``).
        seed: the pruning seed (per-sample seeds come from it and the sample id).
        cost_config: architecture for ``llm_flops`` and ``activation_estimate_gb``; dtype_bytes:
            its bytes per element for the estimate.
        map_ids: samples whose kept-token times go into their rotation-0 records.
        attention_layer: ``llm_attention``'s decoder layer (0-based); dart_pivots: ``dart``'s pivot count.
        audio_cache: encode each batch's audio once and reuse it for every variant and rotation
            (:class:`EncoderCache`; results are identical). The encoder's time is then added to
            each prefill time; on CUDA the memory peaks of the reusing calls leave the encoder out.
    """

    def __init__(
        self,
        model,
        processor,
        data,
        *,
        variants: list[Variant],
        circular: bool = False,
        done: set,
        log,
        scoring: str = "loglik",
        max_new_tokens: int = 16,
        query: str = "user_text",
        seed: int = 0,
        cost_config=None,
        dtype_bytes: int = 2,
        map_ids: frozenset = frozenset(),
        audio_cache: bool = True,
        attention_layer: int = 2,
        dart_pivots: int = 8,
    ):
        self.model, self.processor, self.data = model, processor, data
        self.ids = data.ids
        self.counts = [len(row["choices"]) for row in data.rows]  # K per sample
        self.variants, self.circular, self.done, self.log = variants, circular, done, log
        self.scoring, self.max_new_tokens, self.query, self.seed = scoring, max_new_tokens, query, seed
        self.cost_config = model.config if cost_config is None else cost_config
        self.dtype_bytes = dtype_bytes
        self.map_ids = map_ids
        self.audio_cache = audio_cache
        # SPEC section 8's own settings, sent only with their method so that every other call is unchanged.
        self.method_settings = {
            "llm_attention": {"attention_layer": attention_layer},
            "dart": {"dart_pivots": dart_pivots},
        }
        self.token_seconds = token_seconds(model)
        # The letters every sample may need (SPIRAL: A-D); a tokenizer that splits one fails here, before any work.
        most = max(self.counts, default=4)
        self.letter_ids = letter_token_ids(processor.tokenizer, most) if scoring == "loglik" else None
        self.warm = False

    def pending(self, index: int) -> int:
        """How many units of the sample at ``index`` are still to do."""
        units = unit_keys(self.ids[index], self.variants, rotations(self.circular, self.counts[index]))
        return sum(key not in self.done for key in units)

    def run(self, indices: list[int], batch_size: int, config: str, progress=None) -> list[dict]:
        """Evaluate the samples at ``indices`` in batches of ``batch_size``; return the new records.

        Batches are cut from the whole list, finished samples included, so that a resumed run puts
        every sample in the same batch (hence the same padding and arithmetic) as an uninterrupted
        one; a batch with nothing pending is skipped without decoding its audio.
        """
        new = []
        for start in range(0, len(indices), batch_size):
            batch = indices[start : start + batch_size]
            if any(self.pending(i) for i in batch):
                new += self._run_batch([self.data.example(i) for i in batch], config, progress)
        return new

    def _run_batch(self, batch: list[dict], config: str, progress) -> list[dict]:
        all_waves = [decode_audio(row["audio"]).numpy() for row in batch]
        new = []
        audio = None  # the first rotation's feature tensors, reused by the others (same audio)
        with EncoderCache(self.model) if self.audio_cache else nullcontext() as cache:
            for rotation in range(max(len(rotations(self.circular, len(row["choices"]))) for row in batch)):
                # Under --circular a question with fewer choices has no rotation this far: it sits this one out.
                active = [j for j, row in enumerate(batch) if rotation < len(row["choices"])]
                rows, waves = [batch[j] for j in active], [all_waves[j] for j in active]
                ids = [row["id"] for row in rows]
                todo = [v for v in self.variants if any((i, v.method, v.rate, rotation) not in self.done for i in ids)]
                if not todo:
                    continue
                asked = [rotate_choices(list(row["choices"]), row["answer"], rotation) for row in rows]
                prompts = [self.processor.spiral_prompt(row["question"], c) for row, (c, _) in zip(rows, asked)]
                inputs = self.processor(
                    text=prompts,
                    audio=waves,
                    sampling_rate=SAMPLING_RATE,
                    return_tensors="pt",
                    padding=True,
                    query=self.query,
                ).to(self.model.device)
                inputs["input_features"] = inputs["input_features"].to(self.model.dtype)
                if len(active) == len(batch):  # the same audio as the first rotation: reuse its tensors
                    if audio is None:
                        audio = (inputs["input_features"], inputs["feature_attention_mask"])
                    inputs["input_features"], inputs["feature_attention_mask"] = audio
                key_times = [sample_key_times(row) for row in rows]
                for variant in todo:
                    choices = [choices for choices, _ in asked]
                    answers, meter = self._ask(inputs, variant, ids, choices, cache, key_times)
                    for j, row in enumerate(rows):
                        key = (row["id"], variant.method, variant.rate, rotation)
                        if key in self.done:
                            continue
                        record = self._record(row, config, variant, rotation, prompts[j], asked[j][1], answers[j])
                        mapped = row["id"] in self.map_ids and rotation == 0
                        record.update(self._costs(inputs, j, meter, mapped))
                        record["key_recall"] = record_key_recall(meter.selection[j], row, self.token_seconds)
                        self.log.append(record)
                        self.done.add(key)
                        new.append(record)
                        if progress is not None:
                            progress.update(1)
        return new

    def _ask(self, inputs, variant: Variant, ids: list[str], choices: list[list[str]], cache, key_times: list):
        """One model call for the whole batch: ``(answers, meter)``."""
        pruning = {
            "pruning_method": variant.method,
            "pruning_rate": 0.0 if variant.rate is None else variant.rate,
            "pruning_seed": self.seed,
            "sample_ids": ids,
            **self.method_settings.get(variant.method, {}),
        }
        if variant.method == "oracle":
            pruning["key_times"] = key_times
        with torch.no_grad():
            if not self.warm:
                # A process's first call pays one-off costs (allocator growth, kernel selection, lazy
                # initialisation) that are no part of a prefill: run it once untimed.
                self.model(**inputs, **pruning)
                self.warm = True
                if cache is not None:
                    cache.clear()  # so that the encoder time added below is a warm one
            hits = 0 if cache is None else cache.hits
            with PrefillMeter(self.model) as meter:
                if self.scoring == "loglik":
                    logits = self.model(**inputs, **pruning).logits
                    counts = [len(options) for options in choices]
                    answers = loglik_answers(logits[:, -1], self.letter_ids, counts)
                else:
                    out = self.model.generate(**inputs, **pruning, max_new_tokens=self.max_new_tokens, do_sample=False)
                    new_tokens = out[:, inputs["input_ids"].shape[1] :]
                    answers = generated_answers(new_tokens, self.processor.tokenizer, choices)
        if cache is not None and cache.hits > hits:
            meter.ms += cache.ms  # this call reused the encoder's output: count the encoding it saved
        return answers, meter

    @staticmethod
    def _record(row: dict, config: str, variant: Variant, rotation: int, prompt: str, gold: str, answer: dict) -> dict:
        letter = answer["letter"]
        record = {
            "id": row["id"],
            "config": config,
            "category": row.get("category"),
            "audio_source": row.get("audio_source"),
            "method": variant.method,
            "rate": variant.rate,
            "rotation": rotation,
            "prompt_hash": prompt_hash(prompt),
            "raw_output": answer.get("text", letter),
            "parsed": letter,
            "gold": gold,
            "correct": letter == gold,
        }
        if "logprobs" in answer:
            record["logprobs"] = answer["logprobs"]
        return record

    def _costs(self, inputs, j: int, meter: PrefillMeter, mapped: bool) -> dict:
        """Token counts, FLOPs and measurements of row ``j`` of the batch."""
        spans = meter.selection[j]
        spans = spans if isinstance(spans, list) else [spans]  # one dict per recording span
        before = sum(int(span["num_audio_tokens"]) for span in spans)
        after = sum(int(span["num_kept"]) for span in spans)
        mask = inputs["attention_mask"][j].bool()
        text_tokens = int(mask.sum()) - int((inputs["input_ids"][j][mask] == self.model.config.audio_token_id).sum())
        llm_tokens = text_tokens + after
        batch = int(inputs["input_ids"].shape[0])
        estimate = efficiency.activation_memory_estimate(self.cost_config, llm_tokens, self.dtype_bytes)["total"]
        costs = {
            "audio_tokens_before": before,
            "audio_tokens_after": after,
            "text_tokens": text_tokens,
            "llm_tokens": llm_tokens,
            "llm_flops": efficiency.llm_prefill_flops(self.cost_config, llm_tokens),
            "activation_estimate_gb": estimate / GIB,
            # The batch is timed as one call: each row gets an equal share.
            "prefill_ms": meter.ms / batch,
            "batch_size": batch,
            "peak_memory_gb": None if meter.peak_bytes is None else meter.peak_bytes / GIB,
            "activation_memory_gb": None if meter.activation_bytes is None else meter.activation_bytes / GIB,
        }
        costs["kept_mask"] = kept_mask(spans)
        costs["token_seconds"] = self.token_seconds
        if mapped:
            costs["kept_times"] = [round(float(t), 3) for span in spans for t in span["times"]]
        return costs


def token_seconds(model) -> float:
    """Seconds of audio per token of ``model``'s encoder (token ``j`` covers ``[j t, (j + 1) t)``)."""
    from speechprune.modeling.modeling_speechprune import SECONDS_PER_TOKEN

    return float(getattr(model, "seconds_per_token", SECONDS_PER_TOKEN))


def sample_key_times(row: dict) -> tuple[float, float] | None:
    """``(key_start, key_end)`` of a dataset row, or ``None`` where the task has no key times."""
    start, end = row.get("key_start"), row.get("key_end")
    return None if start is None or end is None else (float(start), float(end))


def record_key_recall(selection, row: dict, seconds_per_token: float) -> float | None:
    """SPEC section 8's key recall of one sample's selection: ``None`` without key times.

    ``selection`` is the sample's ``last_selection`` entry; the key times are the row's ``key_start`` /
    ``key_end`` (seconds into its one recording). A task whose rows carry no key times gives ``None``.

    Raises:
        ValueError: key times on a sample whose prompt holds several recordings (they name no recording).
    """
    from speechprune.modeling.pruning import key_recall

    if sample_key_times(row) is None:
        return None
    start, end = sample_key_times(row)
    spans = selection if isinstance(selection, list) else [selection]
    if len(spans) != 1:
        raise ValueError(f"key times of sample {row.get('id')!r} need one recording in the prompt, got {len(spans)}")
    span = spans[0]
    return key_recall(span["kept"], int(span["num_audio_tokens"]), start, end, seconds_per_token)


def kept_mask(spans: list[dict]) -> str:
    """The ``kept_mask`` of one sample's ``last_selection`` spans, as one recording of all their tokens."""
    kept, offset = [], 0
    for span in spans:
        kept += [offset + int(j) for j in span["kept"]]
        offset += int(span["num_audio_tokens"])
    return encode_mask(kept, offset)


__all__ = [
    "kept_mask",
    "sample_key_times",
    "record_key_recall",
    "token_seconds",
    "Variant",
    "parse_variants",
    "rotations",
    "unit_keys",
    "Evaluator",
    "MEASURED_FIELDS",
    "UNRATED",
]
