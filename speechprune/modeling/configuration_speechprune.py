"""``SpeechPruneConfig``: a Qwen2-Audio config that also carries the pruning defaults.

The pruning fields are defaults only: every call of the model may override them
(``model.generate(**inputs, pruning_rate=0.4)``). They round-trip through ``config.json``,
so a model repo saved with ``pruning_method="speechprune"`` prunes when loaded.

Example:
    >>> from speechprune.modeling.configuration_speechprune import SpeechPruneConfig
    >>> config = SpeechPruneConfig(pruning_method="speechprune", pruning_rate=0.4)
    >>> config.model_type, config.pruning_method, config.pruning_rate
    ('qwen2_audio_speechprune', 'speechprune', 0.4)
    >>> SpeechPruneConfig(pruning_method="none").pruning_method  # the alias of "full"
    'full'

Every pruning field is checked by ``pruning_settings.py`` (the one validator, also used by
``pruning.py`` and the model's per-call settings), at construction and on assignment:

    >>> SpeechPruneConfig(phase1_temperature=float("inf"))
    Traceback (most recent call last):
    ...
    ValueError: phase1_temperature must be a positive finite number, got inf

This file imports only transformers (and huggingface_hub, whose ``strict`` dataclasses transformers
configs use) and its sibling ``pruning_settings.py``, so that it can be copied into a Hub model repo
and loaded with ``trust_remote_code=True``.
"""

from __future__ import annotations

from typing import Any

from huggingface_hub.dataclasses import strict
from transformers import Qwen2AudioConfig

from .pruning_settings import QUERY_MODES, SETTING_NAMES, check_settings

# The special tokens of the Qwen2-Audio tokenizer (ids 151643..151648). The model needs them only
# for SPEC section 3's fallback query rule, used when the caller gives no `query_mask`.
QWEN2_AUDIO_SPECIAL_TOKEN_IDS = {
    "<|endoftext|>": 151643,
    "<|im_start|>": 151644,
    "<|im_end|>": 151645,
    "<|AUDIO|>": 151646,
    "<|audio_bos|>": 151647,
    "<|audio_eos|>": 151648,
}
# The two of them that the fallback rule looks for: `special_token_ids` must name both.
FALLBACK_RULE_TOKENS = ("<|audio_eos|>", "<|im_end|>")


@strict
class SpeechPruneConfig(Qwen2AudioConfig):
    r"""Qwen2-Audio configuration plus SpeechPrune's pruning defaults (SPEC section 3).

    Args:
        pruning_method (`str`, defaults to `"full"`):
            One of `full` (alias `none`: every audio token, the stock model), `original` (first 30 s
            window of each recording), `speechprune` (phase 1 then phase 2), `phase1`, `phase2`,
            `random` (RAP, alias `rap`), `crop` (RAC, alias `rac`), or SPEC section 8's `uniform`,
            `llm_attention`, `dart` and `oracle`.
        pruning_rate (`float`, defaults to 0.0):
            Fraction removed, in [0, 1): the kept count is `round((1 - rate) * min(N, phase1_tokens))`.
        phase1_tokens (`int`, defaults to 750):
            Phase 1's target count k1 (one 30 s window's worth of tokens). `None` means the family's
            default (SPEC section 7), which for Qwen2-Audio is 750.
        tokens_per_frame (`int`, defaults to 25):
            Tokens per phase-1 frame (25 tokens = 1 s). `None` means the family's default (one second).
        phase1_temperature (`float`, defaults to 1.0):
            Softmax temperature of the phase-1 frame budget.
        query (`str`, defaults to `"user_text"`):
            Which tokens form the text query: `user_text` (the question and the four choices) or
            `question` (the question line only). Applied by the processor, which builds `query_mask`.
        pruning_seed (`int`, defaults to 0):
            Base seed of `random` and `crop`; each sample gets `sample_seed(pruning_seed, sample_id)`.
        positions (`str`, defaults to `"compact"`):
            `compact` (the pruned prompt gets ordinary positions, the paper's behaviour) or `original`
            (kept tokens keep their unpruned position ids; SPEC section 7).
        attention_layer (`int`, defaults to 2):
            The 0-based decoder layer whose attention `llm_attention` ranks by (SPEC section 8).
        dart_pivots (`int`, defaults to 8):
            The number of pivots of `dart` (at most the kept count).
        special_token_ids (`dict[str, int]`, *optional*):
            Token name -> id of the tokenizer's special tokens; defaults to Qwen2-Audio's. Used only by
            the fallback query rule (tokens after the last `<|audio_eos|>` up to `<|im_end|>`).
    """

    model_type = "qwen2_audio_speechprune"

    # Annotated loosely on purpose: `pruning_settings.check_settings` is the one type check, and it
    # turns numpy scalars into Python numbers (config.json cannot hold numpy values).
    pruning_method: Any = "full"
    pruning_rate: Any = 0.0
    phase1_tokens: Any = 750
    tokens_per_frame: Any = 25
    phase1_temperature: Any = 1.0
    query: Any = "user_text"
    pruning_seed: Any = 0
    positions: Any = "compact"
    attention_layer: Any = 2
    dart_pivots: Any = 8
    special_token_ids: dict | None = None

    def __setattr__(self, name, value):
        if name in SETTING_NAMES:  # validated and normalised on every assignment, construction included
            value = check_settings({name: value})[name]
        super().__setattr__(name, value)

    def __post_init__(self, **kwargs):
        # A stock Qwen2-Audio config.json says model_type="qwen2_audio": keep this class's own type.
        kwargs.pop("model_type", None)
        if self.special_token_ids is None:
            self.special_token_ids = dict(QWEN2_AUDIO_SPECIAL_TOKEN_IDS)
        missing = set(FALLBACK_RULE_TOKENS) - set(self.special_token_ids)
        if missing:
            raise ValueError(f"special_token_ids must name {sorted(missing)}, got {sorted(self.special_token_ids)}")
        super().__post_init__(**kwargs)

    def pruning_settings(self) -> dict:
        """The pruning defaults, one per name of ``pruning_settings.SETTING_NAMES`` (what each call starts from)."""
        return {name: getattr(self, name) for name in SETTING_NAMES}


__all__ = [
    "SpeechPruneConfig",
    "QUERY_MODES",
    "QWEN2_AUDIO_SPECIAL_TOKEN_IDS",
    "FALLBACK_RULE_TOKENS",
]
