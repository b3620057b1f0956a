"""SpeechPrune token pruning for speech LLMs and the SPIRAL benchmark, in the Hugging Face ecosystem.

The package is laid out by component (see DESIGN.md):

- ``speechprune.modeling``: the Hub model-repo payload (pruning algorithm, family adapters, config,
  models, processor).
- ``speechprune.dataset_script``: builds the SPIRAL Hub dataset from the published annotations.
- ``speechprune.evaluate_metric``: the ``evaluate`` metric module.
- ``speechprune.evaluation``: runner, efficiency measurements, results and leaderboard files.
- ``speechprune.testing``: offline tiny models of every supported family.

The public names are imported lazily, so ``import speechprune`` stays fast:

>>> import speechprune
>>> sorted(speechprune.supported_families())[:2]
['audioflamingo3', 'musicflamingo']
"""

from __future__ import annotations

import importlib

from speechprune.processors import PROCESSORS as _PROCESSORS

__version__ = "0.1.0"

# Public name -> the module that defines it (imported on first use).
_LAZY = {
    "prune": "speechprune.api",
    "unprune": "speechprune.api",
    "supported_families": "speechprune.api",
    "SpeechPruneConfig": "speechprune.modeling.configuration_speechprune",
    "Qwen2AudioSpeechPruneForConditionalGeneration": "speechprune.modeling.modeling_speechprune",
    "Qwen2_5OmniThinkerSpeechPruneForConditionalGeneration": "speechprune.modeling.modeling_speechprune",
    "Qwen3OmniMoeThinkerSpeechPruneForConditionalGeneration": "speechprune.modeling.modeling_speechprune",
    "AudioFlamingo3SpeechPruneForConditionalGeneration": "speechprune.modeling.modeling_speechprune",
    "MusicFlamingoSpeechPruneForConditionalGeneration": "speechprune.modeling.modeling_speechprune",
    # every family's project processor (speechprune.processors), SpeechPruneProcessor (Qwen2-Audio) among them
    **{path.rpartition(".")[2]: "speechprune.modeling." + path.rpartition(".")[0] for path in _PROCESSORS.values()},
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'speechprune' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY])


__all__ = ["__version__", *_LAZY]
