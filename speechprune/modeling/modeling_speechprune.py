"""SpeechPrune for every supported speech LLM: one family-agnostic pruning core on top of the stock classes.

Each pruning class subclasses a stock transformers class (``Qwen2AudioSpeechPruneForConditionalGeneration``
subclasses ``Qwen2AudioForConditionalGeneration``, and so on for every family in ``families.py``) and adds
one step before the language model (DESIGN "Pruning happens once, before decoding"):

1. capture: let the stock forward merge text and audio, and take the language model's keyword arguments
   (``inputs_embeds``, ``attention_mask``, ``position_ids``, extra per-position tensors) just before its
   first layer (the family adapter says how; Qwen2-Audio encodes its 30 s windows one by one);
2. select, recording by recording, which audio rows stay (``pruning.py``, SPEC sections 3, 7 and 8), with
   the sample's query rows (``query_mask``, else the family's fallback rule);
3. drop the unselected positions from every per-position tensor, left-pad the rows again, and call the
   stock forward (or generate) on ``inputs_embeds``.

``forward`` (log-likelihood scoring) and ``generate`` share that path. ``pruning_method="full"`` calls the
stock code on the caller's own arguments, so it is the stock model bit for bit.

Example:
    >>> import numpy as np, torch
    >>> from speechprune.testing import tiny_speechprune
    >>> model, processor = tiny_speechprune(pruning_method="speechprune", pruning_rate=0.4)
    >>> prompt = processor.spiral_prompt("What was sold?", ["Apples", "Pears", "Plums", "Figs"])
    >>> wave = np.random.default_rng(0).standard_normal(16000 * 90).astype(np.float32) * 0.1
    >>> inputs = processor(text=[prompt], audio=[wave], sampling_rate=16000, return_tensors="pt")
    >>> out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    >>> out.shape[1] == inputs.input_ids.shape[1] + 3  # the caller's ids, then the new tokens
    True
    >>> model.last_selection[0]["num_audio_tokens"], model.last_selection[0]["num_kept"]
    (2250, 450)
    >>> logits = model(**inputs)  # the same pruned prompt; the selection travels with the output
    >>> logits.selection[0]["num_kept"], logits.pruned_input_ids.shape == model.last_pruned_input_ids.shape
    (450, True)

Per-call settings override the config: ``model(**inputs, pruning_method="random", pruning_rate=0.2,
sample_ids=["lecture_3"])``; an unknown name is an error that lists the known ones. Without ``sample_ids``,
a random method seeds sample ``i`` of the batch with ``sample_seed(pruning_seed, str(i))``; pass ids to make
a selection depend on the sample only. A prompt's second and later recordings use ``f"{sample_id}/{j}"``.

Selection records (``output.selection``, and ``model.last_selection`` as a view of the last call): one entry
per sample, a dict ``{"kept", "times", "num_audio_tokens", "num_kept"}`` for one recording, a list of them
for several, an empty list for none. ``kept`` indexes the recording's tokens (int64, increasing); ``times``
are their start in seconds (token ``i`` covers ``[t i, t (i + 1))``, with the family's ``t``).
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass

import torch
from transformers import (
    AudioFlamingo3ForConditionalGeneration,
    Gemma4ForConditionalGeneration,
    GenerationConfig,
    GenerationMixin,
    GlmAsrForConditionalGeneration,
    MusicFlamingoForConditionalGeneration,
    Qwen2_5OmniThinkerForConditionalGeneration,
    Qwen2AudioForConditionalGeneration,
    Qwen3ASRForConditionalGeneration,
    Qwen3OmniMoeThinkerForConditionalGeneration,
    VoxtralForConditionalGeneration,
)
from transformers.conversion_mapping import get_checkpoint_conversion_mapping, register_checkpoint_conversion_mapping
from transformers.masking_utils import create_bidirectional_mask
from transformers.utils import TransformersKwargs

from .audio_spans import assign_windows, compact_left, fallback_query_mask, find_spans
from .configuration_speechprune import SpeechPruneConfig
from .families import ADAPTERS, FamilyAdapter
from .pruning import (  # a `from .x import` line: transformers copies the files it names into Hub repos
    crop_select,
    dart_select,
    final_count,
    llm_attention_select,
    oracle_select,
    phase1_select,
    phase2_select,
    random_select,
    sample_seed,
    speechprune_select,
    token_scores,
    uniform_select,
)
from .pruning_settings import POSITIONS, SETTING_DEFAULTS, resolve_settings, split_settings

_QUERY_METHODS = ("speechprune", "phase1", "phase2")
SECONDS_PER_TOKEN = ADAPTERS["qwen2_audio"].seconds_per_token  # Qwen2-Audio's; a model's own: model.seconds_per_token
POSITION_MODES = POSITIONS
# Settings a model config carries (what `save_pretrained` writes as the repo's defaults), and the
# per-call ones: all but `query`, which the processor applies.
CONFIG_SETTING_NAMES = tuple(SETTING_DEFAULTS)
SETTING_NAMES = tuple(name for name in CONFIG_SETTING_NAMES if name != "query")
_EXTRA_INPUTS = ("query_mask", "sample_ids", "key_times")


@dataclass
class PrunedInputs:
    """What the language model receives after selection (``(batch, pruned_seq, ...)``; positions last-axis)."""

    input_ids: torch.LongTensor
    inputs_embeds: torch.Tensor
    attention_mask: torch.LongTensor
    labels: torch.LongTensor | None
    position_ids: torch.LongTensor | None
    extra: dict
    selection: list


class SpeechPruneMixin:
    """The pruning core; a pruning class is ``class X(SpeechPruneMixin, StockClass)`` with an ``adapter``."""

    adapter: FamilyAdapter

    @property
    def seconds_per_token(self) -> float:
        """Seconds of audio per token of this family (token ``j`` covers ``[j t, (j + 1) t)``)."""
        return self.adapter.seconds_per_token

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # generate() inspects forward's signature (position_ids, logits_to_keep, model kwargs), so each
        # pruning class gets a forward whose signature is the stock one plus the pruning arguments.
        stock = cls._stock_class()

        def forward(self, *args, **kwargs):
            return SpeechPruneMixin._pruned_forward(self, *args, **kwargs)

        forward.__signature__ = _merged_signature(stock.forward)
        forward.__doc__ = SpeechPruneMixin._pruned_forward.__doc__
        cls.forward = forward

    @classmethod
    def _stock_class(cls):
        return next(base for base in cls.__mro__ if not issubclass(base, SpeechPruneMixin) and "forward" in vars(base))

    # ------------------------------------------------------------------------------------------
    # Public entry points

    def _pruned_forward(self, *args, **kwargs):
        """The stock forward, with the audio pruned first when the call carries a prompt with audio.

        Extra arguments: ``query_mask`` (``(batch, seq)`` bool), ``sample_ids`` (list of str, the random
        methods' seeds), ``key_times`` (per sample ``(key_start, key_end)`` seconds or ``None``, for
        ``oracle``) and the per-call settings of :data:`SETTING_NAMES` (``None``: the config's). The
        output carries ``selection`` and ``pruned_input_ids``; ``logits`` are over the pruned sequence.
        """
        stock = type(self)._stock_class()
        call = inspect.signature(stock.forward).bind(self, *args, **kwargs).arguments
        call.pop("self")
        call.update(call.pop("kwargs", {}))
        extras = {name: call.pop(name, None) for name in _EXTRA_INPUTS}
        settings = self._settings(call)
        self._check_names(call, self._forward_names())
        stock_forward = super().forward
        input_ids = call.get("input_ids")
        if not self._is_prompt(call):  # decoding steps, text-only calls and precomputed embeddings
            return stock_forward(**call)
        if settings["pruning_method"] == "full":  # the stock code on the caller's own arguments
            selection = self._keep_all(call)
            return self._with_selection(stock_forward(**call), input_ids, selection)
        for name in ("inputs_embeds",):
            if call.get(name) is not None:
                raise ValueError(f"{name} cannot be combined with pruning: the model builds it from input_ids")
        labels = call.pop("labels", None)
        pruned = self.prune_inputs(**call, labels=labels, settings=settings, **extras)
        lm_call = self._pruned_call(call, pruned)
        if labels is not None:
            lm_call["labels"] = pruned.labels
        return self._with_selection(stock_forward(**lm_call), pruned.input_ids, pruned.selection)

    @torch.no_grad()
    def generate(self, input_ids=None, attention_mask=None, **kwargs):
        """Prune once, then generate from the pruned prompt; return the caller's ids followed by the new tokens.

        So ``out[:, inputs.input_ids.shape[1]:]`` are the new tokens, as with the stock model. Settings and
        extra arguments as in ``forward``. With ``return_dict_in_generate=True`` the output carries
        ``selection`` and ``pruned_input_ids``; ``model.last_selection`` holds the selection either way.
        Use ``max_new_tokens`` rather than ``max_length``, which would count the pruned prompt.
        """
        extras = {name: kwargs.pop(name, None) for name in _EXTRA_INPUTS}
        settings = self._settings(kwargs)
        call = {"input_ids": input_ids, "attention_mask": attention_mask, **kwargs}
        self._check_names(call, self._forward_names() | _generation_names())
        if not self._is_prompt(call):
            return super().generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        if settings["pruning_method"] == "full":  # the stock code on the caller's own arguments
            selection = self._keep_all(call)
            out = super().generate(input_ids=input_ids, attention_mask=attention_mask, pruning_method="full", **kwargs)
            return self._with_selection(out, input_ids, selection)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        model_inputs = {k: v for k, v in kwargs.items() if k in self._forward_names()}
        generation = {k: v for k, v in kwargs.items() if k not in model_inputs}
        if settings["positions"] == "original" and model_inputs.get("position_ids") is None:
            # The ids stock generate would give the unpruned prompt (padding-aware), kept for what stays.
            model_inputs["position_ids"] = self._prepare_position_ids_for_generation(
                input_ids, {"attention_mask": attention_mask, **model_inputs}
            )
        pruned = self.prune_inputs(input_ids, attention_mask, settings=settings, **model_inputs, **extras)
        lm_call = self._pruned_call(model_inputs, pruned)
        lm_call.pop("input_ids", None)
        out = super().generate(**lm_call, **generation)
        sequences = out if isinstance(out, torch.Tensor) else out.sequences
        prompt = input_ids.to(sequences.device)
        if sequences.shape[0] != prompt.shape[0]:  # num_return_sequences > 1
            prompt = prompt.repeat_interleave(sequences.shape[0] // prompt.shape[0], dim=0)
        sequences = torch.cat([prompt, sequences], dim=1)
        if isinstance(out, torch.Tensor):
            return sequences
        out.sequences = sequences
        return self._with_selection(out, pruned.input_ids, pruned.selection)

    def prune_inputs(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        query_mask: torch.Tensor | None = None,
        sample_ids: list[str] | None = None,
        settings: dict | None = None,
        labels: torch.LongTensor | None = None,
        key_times: list | None = None,
        **model_inputs,
    ) -> PrunedInputs:
        """Steps 1-3 of the module docstring: what the language model receives after selection.

        ``model_inputs``: the stock forward's other arguments (the audio inputs, ``position_ids`` ...).
        ``settings``: per-call settings by name (the config supplies the rest; validated here). Also sets
        ``last_selection`` and ``last_pruned_input_ids``.
        """
        given = {k: v for k, v in (settings or {}).items() if k != "query"}
        settings = self._settings(given)
        if given:
            raise ValueError(f"unknown setting(s) {sorted(given)}; known: {list(SETTING_NAMES)}")
        method = settings["pruning_method"]
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if sample_ids is not None and len(sample_ids) != input_ids.shape[0]:
            raise ValueError(f"sample_ids has {len(sample_ids)} ids for a batch of {input_ids.shape[0]}")
        if key_times is not None and len(key_times) != input_ids.shape[0]:
            raise ValueError(f"key_times has {len(key_times)} entries for a batch of {input_ids.shape[0]}")

        # 1. The language model's inputs, as the stock forward builds them.
        call = {"input_ids": input_ids, "attention_mask": attention_mask, **model_inputs}
        spans = find_spans(input_ids, attention_mask, self.adapter.audio_token_id(self))
        self._check_audio(call, spans)
        stock_forward = super().forward
        captured = self.adapter.capture(self, stock_forward, call)
        inputs_embeds = captured["inputs_embeds"]

        # 2. Selection, span by span.
        if method in _QUERY_METHODS and query_mask is None:
            query_mask = self._fallback_query_mask(input_ids, attention_mask)
        attention = None
        if method == "llm_attention":
            attention = self.adapter.attention_weights(self, captured, settings["attention_layer"])
        keep = attention_mask.bool().clone()
        selection = []
        for b, row_spans in enumerate(spans):
            query = self._query_rows(b, inputs_embeds, input_ids, attention_mask, query_mask) if row_spans else None
            if method in _QUERY_METHODS and row_spans and query.shape[0] == 0:
                raise ValueError(
                    f"sample {b} has no query text: query_mask selects no token (the question and choices after "
                    "the audio; see SpeechPruneProcessor.spiral_prompt)"
                )
            records = []
            for j, (start, end) in enumerate(row_spans):
                sample_id = str(b) if sample_ids is None else str(sample_ids[b])
                span = {
                    "tokens": inputs_embeds[b, start:end],
                    "query": query,
                    "id": sample_id if j == 0 else f"{sample_id}/{j}",
                    "key_times": None if key_times is None else key_times[b],
                    "attention": None if attention is None else _attention_onto(attention[b], keep[b], start, end),
                }
                kept = self._select(span, settings).to(keep.device)
                keep[b, start:end] = False
                keep[b, start + kept] = True
                records.append(self._record(kept.cpu(), end - start))
            selection.append(_sample_entry(records))
        self._check_positions(keep)

        # 3. Drop the unselected positions from every per-position tensor and left-pad again.
        keep = keep.to(inputs_embeds.device)
        pad_id = self._pad_token_id()
        embedding = self.get_input_embeddings().weight
        tensors = {"input_ids": input_ids.to(keep.device), "inputs_embeds": inputs_embeds}
        fill = {"input_ids": pad_id, "inputs_embeds": embedding[pad_id].detach()}
        if labels is not None:
            tensors["labels"], fill["labels"] = labels.to(keep.device), -100
        for name in self.adapter.per_position_inputs:
            if captured.get(name) is not None:
                tensors[name], fill[name] = captured[name], 0
        positions = None
        if settings["positions"] == "original":
            positions = self.adapter.unpruned_positions(captured)
            tensors["position_ids"], fill["position_ids"] = _seq_axis_second(positions), 1
        out, new_mask = compact_left(keep, tensors, fill)
        if settings["positions"] == "original":
            positions = _seq_axis_second(out["position_ids"], back=True, like=positions)
        else:
            positions = self.adapter.compact_positions(self, out["input_ids"], new_mask)
        extra = {name: out[name] for name in self.adapter.per_position_inputs if name in out}
        self.last_selection = selection
        self.last_pruned_input_ids = out["input_ids"]
        return PrunedInputs(
            out["input_ids"], out["inputs_embeds"], new_mask, out.get("labels"), positions, extra, selection
        )

    # ------------------------------------------------------------------------------------------
    # Selection

    def _select(self, span: dict, settings: dict) -> torch.Tensor:
        """Kept indices into one recording's ``(N, hidden)`` rows for the configured method (SPEC 3 and 8)."""
        method, rate = settings["pruning_method"], settings["pruning_rate"]
        tokens = span["tokens"].detach()
        n = tokens.shape[0]
        with torch.no_grad():
            if method == "full":  # only reached through prune_inputs: keep every token
                return torch.arange(n)
            if method == "original":
                return torch.arange(min(n, self.adapter.tokens_per_window))
            k2 = final_count(n, rate, settings["phase1_tokens"])
            if method in ("random", "crop"):
                seed = sample_seed(settings["pruning_seed"], span["id"])
                return (random_select if method == "random" else crop_select)(n, k2, seed)
            if method == "uniform":
                return uniform_select(n, k2)
            if method == "dart":
                return dart_select(tokens, k2, settings["dart_pivots"])
            if method == "llm_attention":
                return llm_attention_select(span["attention"], k2)
            if method == "oracle":
                key = span["key_times"]
                if key is None or key[0] is None or key[1] is None:
                    raise ValueError(
                        f"oracle: sample {span['id']!r} has no key times; pass key_times=[(key_start, key_end), ...]"
                    )
                return oracle_select(n, k2, key[0], key[1], self.adapter.seconds_per_token)
            query = span["query"].to(tokens.device) if span["query"] is not None else None
            if method == "phase1":
                return phase1_select(tokens, query, k2, settings["tokens_per_frame"], settings["phase1_temperature"])
            q_weight, k_weight, head_dim = self.adapter.first_attention(self)
            if method == "phase2":
                scores = token_scores(tokens, query)
                x = tokens.to(q_weight.device)
                return phase2_select(x, q_weight, k_weight, k2, head_dim, tie_break=scores.to(q_weight.device))
            return speechprune_select(
                tokens.to(q_weight.device),
                query.to(q_weight.device),
                q_weight,
                k_weight,
                rate,
                phase1_tokens=settings["phase1_tokens"],
                tokens_per_frame=settings["tokens_per_frame"],
                temperature=settings["phase1_temperature"],
                head_dim=head_dim,
            )

    def _query_rows(self, b: int, inputs_embeds, input_ids, attention_mask, query_mask) -> torch.Tensor | None:
        """Sample ``b``'s query rows as the language model receives them, ``(L, hidden)`` (SPEC section 7)."""
        if query_mask is None:
            return None
        if query_mask.shape != input_ids.shape:
            raise ValueError(f"query_mask has shape {tuple(query_mask.shape)}, input_ids {tuple(input_ids.shape)}")
        audio_id = self.adapter.audio_token_id(self)
        mask = query_mask[b].bool() & attention_mask[b].bool() & (input_ids[b] != audio_id)
        return inputs_embeds[b][mask.to(inputs_embeds.device)].detach()

    def _fallback_query_mask(self, input_ids, attention_mask) -> torch.Tensor:
        """SPEC section 3's rule with the family's template tokens (``families.py``)."""
        special = self.adapter.special_token_ids(self)
        names = (*self.adapter.query_start_tokens, self.adapter.query_end_token)
        vocab = self.get_input_embeddings().weight.shape[0]
        if not all(name in special and 0 <= special[name] < vocab for name in names):
            raise ValueError(
                f"query_mask is missing and the special token ids {special} do not name {list(names)} inside the "
                f"vocabulary of {vocab}: pass the processor's query_mask, or set config.special_token_ids"
            )
        start, end = special[self.adapter.query_start_tokens[0]], special[self.adapter.query_end_token]
        return fallback_query_mask(input_ids, attention_mask, start, end, special.values())

    def _record(self, kept: torch.Tensor, num_tokens: int) -> dict:
        kept = kept.to(torch.long)
        return {
            "kept": kept,
            "times": kept.to(torch.float64).mul(self.adapter.seconds_per_token).to(torch.float32),
            "num_audio_tokens": int(num_tokens),
            "num_kept": int(kept.numel()),
        }

    # ------------------------------------------------------------------------------------------
    # Settings, names and checks

    def pruning_settings(self) -> dict:
        """The defaults this model prunes with: the config's settings, else the family's (SPEC section 7)."""
        given = {name: getattr(self.config, name, None) for name in CONFIG_SETTING_NAMES}
        return self.adapter.with_defaults(resolve_settings({}, given))

    def _settings(self, call: dict) -> dict:
        """Config defaults overridden by the settings found (and removed) in ``call``, validated.

        A name that reads like a misspelt setting (``phase1_token``) is an error listing the known ones.
        """
        if "query" in call:
            raise ValueError("query is applied by the processor: pass query=... to the processor instead")
        if "sample_id" in call:
            raise ValueError("sample_id: unknown argument; pass sample_ids=[...] (one id per sample)")
        given, _ = split_settings(call)
        for name in given:
            call.pop(name)
        return self.adapter.with_defaults(resolve_settings(self.pruning_settings(), given))

    def _forward_names(self) -> set:
        stock = inspect.signature(type(self)._stock_class().forward).parameters
        names = set(stock) - {"self", "kwargs"}
        return names | set(TransformersKwargs.__annotations__) | {"return_dict", "past_key_values"}

    def _check_names(self, call: dict, known: set) -> None:
        unknown = sorted(set(call) - known)
        if unknown:
            raise ValueError(
                f"unknown argument(s) {unknown}: the pruning settings are {list(SETTING_NAMES)} (plus "
                f"{list(_EXTRA_INPUTS)}); other arguments must be the stock {type(self)._stock_class().__name__}'s"
            )

    def _is_prompt(self, call: dict) -> bool:
        input_ids = call.get("input_ids")
        audio = call.get(self.adapter.audio_inputs[0])
        return audio is not None and input_ids is not None and input_ids.shape[1] > 1

    def _check_audio(self, call: dict, spans: list) -> None:
        """Refuse malformed audio inputs before any work (families add their own geometry checks)."""
        for name in self.adapter.audio_inputs:
            value = call.get(name)
            if name == self.adapter.audio_inputs[0] and value is not None and value.is_floating_point():
                if not bool(torch.isfinite(value).all()):
                    raise ValueError(f"{name} contain NaN or inf: check the recordings for NaN or inf samples")

    def _keep_all(self, call: dict) -> list:
        """Check the stock path's input too and record a keep-everything selection."""
        input_ids = call["input_ids"]
        attention_mask = call.get("attention_mask")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        spans = find_spans(input_ids, attention_mask, self.adapter.audio_token_id(self))
        self._check_audio(call, spans)
        self._check_positions(attention_mask.bool())
        selection = [_sample_entry([self._record(torch.arange(e - s), e - s) for s, e in row]) for row in spans]
        self.last_selection = selection
        self.last_pruned_input_ids = input_ids
        return selection

    def _check_positions(self, keep: torch.Tensor) -> None:
        limit = self.adapter.max_positions(self)
        longest = int(keep.sum(dim=1).max())
        if longest > limit:
            raise ValueError(
                f"the prompt has {longest} positions after selection, more than the language model's limit of "
                f"{limit}: prune more (a higher pruning_rate or the speechprune method) or shorten the audio"
            )

    def _pad_token_id(self) -> int:
        text = self.adapter.text_config(self)
        for candidate in (getattr(text, "pad_token_id", None), self.generation_config.pad_token_id):
            if isinstance(candidate, int) and 0 <= candidate < self.get_input_embeddings().weight.shape[0]:
                return candidate
        return 0

    def _pruned_call(self, call: dict, pruned: PrunedInputs) -> dict:
        """The stock forward's arguments for the pruned sequence: embeddings instead of ids and audio."""
        lm_call = {k: v for k, v in call.items() if k not in (*self.adapter.audio_inputs, "input_ids", "position_ids")}
        lm_call.update(inputs_embeds=pruned.inputs_embeds, attention_mask=pruned.attention_mask, **pruned.extra)
        if pruned.position_ids is not None:
            lm_call["position_ids"] = pruned.position_ids
        return lm_call

    def _with_selection(self, outputs, pruned_input_ids, selection):
        self.last_pruned_input_ids = pruned_input_ids
        self.last_selection = selection
        if isinstance(outputs, torch.Tensor) or isinstance(outputs, tuple):
            return outputs  # generate's plain ids, or return_dict=False: the stock tuple
        outputs["pruned_input_ids"] = pruned_input_ids
        outputs["selection"] = selection
        return outputs

    def save_pretrained(self, save_directory, *args, **kwargs):
        """``PreTrainedModel.save_pretrained``, plus an ``auto_map`` that sends ``AutoModel`` and the family's
        generation auto classes to the code files copied beside the weights, and the pruning settings.
        """
        module = type(self).__module__.rsplit(".", 1)[-1]
        auto_map = dict(getattr(self.config, "auto_map", None) or {})
        names = ("AutoModel", *self.adapter.generation_auto_classes)
        auto_map.update({name: f"{module}.{type(self).__name__}" for name in names})
        self.config.auto_map = auto_map
        for name, value in self.pruning_settings().items():
            setattr(self.config, name, value)
        if getattr(self.config, "special_token_ids", None) is None:
            self.config.special_token_ids = self.adapter.special_token_ids(self)
        return super().save_pretrained(save_directory, *args, **kwargs)


def validate_settings(settings: dict) -> dict:
    """One complete set of settings by name, through the one validator (``pruning_settings.py``)."""
    return resolve_settings({}, settings)


def _attention_onto(weights: torch.Tensor, real: torch.Tensor, start: int, end: int) -> torch.Tensor:
    """SPEC section 8's rows: ``(heads, later positions, N)``, from every real position after the recording."""
    after = real.clone()
    after[:end] = False
    rows = weights[:, after.to(weights.device), start:end]
    if rows.shape[1] == 0:
        raise ValueError("llm_attention needs at least one prompt position after the recording")
    return rows


def _seq_axis_second(positions: torch.Tensor, back: bool = False, like: torch.Tensor | None = None) -> torch.Tensor:
    """Move a position tensor's sequence axis (last) to axis 1 as compact_left wants it, or back."""
    if (like if back else positions).dim() == 2:
        return positions
    if back:
        return positions.permute(2, 0, 1)  # (batch, seq, k) -> (k, batch, seq)
    return positions.permute(1, 2, 0)  # (k, batch, seq) -> (batch, seq, k)


def _merged_signature(stock_forward) -> inspect.Signature:
    """The stock forward's signature with the pruning arguments added as keyword-only parameters."""
    params = list(inspect.signature(stock_forward).parameters.values())
    var_kw = [p for p in params if p.kind is p.VAR_KEYWORD]
    params = [p for p in params if p.kind is not p.VAR_KEYWORD]
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None)
        for name in (*_EXTRA_INPUTS, *SETTING_NAMES)
    ]
    return inspect.Signature(params + added + var_kw)


