"""``Qwen2AudioSpeechPruneForConditionalGeneration``: Qwen2-Audio that prunes audio tokens before decoding.

The stock model encodes the audio, scatters the tokens into the ``<|AUDIO|>`` placeholders and
runs the language model on the whole sequence. This subclass adds one step in the middle
(DESIGN "Pruning happens once, before decoding"):

1. embed the text and encode every 30 s window (each on its own, with the same bidirectional
   padding mask the stock forward builds), and place the audio tokens as the stock model does;
2. select, span by span, which audio tokens stay (``pruning.py``, SPEC section 3), with the
   sample's query tokens (``query_mask`` from the processor, else SPEC section 3's rule);
3. drop the unselected placeholder positions from the ids, the embeddings and the attention
   mask, left-pad the rows again, and hand the shorter sequence to the unchanged language model.

``forward`` (log-likelihood scoring) and ``generate`` share that path. ``pruning_method="full"``
calls the stock code directly, so it is the stock model bit for bit.

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

Per-call settings override the config: ``model(**inputs, pruning_method="random", pruning_rate=0.2,
sample_ids=["lecture_3"])``. Without ``sample_ids``, a random method seeds sample ``i`` of the
batch with ``sample_seed(pruning_seed, str(i))``, so its selection depends on its place in the
batch; pass ids to make it depend on the sample only. A recording's second and later spans in one
prompt use the ids ``f"{sample_id}/{j}"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import Qwen2AudioForConditionalGeneration
from transformers.conversion_mapping import get_checkpoint_conversion_mapping, register_checkpoint_conversion_mapping
from transformers.masking_utils import create_bidirectional_mask
from transformers.models.qwen2_audio.modeling_qwen2_audio import Qwen2AudioCausalLMOutputWithPast

from .audio_spans import assign_windows, compact_left, fallback_query_mask, find_spans
from .configuration_speechprune import SpeechPruneConfig
from .pruning import (  # a `from .x import` line: transformers copies the files it names into Hub repos
    crop_select,
    dart_select,
    final_count,
    phase1_select,
    phase2_select,
    random_select,
    sample_seed,
    speechprune_select,
    token_scores,
    uniform_select,
)
from .pruning_settings import resolve_settings, split_settings, with_family_defaults

SECONDS_PER_TOKEN = 0.04  # one Qwen2-Audio token per 40 ms (SPEC section 2)
_QUERY_METHODS = ("speechprune", "phase1", "phase2")
# Auto classes that resolve to this model in a saved repo (besides AutoModel): the ones whose
# transformers mapping holds stock Qwen2-Audio's generation class.
GENERATION_AUTO_CLASSES = ("AutoModelForMultimodalLM", "AutoModelForSeq2SeqLM")
# The per-call settings, in the order of `_settings`'s arguments.
_SETTING_NAMES = (
    "pruning_method",
    "pruning_rate",
    "phase1_tokens",
    "tokens_per_frame",
    "phase1_temperature",
    "pruning_seed",
)


@dataclass
class SpeechPruneCausalLMOutput(Qwen2AudioCausalLMOutputWithPast):
    r"""The stock output plus the sequence the language model saw.

    pruned_input_ids (`torch.LongTensor` of shape `(batch_size, pruned_sequence_length)`):
        The input ids after selection (kept placeholders stay `<|AUDIO|>`), left padded; `logits` and
        `attention_mask` are over these positions.
    """

    pruned_input_ids: torch.LongTensor | None = None


@dataclass
class PrunedInputs:
    """What the language model receives after selection (all ``(batch, pruned_seq, ...)``)."""

    input_ids: torch.LongTensor
    inputs_embeds: torch.Tensor
    attention_mask: torch.LongTensor
    labels: torch.LongTensor | None
    selection: list


class Qwen2AudioSpeechPruneForConditionalGeneration(Qwen2AudioForConditionalGeneration):
    """Qwen2-Audio with SpeechPrune token selection (see the module docstring).

    After each call with audio, ``last_selection`` holds one entry per sample: a dict
    ``{"kept", "times", "num_audio_tokens", "num_kept"}`` for a sample with one recording, a list
    of such dicts (one per span, in prompt order) for several, an empty list for none. ``kept``
    indexes the recording's tokens (int64, increasing), ``times`` their start in seconds
    (token ``i`` covers ``[0.04 i, 0.04 (i + 1))``). ``last_pruned_input_ids`` is the prompt the
    language model saw.
    """

    config_class = SpeechPruneConfig
    config: SpeechPruneConfig

    def __init__(self, config: SpeechPruneConfig):
        super().__init__(config)
        self.last_selection: list | None = None
        self.last_pruned_input_ids: torch.LongTensor | None = None

    # ------------------------------------------------------------------------------------------
    # Public entry points

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        input_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        feature_attention_mask: torch.Tensor | None = None,
        query_mask: torch.Tensor | None = None,
        sample_ids: list[str] | None = None,
        labels: torch.LongTensor | None = None,
        pruning_method: str | None = None,
        pruning_rate: float | None = None,
        phase1_tokens: int | None = None,
        tokens_per_frame: int | None = None,
        phase1_temperature: float | None = None,
        pruning_seed: int | None = None,
        **kwargs,
    ):
        """The stock forward, with the audio pruned first when ``input_features`` come with a prompt.

        Extra arguments: ``query_mask`` (``(batch, seq)`` bool, from the processor), ``sample_ids``
        (list of str, seeds of the random methods) and the per-call settings ``pruning_method``,
        ``pruning_rate``, ``phase1_tokens``, ``tokens_per_frame``, ``phase1_temperature``,
        ``pruning_seed`` (``None``: the config's). Returns a :class:`SpeechPruneCausalLMOutput` whose
        ``logits`` and ``attention_mask`` are over ``pruned_input_ids``.
        """
        settings = self._settings(
            kwargs, pruning_method, pruning_rate, phase1_tokens, tokens_per_frame, phase1_temperature, pruning_seed
        )
        is_prompt = input_features is not None and input_ids is not None and input_ids.shape[1] > 1
        if not is_prompt:  # decoding steps, text-only calls and precomputed embeddings: the stock model
            return super().forward(
                input_ids=input_ids,
                input_features=input_features,
                attention_mask=attention_mask,
                feature_attention_mask=feature_attention_mask,
                labels=labels,
                **kwargs,
            )
        if settings["pruning_method"] == "full":  # the stock code on the caller's own arguments
            self._check_full(input_ids, input_features, attention_mask, feature_attention_mask)
            outputs = super().forward(
                input_ids=input_ids,
                input_features=input_features,
                attention_mask=attention_mask,
                feature_attention_mask=feature_attention_mask,
                labels=labels,
                **kwargs,
            )
            return self._with_pruned_ids(outputs, input_ids)
        if kwargs.get("position_ids") is not None or kwargs.get("inputs_embeds") is not None:
            raise ValueError("position_ids and inputs_embeds cannot be combined with pruning: they are rebuilt")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        pruned = self.prune_inputs(
            input_ids, input_features, attention_mask, feature_attention_mask, query_mask, sample_ids, settings, labels
        )
        outputs = super().forward(
            inputs_embeds=pruned.inputs_embeds, attention_mask=pruned.attention_mask, labels=pruned.labels, **kwargs
        )
        return self._with_pruned_ids(outputs, pruned.input_ids)

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.LongTensor | None = None,
        input_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        feature_attention_mask: torch.Tensor | None = None,
        query_mask: torch.Tensor | None = None,
        sample_ids: list[str] | None = None,
        pruning_method: str | None = None,
        pruning_rate: float | None = None,
        phase1_tokens: int | None = None,
        tokens_per_frame: int | None = None,
        phase1_temperature: float | None = None,
        pruning_seed: int | None = None,
        **kwargs,
    ):
        """Prune once, then generate from the pruned prompt; return the caller's ids followed by the new tokens.

        So ``out[:, inputs.input_ids.shape[1]:]`` are the new tokens, as with the stock model.
        The pruned prompt is in ``model.last_pruned_input_ids``. Use ``max_new_tokens`` rather
        than ``max_length``, which counts the pruned prompt. Settings as in :meth:`forward`.
        """
        settings = self._settings(
            kwargs, pruning_method, pruning_rate, phase1_tokens, tokens_per_frame, phase1_temperature, pruning_seed
        )
        if input_features is None or input_ids is None:
            return super().generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        if settings["pruning_method"] == "full":  # the stock code on the caller's own arguments
            self._check_full(input_ids, input_features, attention_mask, feature_attention_mask)
            self.last_pruned_input_ids = input_ids
            return super().generate(
                input_ids=input_ids,
                input_features=input_features,
                attention_mask=attention_mask,
                feature_attention_mask=feature_attention_mask,
                pruning_method="full",  # the prefill forward must not fall back to the config's method
                **kwargs,
            )
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        pruned = self.prune_inputs(
            input_ids, input_features, attention_mask, feature_attention_mask, query_mask, sample_ids, settings
        )
        out = super().generate(
            input_ids=pruned.input_ids,
            inputs_embeds=pruned.inputs_embeds,
            attention_mask=pruned.attention_mask,
            **kwargs,
        )
        sequences = out if isinstance(out, torch.Tensor) else out.sequences
        new_tokens = sequences[:, pruned.input_ids.shape[1] :]
        prompt = input_ids.to(sequences.device)
        if sequences.shape[0] != prompt.shape[0]:  # num_return_sequences > 1
            prompt = prompt.repeat_interleave(sequences.shape[0] // prompt.shape[0], dim=0)
        sequences = torch.cat([prompt, new_tokens], dim=1)
        if isinstance(out, torch.Tensor):
            return sequences
        out.sequences = sequences
        return out

    def prune_inputs(
        self,
        input_ids: torch.LongTensor,
        input_features: torch.Tensor,
        attention_mask: torch.Tensor,
        feature_attention_mask: torch.Tensor,
        query_mask: torch.Tensor | None = None,
        sample_ids: list[str] | None = None,
        settings: dict | None = None,
        labels: torch.LongTensor | None = None,
    ) -> PrunedInputs:
        """Steps 1-3 of the module docstring: the pruned ids, embeddings, mask (and labels) for the LM.

        ``settings``: any of the per-call settings of :meth:`forward` by name (the config supplies the
        rest; validated here). Also sets ``last_selection`` and ``last_pruned_input_ids``.
        """
        settings = self._resolve_settings(settings or {})
        method = settings["pruning_method"]
        self._check_features(input_features, feature_attention_mask)
        if sample_ids is not None and len(sample_ids) != input_ids.shape[0]:
            raise ValueError(f"sample_ids has {len(sample_ids)} ids for a batch of {input_ids.shape[0]}")

        # 1. Text embeddings and audio tokens, placed as the stock model places them.
        inputs_embeds = self.get_input_embeddings()(input_ids)
        windows = self.encode_audio_windows(input_features, feature_attention_mask, inputs_embeds.dtype)
        spans = find_spans(input_ids, attention_mask, self.config.audio_token_id)
        assign_windows(spans, [w.shape[0] for w in windows], self._tokens_per_window())
        audio = torch.cat(windows).to(inputs_embeds.device, inputs_embeds.dtype)
        placeholders = (input_ids == self.config.audio_token_id).to(inputs_embeds.device)
        inputs_embeds = inputs_embeds.masked_scatter(placeholders.unsqueeze(-1), audio)

        # 2. Selection, span by span.
        if method in _QUERY_METHODS and query_mask is None:
            special = self.config.special_token_ids
            if not all(0 <= i < self.config.text_config.vocab_size for i in special.values()):
                raise ValueError(
                    f"query_mask is missing and config.special_token_ids {special} are not all in the vocabulary: "
                    "pass the processor's query_mask, or set special_token_ids to this tokenizer's ids"
                )
            query_mask = fallback_query_mask(
                input_ids, attention_mask, special["<|audio_eos|>"], special["<|im_end|>"], special.values()
            )
        keep = attention_mask.bool().clone()
        selection = []
        for b, row_spans in enumerate(spans):
            query = self._query_rows(b, input_ids, attention_mask, query_mask) if row_spans else None
            if method in _QUERY_METHODS and row_spans and query.shape[0] == 0:
                raise ValueError(
                    f"sample {b} has no query text: query_mask selects no token (the question and choices after "
                    "the audio; see SpeechPruneProcessor.spiral_prompt)"
                )
            records = []
            for j, (start, end) in enumerate(row_spans):
                tokens = inputs_embeds[b, start:end]
                sample_id = str(b) if sample_ids is None else str(sample_ids[b])
                span_id = sample_id if j == 0 else f"{sample_id}/{j}"
                kept = self._select(tokens, query, settings, span_id).to(keep.device)
                keep[b, start:end] = False
                keep[b, start + kept] = True
                records.append(_record(kept.cpu(), end - start))
            selection.append(_sample_entry(records))
        self._check_positions(keep)

        # 3. Drop the unselected placeholders and left-pad again.
        pad_id = self._pad_token_id()
        tensors = {"input_ids": input_ids, "inputs_embeds": inputs_embeds}
        fill = {"input_ids": pad_id, "inputs_embeds": self.get_input_embeddings().weight[pad_id].detach()}
        if labels is not None:
            tensors["labels"], fill["labels"] = labels, -100
        out, new_mask = compact_left(keep.to(inputs_embeds.device), tensors, fill)
        self.last_selection = selection
        self.last_pruned_input_ids = out["input_ids"]
        return PrunedInputs(out["input_ids"], out["inputs_embeds"], new_mask, out.get("labels"), selection)

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
            mask = create_bidirectional_mask(
                config=tower.config,
                inputs_embeds=dummy,
                attention_mask=valid.long(),
            )
            hidden = tower(features[w : w + 1], attention_mask=mask).last_hidden_state
            projected = self.model.multi_modal_projector(hidden)
            windows.append(projected[0, : int(token_lengths[w])])
        return windows

    def save_pretrained(self, save_directory, *args, **kwargs):
        """``PreTrainedModel.save_pretrained``, plus an ``auto_map`` that sends ``AutoConfig``, ``AutoModel``,
        ``AutoModelForMultimodalLM`` and ``AutoModelForSeq2SeqLM`` to the code files copied beside the weights.
        """
        module = type(self).__module__.rsplit(".", 1)[-1]
        auto_map = dict(getattr(self.config, "auto_map", None) or {})
        auto_map.update({name: f"{module}.{type(self).__name__}" for name in GENERATION_AUTO_CLASSES})
        self.config.auto_map = auto_map
        return super().save_pretrained(save_directory, *args, **kwargs)

    # ------------------------------------------------------------------------------------------
    # Selection

    def _select(self, tokens: torch.Tensor, query: torch.Tensor | None, settings: dict, span_id: str) -> torch.Tensor:
        """Kept indices into one span's ``(N, hidden)`` tokens for the configured method."""
        method, rate = settings["pruning_method"], settings["pruning_rate"]
        n = tokens.shape[0]
        with torch.no_grad():
            tokens = tokens.detach()
            if method == "full":  # only reached through prune_inputs: keep every token
                return torch.arange(n)
            if method == "original":
                return torch.arange(min(n, self._tokens_per_window()))
            k2 = final_count(n, rate, settings["phase1_tokens"])
            if method == "uniform":
                return uniform_select(n, k2)
            if method == "dart":
                return dart_select(tokens, k2, settings["dart_pivots"])
            if method in ("llm_attention", "oracle"):
                raise ValueError(f"pruning_method: {method!r} is not available in this model class yet")
            if method in ("random", "crop"):
                seed = sample_seed(settings["pruning_seed"], span_id)
                select = random_select if method == "random" else crop_select
                return select(n, k2, seed)
            query = query.to(tokens.device)
            if method == "phase1":
                return phase1_select(tokens, query, k2, settings["tokens_per_frame"], settings["phase1_temperature"])
            q_weight, k_weight, head_dim = self._first_layer_projections()
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

    def _first_layer_projections(self):
        """W_q, W_k of the first decoder layer (on whatever device holds them) and the head width."""
        attention = self.model.language_model.layers[0].self_attn
        text = self.config.text_config
        head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
        return attention.q_proj.weight, attention.k_proj.weight, head_dim

    def _query_rows(self, b: int, input_ids, attention_mask, query_mask) -> torch.Tensor | None:
        """Input-embedding rows of sample ``b``'s query tokens, ``(L, hidden)``."""
        if query_mask is None:
            return None
        if query_mask.shape != input_ids.shape:
            raise ValueError(f"query_mask has shape {tuple(query_mask.shape)}, input_ids {tuple(input_ids.shape)}")
        mask = query_mask[b].bool() & attention_mask[b].bool() & (input_ids[b] != self.config.audio_token_id)
        ids = input_ids[b][mask.to(input_ids.device)]
        weight = self.get_input_embeddings().weight
        return weight[ids.to(weight.device)].detach()

    # ------------------------------------------------------------------------------------------
    # Settings and checks

    def _settings(self, kwargs: dict, method, rate, phase1_tokens, tokens_per_frame, temperature, seed) -> dict:
        """Config defaults overridden by this call's settings (``None`` keeps the default), validated."""
        if "query" in kwargs:
            raise ValueError("query is applied by the processor: pass query=... to SpeechPruneProcessor instead")
        if "sample_id" in kwargs:
            raise ValueError("sample_id: unknown argument; pass sample_ids=[...] (one id per sample)")
        # Settings without an argument of their own (positions, attention_layer, dart_pivots) come
        # through **kwargs; a misspelt setting name is an error that lists the known ones.
        extra, _ = split_settings(kwargs)
        for name in extra:
            kwargs.pop(name)
        given = dict(zip(_SETTING_NAMES, (method, rate, phase1_tokens, tokens_per_frame, temperature, seed)))
        return self._resolve_settings({**extra, **given})

    def _resolve_settings(self, overrides: dict) -> dict:
        """The config's settings overridden by ``overrides`` (by name; ``None`` keeps the default), validated."""
        settings = resolve_settings(self.config.pruning_settings(), overrides)
        if settings["positions"] != "compact":  # never silently compact when original positions were asked for
            raise ValueError(f"positions: {settings['positions']!r} is not available in this model class yet")
        window, seconds = self._tokens_per_window(), SECONDS_PER_TOKEN
        return with_family_defaults(settings, window_tokens=window, seconds_per_token=seconds)

    def _tokens_per_window(self) -> int:
        return self.config.audio_config.max_source_positions // 2  # 750: encoder positions, pooled by 2

    def _pad_token_id(self) -> int:
        for candidate in (self.config.text_config.pad_token_id, self.generation_config.pad_token_id):
            if isinstance(candidate, int) and candidate >= 0:
                return candidate
        return 0

    def _check_features(self, input_features, feature_attention_mask) -> None:
        if feature_attention_mask is None:
            raise ValueError("feature_attention_mask is required with input_features (the processor returns it)")
        if feature_attention_mask.shape != input_features.shape[::2]:
            expected = (input_features.shape[0], input_features.shape[2])
            raise ValueError(
                f"feature_attention_mask has shape {tuple(feature_attention_mask.shape)}, expected {expected} for "
                f"input_features of shape {tuple(input_features.shape)}"
            )
        if not bool(torch.isfinite(input_features).all()):
            raise ValueError("input_features contain NaN or inf: check the recordings for NaN or inf samples")

    def _check_full(self, input_ids, input_features, attention_mask, feature_attention_mask) -> None:
        """Refuse bad input for the stock path too, and record a keep-everything selection.

        ``attention_mask`` may be ``None`` (every position real), as the stock forward allows.
        """
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        self._check_features(input_features, feature_attention_mask)
        spans = find_spans(input_ids, attention_mask, self.config.audio_token_id)
        frames = feature_attention_mask.sum(-1)
        _, token_lengths = self.model.audio_tower._get_feat_extract_output_lengths(frames)
        assign_windows(spans, [int(n) for n in token_lengths], self._tokens_per_window())
        self._check_positions(attention_mask.bool())
        self.last_selection = [
            _sample_entry([_record(torch.arange(end - start), end - start) for start, end in row]) for row in spans
        ]

    def _check_positions(self, keep: torch.Tensor) -> None:
        limit = self.config.text_config.max_position_embeddings
        longest = int(keep.sum(dim=1).max())
        if longest > limit:
            raise ValueError(
                f"the prompt has {longest} positions after selection, more than the language model's limit of "
                f"{limit}: prune more (a higher pruning_rate or the speechprune method) or shorten the audio"
            )

    def _with_pruned_ids(self, outputs, pruned_input_ids):
        self.last_pruned_input_ids = pruned_input_ids
        if not isinstance(outputs, Qwen2AudioCausalLMOutputWithPast):
            return outputs  # return_dict=False: the stock tuple
        return SpeechPruneCausalLMOutput(**outputs, pruned_input_ids=pruned_input_ids)


def _sample_entry(records: list[dict]) -> dict | list[dict]:
    """One sample's ``last_selection`` entry: its one span's record, else the list (empty: no audio)."""
    return records[0] if len(records) == 1 else records


def _record(kept: torch.Tensor, num_tokens: int) -> dict:
    kept = kept.to(torch.long)
    return {
        "kept": kept,
        "times": kept.to(torch.float64).mul(SECONDS_PER_TOKEN).to(torch.float32),
        "num_audio_tokens": int(num_tokens),
        "num_kept": int(kept.numel()),
    }


# Saved folders load with AutoConfig / AutoModel(...) and trust_remote_code=True (code files copied).
SpeechPruneConfig.register_for_auto_class("AutoConfig")
Qwen2AudioSpeechPruneForConditionalGeneration.register_for_auto_class("AutoModel")

# transformers renames the legacy keys of stock Qwen2-Audio checkpoints (`language_model.lm_head`,
# `audio_tower`, ...) only for its own classes; without this entry `lm_head` would stay random.
register_checkpoint_conversion_mapping(
    Qwen2AudioSpeechPruneForConditionalGeneration.__name__,
    get_checkpoint_conversion_mapping("qwen2_audio"),
    overwrite=True,
)

__all__ = ["Qwen2AudioSpeechPruneForConditionalGeneration", "SpeechPruneCausalLMOutput", "PrunedInputs"]
