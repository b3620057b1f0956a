"""The work loop of one process: ask the model every pending unit of its samples, write records.

A *unit* is one sample asked once: ``(id, method, rate, rotation)``. Samples go through the
model in batches; per batch and rotation the processor inputs are built once and reused by
every variant (a method at a rate), since every method runs on the same inputs.

A record (one JSON line) holds the fields of :mod:`speechprune.evaluation.results` plus:
``rotation``, ``prompt_hash``, ``raw_output`` (generated text, or the winning letter for
``loglik``), ``logprobs`` (``loglik``: log-probabilities of A-D), ``audio_tokens_before`` /
``audio_tokens_after``, ``text_tokens``, ``llm_tokens`` (what the language model prefilled),
``llm_flops``, ``activation_estimate_gb`` (analytic, from the token count), the measurements
``prefill_ms``, ``peak_memory_gb``, ``activation_memory_gb`` and ``batch_size``
(:data:`MEASURED_FIELDS`), ``token_seconds`` (seconds per audio token), ``kept_mask`` (which audio
tokens were kept, :mod:`speechprune.evaluation.kept`; spans concatenated in prompt order), and for
the pruning-map samples ``kept_times`` (seconds).
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
    LETTERS,
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


def rotations(circular: bool) -> range:
    """The rotations each question is asked under: the four of its choices with ``--circular``, else only 0."""
    return range(len(LETTERS)) if circular else range(1)


def unit_keys(sample_id: str, variants: list[Variant], rotations: range) -> list[tuple]:
    """The ``(id, method, rate, rotation)`` keys of one sample (see ``checkpoint.record_key``)."""
    return [(sample_id, v.method, v.rate, r) for v in variants for r in rotations]


class Evaluator:
    """Asks the model the pending units of one process's samples and logs a record per unit.

    Args:
        model, processor: a SpeechPrune model (``last_selection`` after each call) and its
            long-audio processor.
        dataset: the SPIRAL split, audio decoding to 16 kHz.
        variants, rotations: what to ask each sample.
        done: keys already on disk; units in it are skipped, new ones are added.
        log: where records go (``append(record)``).
        scoring: ``loglik`` or ``generate``; max_new_tokens: decoding length for ``generate``.
        query: the processor's ``query`` (``user_text`` or ``question``).
        seed: the pruning seed (per-sample seeds come from it and the sample id).
        cost_config: architecture for ``llm_flops`` and ``activation_estimate_gb``; dtype_bytes:
            its bytes per element for the estimate.
        map_ids: samples whose kept-token times go into their rotation-0 records.
        audio_cache: encode each batch's audio once and reuse it for every variant and rotation
            (:class:`EncoderCache`; results are identical). The encoder's time is then added to
            each prefill time; on CUDA the memory peaks of the reusing calls leave the encoder out.
    """

    def __init__(
        self,
        model,
        processor,
        dataset,
        *,
        variants: list[Variant],
        rotations: range,
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
    ):
        self.model, self.processor, self.dataset = model, processor, dataset
        self.ids = list(dataset["id"])
        self.variants, self.rotations, self.done, self.log = variants, rotations, done, log
        self.scoring, self.max_new_tokens, self.query, self.seed = scoring, max_new_tokens, query, seed
        self.cost_config = model.config if cost_config is None else cost_config
        self.dtype_bytes = dtype_bytes
        self.map_ids = map_ids
        self.audio_cache = audio_cache
        self.token_seconds = token_seconds(model)
        self.letter_ids = letter_token_ids(processor.tokenizer) if scoring == "loglik" else None
        self.warm = False

    def pending(self, index: int) -> int:
        """How many units of the sample at ``index`` are still to do."""
        return sum(key not in self.done for key in unit_keys(self.ids[index], self.variants, self.rotations))

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
                new += self._run_batch([self.dataset[i] for i in batch], config, progress)
        return new

    def _run_batch(self, rows: list[dict], config: str, progress) -> list[dict]:
        waves = [decode_audio(row["audio"]).numpy() for row in rows]
        ids = [row["id"] for row in rows]
        new = []
        audio = None  # the first rotation's feature tensors, reused by the others (same audio)
        with EncoderCache(self.model) if self.audio_cache else nullcontext() as cache:
            for rotation in self.rotations:
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
                if audio is None:
                    audio = (inputs["input_features"], inputs["feature_attention_mask"])
                inputs["input_features"], inputs["feature_attention_mask"] = audio
                for variant in todo:
                    answers, meter = self._ask(inputs, variant, ids, [choices for choices, _ in asked], cache)
                    for j, row in enumerate(rows):
                        key = (row["id"], variant.method, variant.rate, rotation)
                        if key in self.done:
                            continue
                        record = self._record(row, config, variant, rotation, prompts[j], asked[j][1], answers[j])
                        mapped = row["id"] in self.map_ids and rotation == 0
                        record.update(self._costs(inputs, j, meter, mapped))
                        self.log.append(record)
                        self.done.add(key)
                        new.append(record)
                        if progress is not None:
                            progress.update(1)
        return new

    def _ask(self, inputs, variant: Variant, ids: list[str], choices: list[list[str]], cache: EncoderCache | None):
        """One model call for the whole batch: ``(answers, meter)``."""
        pruning = {
            "pruning_method": variant.method,
            "pruning_rate": 0.0 if variant.rate is None else variant.rate,
            "pruning_seed": self.seed,
            "sample_ids": ids,
        }
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
                    answers = loglik_answers(logits[:, -1], self.letter_ids)
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


def kept_mask(spans: list[dict]) -> str:
    """The ``kept_mask`` of one sample's ``last_selection`` spans, as one recording of all their tokens."""
    kept, offset = [], 0
    for span in spans:
        kept += [offset + int(j) for j in span["kept"]]
        offset += int(span["num_audio_tokens"])
    return encode_mask(kept, offset)


__all__ = [
    "kept_mask",
    "token_seconds",
    "Variant",
    "parse_variants",
    "rotations",
    "unit_keys",
    "Evaluator",
    "MEASURED_FIELDS",
    "UNRATED",
]
