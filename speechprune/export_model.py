"""``speechprune export-model``: write a Hub-ready SpeechPrune model repo from a checkpoint of any supported family.

The folder holds everything ``from_pretrained(..., trust_remote_code=True)`` needs: ``config.json``
with the pruning defaults and an ``auto_map``, the code files of ``speechprune/modeling/`` (they import
only torch, transformers and each other), the weights as safetensors, the family's project processor
(``speechprune.processors``: long audio and ``query_mask``), and a model card rendered from
``speechprune/hub_cards/speechprune_model_card.md`` with the family's facts.

Example (offline, the tiny random model)::

    speechprune export-model --base tiny --out /tmp/speechprune-tiny --pruning-method speechprune --pruning-rate 0.4

and for the real model (needs the Hub or a local copy)::

    speechprune export-model --base Qwen/Qwen2-Audio-7B-Instruct --out ./Qwen2-Audio-7B-Instruct-SpeechPrune \
        --pruning-method speechprune --pruning-rate 0.4 --dtype bfloat16
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from huggingface_hub import ModelCard

from speechprune.errors import UsageError
from speechprune.evaluate_metric.spiral_accuracy.spiral_accuracy import CITATION
from speechprune.hub_cards import is_hub_id
from speechprune.hub_cards.model_card import model_card_data
from speechprune.modeling.configuration_speechprune import (
    FALLBACK_RULE_TOKENS,
    QUERY_MODES,
    QWEN2_AUDIO_SPECIAL_TOKEN_IDS,
)
from speechprune.modeling.families import adapter_for
from speechprune.modeling.modeling_speechprune import POSITION_MODES, validate_settings
from speechprune.modeling.pruning import METHODS
from speechprune.modeling.pruning_settings import RATE_MEANING
from speechprune.processors import processor_class
from speechprune.sources import hub_failure, local_or_hub

CARD_TEMPLATE = Path(__file__).resolve().parent / "hub_cards" / "speechprune_model_card.md"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--base",
        required=True,
        help="Hub id or folder of a supported speech LLM (see speechprune.supported_families()), or `tiny`",
    )
    parser.add_argument("--out", required=True, type=Path, help="folder to write the model repo into")
    parser.add_argument("--revision", default=None, help="branch, tag or commit of --base to load")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    parser.add_argument("--seed", type=int, default=0, help="weight seed of --base tiny")
    parser.add_argument("--pruning-method", default="speechprune", choices=[*METHODS, "none"])
    parser.add_argument("--pruning-rate", type=float, default=0.2, help=f"pruning rate (default 0.2); {RATE_MEANING}")
    parser.add_argument("--phase1-tokens", type=int, default=None, help="default: the family's 30 s of tokens")
    parser.add_argument("--tokens-per-frame", type=int, default=None, help="default: the family's 1 s of tokens")
    parser.add_argument("--phase1-temperature", type=float, default=1.0)
    parser.add_argument("--query", default="user_text", choices=QUERY_MODES)
    parser.add_argument("--pruning-seed", type=int, default=0)
    parser.add_argument("--positions", default="compact", choices=POSITION_MODES)
    parser.add_argument("--repo-id", default=None, help="Hub id shown in the card's usage (default: the folder name)")
    parser.add_argument(
        "--base-model",
        default=None,
        help="Hub id of --base for the card's base_model (default: --base when it is a Hub id, else what the "
        "folder's config or card names)",
    )
    parser.add_argument(
        "--dataset-id", default=None, help="Hub id of the SPIRAL build the model is evaluated on (card's datasets:)"
    )
    parser.add_argument(
        "--card-revision", default=None, help="commit to pin in the card's usage (default: a placeholder to replace)"
    )
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")


def pruning_settings(args, model_type: str = "qwen2_audio") -> dict:
    """The pruning defaults chosen on the command line (unset counts: the family's), validated."""
    settings = {
        "pruning_method": args.pruning_method,
        "pruning_rate": args.pruning_rate,
        "phase1_tokens": args.phase1_tokens,
        "tokens_per_frame": args.tokens_per_frame,
        "phase1_temperature": args.phase1_temperature,
        "query": args.query,
        "pruning_seed": args.pruning_seed,
        "positions": getattr(args, "positions", "compact"),
    }
    for name, value in adapter_for(model_type).default_settings().items():
        if settings[name] is None:
            settings[name] = value
    try:
        return validate_settings(settings)
    except ValueError as err:  # "pruning_rate must be ...": name the flag the user typed
        name, _, what = str(err).partition(" ")
        hint = f"; {RATE_MEANING}" if name == "pruning_rate" else ""
        raise UsageError(f"--{name.replace('_', '-')}: {what}{hint}") from None


def base_model_type(base: str, revision: str | None = None) -> str:
    """The ``model_type`` of ``base`` (``tiny``: Qwen2-Audio), read from its config alone."""
    if base == "tiny":
        return "qwen2_audio"
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(base, revision=revision).model_type


def load_base(base: str, settings: dict, revision: str | None = None, dtype: str = "auto", seed: int = 0):
    """``(model, processor)``: ``base`` as SpeechPrune with the given pruning defaults (processor may be None)."""
    from speechprune.modeling.modeling_speechprune import Qwen2AudioSpeechPruneForConditionalGeneration
    from speechprune.modeling.processing_speechprune import SpeechPruneProcessor

    model_type = base_model_type(base, revision)
    if model_type != "qwen2_audio":
        return _load_family(base, model_type, settings, revision, dtype)

    if base == "tiny":
        from speechprune.testing import tiny_speechprune

        model, processor = tiny_speechprune(seed=seed, **settings)
        processor.query = settings["query"]
        if dtype not in ("auto", "float32"):
            model = model.to(getattr(torch, dtype))
        return model, processor
    processor = SpeechPruneProcessor.from_pretrained(base, revision=revision, query=settings["query"])
    special = special_token_ids(processor.tokenizer)
    config_settings = {k: v for k, v in settings.items() if k != "positions"}  # not a config field (yet)
    model, info = Qwen2AudioSpeechPruneForConditionalGeneration.from_pretrained(
        base, revision=revision, dtype=dtype, special_token_ids=special, output_loading_info=True, **config_settings
    )
    model.config.positions = settings["positions"]
    bad = {key: sorted(info[key]) for key in ("missing_keys", "unexpected_keys", "mismatched_keys") if info[key]}
    if bad:
        raise ValueError(f"base: the weights of {base!r} do not fit Qwen2-Audio: {bad}")
    return model.eval(), processor


def _load_family(base: str, model_type: str, settings: dict, revision, dtype):
    """A supported family other than Qwen2-Audio: its stock class, pruned in place by ``speechprune.prune``."""
    import transformers

    from speechprune.api import prune

    stock_class = getattr(transformers, adapter_for(model_type).stock_class)
    model, info = stock_class.from_pretrained(base, revision=revision, dtype=dtype, output_loading_info=True)
    bad = {key: sorted(info[key]) for key in ("missing_keys", "unexpected_keys", "mismatched_keys") if info[key]}
    if bad:
        raise ValueError(f"base: the weights of {base!r} do not fit {stock_class.__name__}: {bad}")
    processor = load_processor(base, model_type, revision, settings["query"])
    tokenizer = getattr(processor, "tokenizer", None)
    return prune(model.eval(), tokenizer=tokenizer, **settings), processor


def load_processor(base: str, model_type: str, revision: str | None, query: str):
    """The family's project processor (``speechprune.processors``) built from ``base``'s processor files.

    The stock processor files (feature extractor, tokenizer, chat template) are read by the project
    class, so the repo gets the processor that keeps long audio, with ``query`` as its default. A family
    without a project processor keeps its stock one; a folder with weights only gets none.
    """
    import transformers

    project = processor_class(model_type)
    if project is None:
        try:
            return transformers.AutoProcessor.from_pretrained(base, revision=revision)
        except (OSError, ValueError, TypeError):  # a folder with weights only: the repo gets no processor
            return None
    try:
        return project.from_pretrained(base, revision=revision, query=query)
    except OSError:  # no feature extractor or tokenizer files: the repo gets no processor
        return None


def special_token_ids(tokenizer) -> dict:
    """The Qwen2-Audio special tokens' ids in ``tokenizer`` (for the model's fallback query rule)."""
    vocab = tokenizer.get_vocab()
    ids = {token: vocab[token] for token in QWEN2_AUDIO_SPECIAL_TOKEN_IDS if token in vocab}
    missing = set(FALLBACK_RULE_TOKENS) - set(ids)
    if missing:
        raise ValueError(f"base: the tokenizer has no {sorted(missing)} token; is it a Qwen2-Audio checkpoint?")
    return ids


def check_card_flags(base_model: str | None, dataset_id: str | None) -> None:
    """``--base-model`` and ``--dataset-id`` name Hub repos (checked before anything is loaded or written)."""
    for flag, value in (("--base-model", base_model), ("--dataset-id", dataset_id)):
        if value is not None and not is_hub_id(value, namespaced=flag == "--dataset-id"):
            raise UsageError(f"{flag}: {value!r} is not a Hub repo id; pass it as owner/name")


def render_card(
    model,
    base: str,
    settings: dict,
    repo_id: str,
    revision: str | None,
    tiny: bool,
    base_model: str | None = None,
    dataset_id: str | None = None,
) -> ModelCard:
    """The model card: YAML metadata from :func:`speechprune.hub_cards.model_card.model_card_data`, template text.

    Every fact about the family comes from its adapter (name, classes, token rate, W, fallback query
    tokens, position limit) and its project processor (``speechprune.processors``), none from the text.
    """
    adapter = adapter_for(model.config.model_type)
    project = processor_class(adapter.model_type)
    tag = adapter.model_type.replace("_", "-")
    card_data = model_card_data(
        base, repo_id=repo_id, base_model=base_model, dataset_id=dataset_id, family_tags=(tag,)
    )
    named = card_data.base_model if isinstance(card_data.base_model, str) else None
    base_line = f"[{named}](https://huggingface.co/{named})" if named else f"A {adapter.name} model"
    max_seconds = getattr(project, "max_seconds", None)
    return ModelCard.from_template(
        card_data,
        template_path=str(CARD_TEMPLATE),
        model_name=repo_id.rsplit("/", 1)[-1],
        base_model_line=base_line,
        repo_id=repo_id,
        revision=revision or "<commit-sha>",
        family=adapter.name,
        model_type=adapter.model_type,
        stock_class=adapter.stock_class,
        pruning_class=adapter.pruning_class,
        auto_classes=["AutoModel", *adapter.generation_auto_classes],
        ms_per_token=f"{adapter.seconds_per_token * 1000:.4g}",
        tokens_per_window=adapter.tokens_per_window,
        query_start=list(adapter.query_start_tokens),
        query_end=adapter.query_end_token,
        max_positions=adapter.max_positions(model),
        processor_class=project.__name__ if project else None,
        long_audio=getattr(project, "long_audio", ""),
        example_seconds=max_seconds or 90,
        length_note=f"at most {max_seconds} s" if max_seconds else "any length",
        methods=METHODS,
        tiny=tiny,
        citation=CITATION,
        **settings,
    )


def export_model(args) -> Path:
    """Write the repo folder; return its path."""
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out: {out} is a file; give a folder to write the model repo into")
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise UsageError(f"--out: {out} is not empty; give an empty or new folder, or pass --overwrite")
    pruning_settings(args)  # refuse bad settings before loading anything
    check_card_flags(getattr(args, "base_model", None), getattr(args, "dataset_id", None))
    hub = args.base != "tiny" and local_or_hub(args.base, "--base", "model folder", names=("tiny",)) is None
    try:
        settings = pruning_settings(args, base_model_type(args.base, args.revision))
        model, processor = load_base(args.base, settings, args.revision, args.dtype, args.seed)
    except OSError as err:
        if not hub:
            raise
        raise hub_failure("--base", args.base, err) from None
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)  # safetensors, config with auto_map, generation config, code files
    if processor is not None:
        processor.save_pretrained(out)  # tokenizer, feature extractor, chat template, processing code
    repo_id = args.repo_id or out.resolve().name
    card = render_card(
        model,
        args.base,
        settings,
        repo_id,
        args.card_revision,
        tiny=args.base == "tiny",
        base_model=getattr(args, "base_model", None),
        dataset_id=getattr(args, "dataset_id", None),
    )
    card.save(out / "README.md")
    return out


def main(args) -> int:
    out = export_model(args)
    files = sorted(p.name for p in out.iterdir())
    print(f"wrote {out}: {', '.join(files)}")
    return 0


__all__ = ["configure", "main", "export_model", "render_card", "load_base", "load_processor", "special_token_ids"]
