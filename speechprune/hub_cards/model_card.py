"""The YAML metadata of an exported model's card: what the Hub reads to link the repo to its base and data.

Nothing here is guessed. ``base_model`` is the Hub id of the checkpoint that ``export-model --base`` loaded:
the flag ``--base-model``, else ``--base`` itself when it is a Hub id, else what the folder says about
itself (see :func:`base_model_of`); a folder that names nothing gets no ``base_model``. No
``base_model_relation`` is written: the weights are the base's, unchanged, and none of the Hub's relations
(``adapter``, ``merge``, ``quantized``, ``finetune``) describes code added around unchanged weights.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from huggingface_hub import ModelCard, ModelCardData

from . import is_hub_id

# How the Hub cache names a model folder: models--{owner}--{name}/snapshots/{commit}
_CACHE_REPO = re.compile(r"models--(?P<owner>[^/]+?)--(?P<name>[^/]+)")
TAGS = ["speechprune", "token-pruning", "long-audio", "custom_code"]


def _card_metadata(folder: Path) -> dict:
    path = folder / "README.md"
    if not path.is_file():
        return {}
    try:
        return ModelCard.load(path).data.to_dict()
    except (yaml.YAMLError, UnicodeDecodeError, ValueError, TypeError):  # a card without valid YAML names nothing
        return {}


def base_model_of(base: str, explicit: str | None = None) -> str | list[str] | None:
    """The Hub id(s) for the card's ``base_model``, or ``None`` when nothing names one.

    In order: ``explicit`` (``--base-model``); ``base`` when it is a Hub id and no local path; for a folder,
    the repo of a Hub cache snapshot (``.../models--owner--name/snapshots/<commit>``), the ``_name_or_path``
    of its ``config.json`` when that is a Hub id (transformers 4 saved it), or its own card's
    ``base_model`` (the folder derives from that model, so the export does too).

    >>> base_model_of("Qwen/Qwen2-Audio-7B-Instruct"), base_model_of("tiny"), base_model_of("x", "me/base")
    ('Qwen/Qwen2-Audio-7B-Instruct', None, 'me/base')
    """
    if explicit is not None:
        return explicit
    folder = Path(base)
    if not folder.exists():
        return base if base != "tiny" and is_hub_id(base) else None
    resolved = folder.resolve()
    if resolved.parent.name == "snapshots":
        cached = _CACHE_REPO.fullmatch(resolved.parent.parent.name)
        if cached:
            return f"{cached['owner']}/{cached['name']}"
    try:
        name = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("_name_or_path")
    except (OSError, ValueError, AttributeError):
        name = None
    if is_hub_id(name, namespaced=True) and not Path(name).exists():
        return name
    named = _card_metadata(folder).get("base_model")
    if isinstance(named, str) and is_hub_id(named):
        return named
    if isinstance(named, list) and named and all(is_hub_id(n) for n in named):
        return named
    return None


def languages_of(base: str) -> list[str]:
    """The base folder's card ``language``, else English (SPIRAL and the project's prompt are English)."""
    folder = Path(base)
    named = _card_metadata(folder).get("language") if folder.is_dir() else None
    if isinstance(named, str):
        return [named]
    if isinstance(named, list) and named and all(isinstance(n, str) for n in named):
        return named
    return ["en"]


def model_card_data(
    base: str,
    *,
    repo_id: str,
    base_model: str | None = None,
    dataset_id: str | None = None,
    family_tags: tuple[str, ...] = (),
) -> ModelCardData:
    """The card's metadata for an export of ``base`` published as ``repo_id``.

    Args:
        base: ``--base`` (a Hub id, a folder, or ``tiny``).
        repo_id: the Hub id the repo is meant for; also the ``model_name`` that ``submit`` files results under.
        base_model: ``--base-model``, overriding what :func:`base_model_of` finds.
        dataset_id: the Hub id of the SPIRAL build the model is evaluated on (``datasets:``).
        family_tags: tags naming the model family (``export-model`` passes the family's ``model_type``).
    """
    return ModelCardData(
        license="apache-2.0",
        library_name="transformers",
        pipeline_tag="audio-text-to-text",
        model_name=repo_id,
        base_model=base_model_of(base, base_model),
        datasets=[dataset_id] if dataset_id else None,
        language=languages_of(base),
        tags=[*TAGS[:2], *family_tags, *TAGS[2:]],
    )


__all__ = ["TAGS", "base_model_of", "languages_of", "model_card_data"]
