"""The one validator of SpeechPrune's settings: method names, counts, rates and the model's per-call settings.

Everything that accepts a pruning setting checks it here, with the same rules and the same
messages: ``pruning.py`` (its arguments), ``SpeechPruneConfig`` (at construction), the model
wrapper (per-call settings, through :func:`resolve_settings`), ``export-model`` and
``evaluation/efficiency.py`` (through :func:`check_count`). This file imports only the standard
library, so ``pruning.py`` and the config can both import it, and it is copied into Hub model
repos beside them.

The rules, decided once:

- counts (``phase1_tokens``, ``tokens_per_frame``, ``k``, ``dart_pivots``, ...) are integers
  (``int`` or anything with ``__index__``, e.g. ``numpy.int64``; never ``bool`` or ``2.0``),
  returned as a Python ``int``;
- ``pruning_rate`` is a real number (not ``bool``) in [0, 1); ``phase1_temperature`` a finite
  real number > 0 (``inf`` and ``nan`` are refused); both are returned as Python ``float``;
- ``pruning_seed`` is any integer (it is hashed into each sample's seed);
- ``phase1_tokens`` and ``tokens_per_frame`` may be ``None``: "the family's default" (SPEC
  section 7), filled in by :func:`with_family_defaults` once the family is known;
- names: ``pruning_method`` is one of :data:`METHODS` or an alias in :data:`METHOD_ALIASES`,
  ``query`` one of :data:`QUERY_MODES`, ``positions`` one of :data:`POSITIONS`;
- an unknown setting name is an error that lists the known ones.

Every error is a ``ValueError`` whose message starts with the setting's name.

Per-call settings in the model wrapper:

    >>> defaults = {"pruning_method": "speechprune", "pruning_rate": 0.2}
    >>> resolve_settings(defaults, {"pruning_rate": 0.4, "phase1_tokens": None})["pruning_rate"]
    0.4
    >>> resolve_settings(defaults, {"phase1_token": 10})
    Traceback (most recent call last):
    ...
    ValueError: unknown pruning setting 'phase1_token' (did you mean 'phase1_tokens'?); known settings: ...
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Mapping

METHODS = (
    "full",
    "original",
    "speechprune",
    "phase1",
    "phase2",
    "random",
    "crop",
    "uniform",
    "llm_attention",
    "dart",
    "oracle",
)
# The paper calls random pruning RAP and random cropping RAC.
METHOD_ALIASES = {"none": "full", "rap": "random", "rac": "crop"}
QUERY_MODES = ("user_text", "question")
POSITIONS = ("compact", "original")

# Every setting, with its default. ``None`` for phase1_tokens / tokens_per_frame means "the
# family's default" (SPEC section 7); Qwen2-Audio's config fills in 750 and 25.
SETTING_DEFAULTS = {
    "pruning_method": "full",
    "pruning_rate": 0.0,
    "phase1_tokens": None,
    "tokens_per_frame": None,
    "phase1_temperature": 1.0,
    "query": "user_text",
    "pruning_seed": 0,
    "positions": "compact",
    "attention_layer": 2,
    "dart_pivots": 8,
}
SETTING_NAMES = tuple(SETTING_DEFAULTS)

#: What a pruning rate means, for every help text that takes one and the results table's footnote (SPEC
#: section 3: phase 1 first keeps k1 = min(N, 750) of the N audio tokens, phase 2 then k2 = round((1 - rate) * k1)).
RATE_MEANING = (
    "a rate r in [0, 1) counts against min(N, 750), not the N audio tokens: it keeps round((1 - r) * min(N, 750)) "
    "tokens (0.2 keeps 600 of any recording over 30 s)"
)


def resolve_method(name, argument: str = "method") -> str:
    """The canonical method name for ``name`` (``"none"`` -> ``"full"``); ``argument`` names it in the error.

    Example:
        >>> resolve_method("none"), resolve_method("rac"), resolve_method("dart")
        ('full', 'crop', 'dart')
    """
    if not isinstance(name, str) or name not in METHODS + tuple(METHOD_ALIASES):
        raise ValueError(f"{argument} must be one of {METHODS + tuple(METHOD_ALIASES)}, got {name!r}")
    return METHOD_ALIASES.get(name, name)


def check_count(name: str, value, minimum: int = 1) -> int:
    """``value`` as a Python int, if it is an integer >= ``minimum`` (``numpy.int64`` yes, ``True`` or 2.0 no).

    Example:
        >>> check_count("k", 5), check_count("attention_layer", 0, minimum=0)
        (5, 0)
    """
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_rate(value, name: str = "rate") -> float:
    """``value`` as a float, if it is a real number in [0, 1).

    Example:
        >>> check_rate(0.4), check_rate(0)
        (0.4, 0.0)
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