def _generation_names() -> set:
    generate = inspect.signature(GenerationMixin.generate).parameters
    return set(GenerationConfig().to_dict()) | set(generate) | {"pruning_method"}


def _sample_entry(records: list[dict]) -> dict | list[dict]:
    """One sample's selection entry: its one span's record, else the list (empty: no audio)."""
    return records[0] if len(records) == 1 else records


# ----------------------------------------------------------------------------------------------
# The pruning classes, one per family


class Qwen2AudioSpeechPruneForConditionalGeneration(SpeechPruneMixin, Qwen2AudioForConditionalGeneration):
    """Qwen2-Audio with SpeechPrune (see the module docstring); its config is :class:`SpeechPruneConfig`."""

    config_class = SpeechPruneConfig
    config: SpeechPruneConfig
    adapter = ADAPTERS["qwen2_audio"]

    def __init__(self, config: SpeechPruneConfig):
        super().__init__(config)
        self.last_selection: list | None = None
        self.last_pruned_input_ids: torch.LongTensor | None = None

    def encode_audio_windows(
        self, input_features: torch.Tensor, feature_attention_mask: torch.Tensor, dtype: torch.dtype | None = None
    ) -> list[torch.Tensor]:
        """Projected audio tokens of each window, its valid ones only: a list of ``(tokens_w, hidden)``.

        Each window is encoded alone (a batch of one), with the padding mask the stock forward
        builds from ``feature_attention_mask`` (without it a short window's padding would leak
        into its tokens), so a recording's tokens never depend on the rest of the batch.
        """
        tower = self.model.audio_tower
        features = input_features.to(tower.device)
        frames = feature_attention_mask.to(tower.device).sum(-1)
        conv_lengths, token_lengths = tower._get_feat_extract_output_lengths(frames)
        dtype = dtype if dtype is not None else self.get_input_embeddings().weight.dtype
        positions = (features.shape[-1] - 2) // 2 + 1
        # As in the stock forward: the mask is built for the text embeddings' dtype and device.
        dummy = torch.zeros((1, positions, 1), dtype=dtype, device=self.get_input_embeddings().weight.device)
        windows = []
        for w in range(features.shape[0]):
            valid = torch.arange(positions, device=conv_lengths.device)[None, :] < conv_lengths[w : w + 1, None]
            mask = create_bidirectional_mask(config=tower.config, inputs_embeds=dummy, attention_mask=valid.long())
            hidden = tower(features[w : w + 1], attention_mask=mask).last_hidden_state
            projected = self.model.multi_modal_projector(hidden)
            windows.append(projected[0, : int(token_lengths[w])])
        return windows

    def _check_audio(self, call: dict, spans: list) -> None:
        features, feature_mask = call.get("input_features"), call.get("feature_attention_mask")
        if feature_mask is None:
            raise ValueError("feature_attention_mask is required with input_features (the processor returns it)")
        if feature_mask.shape != features.shape[::2]:
            expected = (features.shape[0], features.shape[2])
            raise ValueError(
                f"feature_attention_mask has shape {tuple(feature_mask.shape)}, expected {expected} for "
                f"input_features of shape {tuple(features.shape)}"
            )
        super()._check_audio(call, spans)
        _, token_lengths = self.model.audio_tower._get_feat_extract_output_lengths(feature_mask.sum(-1))
        assign_windows(spans, [int(n) for n in token_lengths], self.config.audio_config.max_source_positions // 2)

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """``PreTrainedModel.from_pretrained``; a stock Qwen2-Audio checkpoint loads without the type warning."""
        with _expected_type_warning_silenced():
            return super().from_pretrained(*args, **kwargs)


class Qwen2_5OmniThinkerSpeechPruneForConditionalGeneration(
    SpeechPruneMixin, Qwen2_5OmniThinkerForConditionalGeneration
):
    """Qwen2.5-Omni's thinker with SpeechPrune."""

    adapter = ADAPTERS["qwen2_5_omni_thinker"]


class Qwen3OmniMoeThinkerSpeechPruneForConditionalGeneration(
    SpeechPruneMixin, Qwen3OmniMoeThinkerForConditionalGeneration
):
    """Qwen3-Omni-MoE's thinker with SpeechPrune."""

    adapter = ADAPTERS["qwen3_omni_moe_thinker"]


class AudioFlamingo3SpeechPruneForConditionalGeneration(SpeechPruneMixin, AudioFlamingo3ForConditionalGeneration):
    """AudioFlamingo3 with SpeechPrune."""

    adapter = ADAPTERS["audioflamingo3"]


class MusicFlamingoSpeechPruneForConditionalGeneration(SpeechPruneMixin, MusicFlamingoForConditionalGeneration):
    """MusicFlamingo with SpeechPrune."""

    adapter = ADAPTERS["musicflamingo"]


class VoxtralSpeechPruneForConditionalGeneration(SpeechPruneMixin, VoxtralForConditionalGeneration):
    """Voxtral with SpeechPrune."""

    adapter = ADAPTERS["voxtral"]


class Gemma4SpeechPruneForConditionalGeneration(SpeechPruneMixin, Gemma4ForConditionalGeneration):
    """Gemma 4 with SpeechPrune."""

    adapter = ADAPTERS["gemma4"]

    def prepare_inputs_for_generation(self, input_ids, inputs_embeds=None, **kwargs):
        """The stock step, with ``inputs_embeds`` named: generate() refuses embeddings a step does not name.

        The stock step takes the pruned prompt's ``per_layer_inputs`` at the first iteration only (later
        steps compute them from the new token's id).
        """
        return super().prepare_inputs_for_generation(input_ids, inputs_embeds=inputs_embeds, **kwargs)


class GlmAsrSpeechPruneForConditionalGeneration(SpeechPruneMixin, GlmAsrForConditionalGeneration):
    """GLM-ASR with SpeechPrune."""

    adapter = ADAPTERS["glmasr"]


class Qwen3AsrSpeechPruneForConditionalGeneration(SpeechPruneMixin, Qwen3ASRForConditionalGeneration):
    """Qwen3-ASR with SpeechPrune."""

    adapter = ADAPTERS["qwen3_asr"]


PRUNING_CLASSES = {
    cls.adapter.model_type: cls
    for cls in (
        Qwen2AudioSpeechPruneForConditionalGeneration,
        Qwen2_5OmniThinkerSpeechPruneForConditionalGeneration,
        Qwen3OmniMoeThinkerSpeechPruneForConditionalGeneration,
        AudioFlamingo3SpeechPruneForConditionalGeneration,
        MusicFlamingoSpeechPruneForConditionalGeneration,
        VoxtralSpeechPruneForConditionalGeneration,
        Gemma4SpeechPruneForConditionalGeneration,
        GlmAsrSpeechPruneForConditionalGeneration,
        Qwen3AsrSpeechPruneForConditionalGeneration,
    )
}


class _TypeWarningFilter(logging.Filter):
    """Drops exactly transformers' "model of type qwen2_audio to instantiate a model of type
    qwen2_audio_speechprune" warning: loading a stock checkpoint into the pruning class is the intended use."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage().replace("`", "")
        return (
            "You are using a model of type qwen2_audio to instantiate a model of type qwen2_audio_speechprune"
            not in message
        )


class _expected_type_warning_silenced:
    def __enter__(self):
        self.filter = _TypeWarningFilter()
        self.logger = logging.getLogger("transformers.configuration_utils")
        self.logger.addFilter(self.filter)

    def __exit__(self, *exc):
        self.logger.removeFilter(self.filter)


# Saved folders load with AutoConfig / AutoModel(...) and trust_remote_code=True (code files copied).
SpeechPruneConfig.register_for_auto_class("AutoConfig")
for _cls in PRUNING_CLASSES.values():
    _cls.register_for_auto_class("AutoModel")

# transformers renames the legacy keys of stock checkpoints (Qwen2-Audio's `language_model.lm_head`, the Omni
# thinkers' `audio_tower`, ...) only for its own class names (looked up by class, then model_type); without
# these entries those weights would stay random.
for _cls in PRUNING_CLASSES.values():
    _mapping = get_checkpoint_conversion_mapping(_cls._stock_class().__name__) or get_checkpoint_conversion_mapping(
        _cls.adapter.model_type
    )
    if _mapping:
        register_checkpoint_conversion_mapping(_cls.__name__, _mapping, overwrite=True)

__all__ = [
    "SpeechPruneMixin",
    "PrunedInputs",
    "PRUNING_CLASSES",
    "SETTING_NAMES",
    "validate_settings",
    *(cls.__name__ for cls in PRUNING_CLASSES.values()),
]
