"""``speechprune.prune`` / ``unprune`` / ``supported_families``: SpeechPrune on a model the user already loaded.

``prune`` turns a loaded stock speech LLM into its family's pruning class in place, the way PEFT wraps a
model: the object, its modules and its weights stay the same (nothing is copied or reloaded); only its
class, and its config's pruning settings, change. ``unprune`` undoes exactly that.

Example:
    >>> import speechprune
    >>> from speechprune.testing import tiny_family, tiny_family_inputs
    >>> model = tiny_family("audioflamingo3")
    >>> weight = model.lm_head.weight
    >>> model = speechprune.prune(model, pruning_method="speechprune", pruning_rate=0.4)
    >>> type(model).__name__, model.lm_head.weight is weight
    ('AudioFlamingo3SpeechPruneForConditionalGeneration', True)
    >>> out = model(**tiny_family_inputs(model, [40.0]))  # 1000 audio tokens -> 750 -> 450
    >>> out.selection[0]["num_audio_tokens"], out.selection[0]["num_kept"]
    (1000, 450)
    >>> type(speechprune.unprune(model)).__name__
    'AudioFlamingo3ForConditionalGeneration'
"""

from __future__ import annotations

from speechprune.errors import UsageError
from speechprune.modeling.configuration_speechprune import SpeechPruneConfig
from speechprune.modeling.families import ADAPTERS, adapter_for
from speechprune.modeling.modeling_speechprune import (
    CONFIG_SETTING_NAMES,
    PRUNING_CLASSES,
    SpeechPruneMixin,
    validate_settings,
)

# What prune() adds to a stock object, so that unprune() removes exactly that.
_STATE = "_speechprune_stock_state"


def supported_families() -> dict:
    """``model_type -> notes`` for every family ``prune`` accepts (the stock class, t, W, defaults, notes).

    Example:
        >>> families = supported_families()
        >>> families["qwen2_audio"]["class"], families["qwen3_omni_moe_thinker"]["tokens_per_30s"]
        ('Qwen2AudioForConditionalGeneration', 390)
    """
    return {
        model_type: {
            "class": adapter.stock_class,
            "pruning_class": adapter.pruning_class,
            "seconds_per_token": adapter.seconds_per_token,
            "tokens_per_30s": adapter.tokens_per_window,
            **adapter.default_settings(),
            "positions": adapter.position_scheme,
            "notes": adapter.notes,
        }
        for model_type, adapter in sorted(ADAPTERS.items())
    }


def prune(model, tokenizer=None, **settings):
    """Make a loaded stock model prune its audio tokens; returns the same object, now of the pruning class.

    Args:
        model: a loaded stock model of a supported family (:func:`supported_families`).
        tokenizer: optional; its vocabulary gives the template-token ids of the fallback query rule (used
            when a call passes no ``query_mask``). Without it the config's ``special_token_ids`` are used,
            else the released checkpoint's ids.
        **settings: the pruning defaults, by the config's names: ``pruning_method``, ``pruning_rate``,
            ``phase1_tokens``, ``tokens_per_frame``, ``phase1_temperature``, ``query``, ``pruning_seed``,
            ``positions``. ``phase1_tokens`` and ``tokens_per_frame`` default to the family's 30 s and 1 s
            (SPEC section 7). Calling ``prune`` again on a pruned model updates them.

    Raises:
        UsageError: the model's family cannot be pruned (the message names its ``model_type`` and why), or
            a setting is unknown or invalid.
    """
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type is None:
        raise UsageError(f"model: expected a transformers model with a config, got {type(model).__name__}")
    try:
        adapter = adapter_for(model_type)
    except ValueError as error:
        raise UsageError(f"model: {error}") from None
    unknown = sorted(set(settings) - set(CONFIG_SETTING_NAMES))
    if unknown:
        raise UsageError(f"prune: unknown setting(s) {unknown}; known: {list(CONFIG_SETTING_NAMES)}")
    if not isinstance(model, SpeechPruneMixin):
        if type(model).__name__ != adapter.stock_class:
            raise UsageError(
                f"model: {type(model).__name__} (model_type {model_type!r}) is not the class SpeechPrune wraps for "
                f"this family; load it as {adapter.stock_class}"
            )
        _wrap(model, adapter)
    current = model.pruning_settings()
    try:
        chosen = validate_settings({**current, **settings})
    except ValueError as error:
        raise UsageError(f"prune: {error}") from None
    for name, value in chosen.items():
        setattr(model.config, name, value)
    if tokenizer is not None:
        vocab = tokenizer.get_vocab()
        model.config.special_token_ids = {
            name: vocab[name] for name in adapter.default_special_token_ids if name in vocab
        }
    return model


def unprune(model):
    """Give back the stock object: its stock class, and its config without the pruning settings."""
    if not isinstance(model, SpeechPruneMixin):
        return model
    state = vars(model).pop(_STATE, None)
    stock_class = type(model)._stock_class()
    config_class = state["config_class"] if state else type(model.config)
    if config_class is SpeechPruneConfig:  # a model loaded as the pruning class: back to the stock config
        config_class = SpeechPruneConfig.__mro__[1]
    added = state["added"] if state else CONFIG_SETTING_NAMES
    for name in added:
        vars(model.config).pop(name, None)
    for name in ("last_selection", "last_pruned_input_ids"):
        vars(model).pop(name, None)
    model.config.__class__ = config_class
    model.__class__ = stock_class
    return model


def _wrap(model, adapter) -> None:
    """Swap the object's class (and Qwen2-Audio's config class) for the pruning ones; remember what changed."""
    config = model.config
    added = [name for name in (*CONFIG_SETTING_NAMES, "special_token_ids") if name not in vars(config)]
    vars(model)[_STATE] = {"config_class": type(config), "added": added}
    if adapter.model_type == "qwen2_audio":
        config.__class__ = SpeechPruneConfig  # the pruning class's config: the same fields plus the settings
        if getattr(config, "special_token_ids", None) is None:
            config.special_token_ids = dict(adapter.default_special_token_ids)
    model.__class__ = PRUNING_CLASSES[adapter.model_type]
    model.last_selection = None
    model.last_pruned_input_ids = None


__all__ = ["prune", "unprune", "supported_families"]
