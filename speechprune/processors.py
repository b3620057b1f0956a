"""The project processor of each family: ``model_type`` -> its class (imported on first use).

A family listed here has a processor that keeps (or refuses, with the reason) audio that the stock one
would cut, returns ``query_mask`` and renders ``spiral_prompt`` in the family's chat template.
``speechprune export-model`` writes it into the repo, so ``AutoProcessor.from_pretrained(repo,
trust_remote_code=True)`` returns it, and the model card names it.

Example:
    >>> processor_class("audioflamingo3").__name__, processor_class("not_a_family")
    ('AudioFlamingo3SpeechPruneProcessor', None)
"""

from __future__ import annotations

import importlib

_MODULE = "speechprune.modeling."
PROCESSORS = {
    "qwen2_audio": "processing_speechprune.SpeechPruneProcessor",
    "qwen2_5_omni_thinker": "processing_speechprune_omni.Qwen2_5OmniSpeechPruneProcessor",
    "qwen3_omni_moe_thinker": "processing_speechprune_omni.Qwen3OmniMoeSpeechPruneProcessor",
    "audioflamingo3": "processing_speechprune_flamingo.AudioFlamingo3SpeechPruneProcessor",
    "musicflamingo": "processing_speechprune_flamingo.MusicFlamingoSpeechPruneProcessor",
    "voxtral": "processing_speechprune_voxtral.VoxtralSpeechPruneProcessor",
    "gemma4": "processing_speechprune_gemma4.Gemma4SpeechPruneProcessor",
}


def processor_class(model_type: str):
    """The project processor class of ``model_type`` (a pruning config's ``<type>_speechprune`` too), or None."""
    path = PROCESSORS.get(model_type.removesuffix("_speechprune"))
    if path is None:
        return None
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(_MODULE + module), name)


__all__ = ["PROCESSORS", "processor_class"]
