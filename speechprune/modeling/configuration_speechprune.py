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

This file imports only transformers (and huggingface_hub, whose ``strict`` dataclasses transformers
configs use) and its sibling ``pruning.py``, so that it can be copied into a Hub model repo and loaded
with ``trust_remote_code=True``.
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import Qwen2AudioConfig

from .pruning import resolve_method

QUERY_MODES = ("user_text", "question")

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


def check_pruning_settings(
    *,
    pruning_method: str,
    pruning_rate: float,
    phase1_tokens: int,
    tokens_per_frame: int,
    phase1_temperature: float,
    query: str,
    pruning_seed: int,
) -> str:
    """Validate one set of pruning settings; return the canonical method name.

    Shared by the config (at construction) and the model (for per-call overrides), so a bad
    value fails the same way wherever it comes from, with an error naming the field.
    """
    method = resolve_method(pruning_method, argument="pruning_method")
    if isinstance(pruning_rate, bool) or not isinstance(pruning_rate, (int, float)) or not 0 <= pruning_rate < 1:
        raise ValueError(f"pruning_rate must be a number in [0, 1), got {pruning_rate!r}")
    for name, value in (("phase1_tokens", phase1_tokens), ("tokens_per_frame", tokens_per_frame)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    bad_temperature = isinstance(phase1_temperature, bool) or not isinstance(phase1_temperature, (int, float))
    if bad_temperature or not phase1_temperature > 0:
        raise ValueError(f"phase1_temperature must be a positive number, got {phase1_temperature!r}")
    if query not in QUERY_MODES:
        raise ValueError(f"query must be one of {QUERY_MODES}, got {query!r}")
    if isinstance(pruning_seed, bool) or not isinstance(pruning_seed, int):
        raise ValueError(f"pruning_seed must be an integer, got {pruning_seed!r}")
    return method


@strict
class SpeechPruneConfig(Qwen2AudioConfig):
    r"""Qwen2-Audio configuration plus SpeechPrune's pruning defaults (SPEC section 3).

    Args:
        pruning_method (`str`, defaults to `"full"`):
            One of `full` (alias `none`: every audio token, the stock model), `original` (first 30 s
            window of each recording), `speechprune` (phase 1 then phase 2), `phase1`, `phase2`,
            `random` (RAP) or `crop` (RAC).
        pruning_rate (`float`, defaults to 0.0):
            Fraction removed, in [0, 1): the kept count is `round((1 - rate) * min(N, phase1_tokens))`.
        phase1_tokens (`int`, defaults to 750):
            Phase 1's target count k1 (one 30 s window's worth of tokens).
        tokens_per_frame (`int`, defaults to 25):
            Tokens per phase-1 frame (25 tokens = 1 s).
        phase1_temperature (`float`, defaults to 1.0):
            Softmax temperature of the phase-1 frame budget.
        query (`str`, defaults to `"user_text"`):
            Which tokens form the text query: `user_text` (the question and the four choices) or
            `question` (the question line only). Applied by the processor, which builds `query_mask`.
        pruning_seed (`int`, defaults to 0):
            Base seed of `random` and `crop`; each sample gets `sample_seed(pruning_seed, sample_id)`.
        special_token_ids (`dict[str, int]`, *optional*):
            Token name -> id of the tokenizer's special tokens; defaults to Qwen2-Audio's. Used only by
            the fallback query rule (tokens after the last `<|audio_eos|>` up to `<|im_end|>`).
    """

    model_type = "qwen2_audio_speechprune"

    pruning_method: str = "full"
    pruning_rate: float | int = 0.0
    phase1_tokens: int = 750
    tokens_per_frame: int = 25
    phase1_temperature: float | int = 1.0
    query: str = "user_text"
    pruning_seed: int = 0
    special_token_ids: dict | None = None

    def __post_init__(self, **kwargs):
        # A stock Qwen2-Audio config.json says model_type="qwen2_audio": keep this class's own type.
        kwargs.pop("model_type", None)
        self.pruning_method = check_pruning_settings(
            pruning_method=self.pruning_method,
            pruning_rate=self.pruning_rate,
            phase1_tokens=self.phase1_tokens,
            tokens_per_frame=self.tokens_per_frame,
            phase1_temperature=self.phase1_temperature,
            query=self.query,
            pruning_seed=self.pruning_seed,
        )
        if self.special_token_ids is None:
            self.special_token_ids = dict(QWEN2_AUDIO_SPECIAL_TOKEN_IDS)
        missing = set(FALLBACK_RULE_TOKENS) - set(self.special_token_ids)
        if missing:
            raise ValueError(f"special_token_ids must name {sorted(missing)}, got {sorted(self.special_token_ids)}")
        super().__post_init__(**kwargs)

    def pruning_settings(self) -> dict:
        """The pruning defaults as keyword arguments (what the model starts from on each call)."""
        return {
            "pruning_method": self.pruning_method,
            "pruning_rate": self.pruning_rate,
            "phase1_tokens": self.phase1_tokens,
            "tokens_per_frame": self.tokens_per_frame,
            "phase1_temperature": self.phase1_temperature,
            "query": self.query,
            "pruning_seed": self.pruning_seed,
        }


__all__ = [
    "SpeechPruneConfig",
    "check_pruning_settings",
    "QUERY_MODES",
    "QWEN2_AUDIO_SPECIAL_TOKEN_IDS",
    "FALLBACK_RULE_TOKENS",
]