def check_temperature(value, name: str = "temperature") -> float:
    """``value`` as a float, if it is a finite real number > 0.

    Example:
        >>> check_temperature(0.5)
        0.5
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    if not (math.isfinite(float(value)) and float(value) > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def _check_choice(name: str, value, choices: tuple) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def _optional_count(name: str, value) -> int | None:
    return None if value is None else check_count(name, value)


# One check per setting: value -> normalised value.
_CHECKS = {
    "pruning_method": lambda v: resolve_method(v, argument="pruning_method"),
    "pruning_rate": lambda v: check_rate(v, "pruning_rate"),
    "phase1_tokens": lambda v: _optional_count("phase1_tokens", v),
    "tokens_per_frame": lambda v: _optional_count("tokens_per_frame", v),
    "phase1_temperature": lambda v: check_temperature(v, "phase1_temperature"),
    "query": lambda v: _check_choice("query", v, QUERY_MODES),
    "pruning_seed": lambda v: check_count("pruning_seed", v, minimum=-math.inf),
    "positions": lambda v: _check_choice("positions", v, POSITIONS),
    "attention_layer": lambda v: check_count("attention_layer", v, minimum=0),
    "dart_pivots": lambda v: check_count("dart_pivots", v),
}


def _unknown(names) -> ValueError:
    import difflib  # only on the error path

    parts = []
    for name in names:
        close = difflib.get_close_matches(name, SETTING_NAMES, n=1, cutoff=0.6)
        parts.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    noun = "setting" if len(parts) == 1 else "settings"
    return ValueError(f"unknown pruning {noun} {', '.join(parts)}; known settings: {', '.join(SETTING_NAMES)}")


def check_settings(settings: Mapping) -> dict:
    """Validate a mapping of settings by name; return them normalised (canonical method name, Python numbers).

    Names missing from ``settings`` stay missing; an unknown name is an error that lists the known ones.

    Example:
        >>> check_settings({"pruning_method": "none", "phase1_tokens": 750})
        {'pruning_method': 'full', 'phase1_tokens': 750}
    """
    unknown = [name for name in settings if name not in _CHECKS]
    if unknown:
        raise _unknown(unknown)
    return {name: _CHECKS[name](value) for name, value in settings.items()}


def resolve_settings(defaults: Mapping, overrides: Mapping) -> dict:
    """The settings of one call: ``defaults`` (e.g. the config's), then ``overrides`` where they are not ``None``.

    Both mappings are validated by name (an unknown name lists the known ones); names that neither
    gives take :data:`SETTING_DEFAULTS`. This is what the model wrapper calls for the pruning
    arguments of ``forward`` / ``generate``.

    Example:
        >>> s = resolve_settings({"pruning_method": "speechprune"}, {"pruning_rate": 0.4, "dart_pivots": None})
        >>> s["pruning_method"], s["pruning_rate"], s["dart_pivots"], s["positions"]
        ('speechprune', 0.4, 8, 'compact')
    """
    merged = dict(SETTING_DEFAULTS)
    merged.update(check_settings(defaults))
    merged.update(check_settings({name: value for name, value in overrides.items() if value is not None}))
    return merged


def split_settings(kwargs: Mapping) -> tuple[dict, dict]:
    """``(settings, rest)``: the keyword arguments that are settings, and the others, for a wrapper's ``**kwargs``.

    A name that is not a setting but reads like one (it starts like a setting: ``pruning...``,
    ``phase1...``, ``phase2...``, ``tokens_per...``, ``dart...``, ``attention_layer...``, or is
    ``rate`` / ``method``) is an error listing the known settings, so that a misspelt setting
    never runs silently with the default. Other names (``attention_mask``, ``position_ids``,
    generation arguments) are returned in ``rest``.

    Example:
        >>> split_settings({"pruning_rate": 0.4, "attention_mask": None})
        ({'pruning_rate': 0.4}, {'attention_mask': None})
    """
    settings = {name: value for name, value in kwargs.items() if name in SETTING_DEFAULTS}
    rest = {name: value for name, value in kwargs.items() if name not in SETTING_DEFAULTS}
    misspelt = [name for name in rest if _reads_like_a_setting(name)]
    if misspelt:
        raise _unknown(misspelt)
    return settings, rest


_SETTING_STEMS = ("pruning", "phase1", "phase2", "tokens_per", "dart", "attention_layer")


def _reads_like_a_setting(name: str) -> bool:
    return name.startswith(_SETTING_STEMS) or name in ("rate", "method")


def default_tokens_per_frame(seconds_per_token: float) -> int:
    """SPEC section 7's f = floor(1 / t + 0.5): the tokens of one second.

    Example:
        >>> [default_tokens_per_frame(t) for t in (0.04, 0.08, 1 / 13, 0.1, 0.16)]
        [25, 13, 13, 10, 6]
    """
    if isinstance(seconds_per_token, bool) or not isinstance(seconds_per_token, numbers.Real):
        raise ValueError(f"seconds_per_token must be a positive number, got {seconds_per_token!r}")
    if not (math.isfinite(seconds_per_token) and seconds_per_token > 0):
        raise ValueError(f"seconds_per_token must be a positive finite number, got {seconds_per_token!r}")
    return max(1, math.floor(1.0 / seconds_per_token + 0.5))


def with_family_defaults(settings: Mapping, *, window_tokens: int, seconds_per_token: float) -> dict:
    """``settings`` with ``phase1_tokens`` / ``tokens_per_frame`` filled in for a family where they are ``None``.

    ``window_tokens`` is W (the family's tokens for exactly 30 s of audio), ``seconds_per_token`` is
    t; SPEC section 7: k1 = W, f = floor(1 / t + 0.5).

    Example:
        >>> s = with_family_defaults({"phase1_tokens": None, "tokens_per_frame": None},
        ...                          window_tokens=375, seconds_per_token=0.08)
        >>> s["phase1_tokens"], s["tokens_per_frame"]
        (375, 13)
    """
    filled = dict(settings)
    if filled.get("phase1_tokens") is None:
        filled["phase1_tokens"] = check_count("window_tokens", window_tokens)
    if filled.get("tokens_per_frame") is None:
        filled["tokens_per_frame"] = default_tokens_per_frame(seconds_per_token)
    return filled


__all__ = [
    "METHODS",
    "METHOD_ALIASES",
    "POSITIONS",
    "QUERY_MODES",
    "SETTING_DEFAULTS",
    "SETTING_NAMES",
    "check_count",
    "check_rate",
    "check_settings",
    "check_temperature",
    "default_tokens_per_frame",
    "resolve_method",
    "resolve_settings",
    "split_settings",
    "with_family_defaults",
]
