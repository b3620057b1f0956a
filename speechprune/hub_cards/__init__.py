"""Card templates (``*.md``) and what the Hub reads from cards and results: the rules live here once.

>>> is_hub_id("Qwen/Qwen2-Audio-7B-Instruct"), is_hub_id("./my-model"), is_hub_id("gpt2", namespaced=True)
(True, False, False)
"""

from __future__ import annotations

from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id


def is_hub_id(text: object, *, namespaced: bool = False) -> bool:
    """Whether ``text`` is a valid Hub repo id (``owner/name``, or ``name`` unless ``namespaced``)."""
    if not isinstance(text, str) or (namespaced and "/" not in text):
        return False
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


__all__ = ["is_hub_id"]
