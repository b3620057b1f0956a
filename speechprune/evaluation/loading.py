"""Load the model a run evaluates (with its processor and revision), and the helpers dataset loading shares.

The model comes with the revision the results file records: a commit sha for a Hub model, a content
hash for a local folder, ``tiny-seed0`` for the embedded tiny model. A task's rows are loaded by
:mod:`speechprune.evaluation.tasks.data`, which uses :func:`local_cache_dir` and :func:`decode_audio` here.

Example:
    >>> model, processor, revision = load_model("tiny")
    >>> revision
    'tiny-seed0'
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import torch

from speechprune.sources import hub_failure, local_or_hub

SAMPLING_RATE = 16000
_TINY = re.compile(r"tiny(?:-seed(\d+))?")


def local_cache_dir(folder: str | Path) -> Path:
    """A ``datasets`` cache folder of its own for the current files of a local dataset folder.

    ``datasets`` (5.2) names the cache of a local folder with a ``configs:`` card after the
    folder's *name* and the card, not its path or its files' state: a second folder called
    ``spiral``, or a rebuilt one, would silently load the first one's rows. The key here is the
    folder's absolute path and every file's relative path, size and modification time.
    """
    import hashlib

    from datasets import config as datasets_config

    root = Path(folder).resolve()
    digest = hashlib.sha256(str(root).encode())
    for path in sorted(p for p in root.rglob("*") if p.is_file() and ".spiral-build" not in p.parts):
        stat = path.stat()
        digest.update(f"\0{path.relative_to(root).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return Path(datasets_config.HF_DATASETS_CACHE) / "speechprune-local" / digest.hexdigest()[:16]


def decode_audio(decoder) -> torch.Tensor:
    """A decoded ``audio`` value (TorchCodec ``AudioDecoder``) -> 1-D float32 waveform."""
    samples = decoder.get_all_samples()
    if samples.sample_rate != SAMPLING_RATE:
        raise ValueError(f"audio: expected {SAMPLING_RATE} Hz after the cast, got {samples.sample_rate}")
    return samples.data.mean(dim=0).to(torch.float32)


def is_tiny(model: str) -> bool:
    """Whether ``--model`` names the embedded tiny model (``tiny`` or ``tiny-seed<N>``)."""
    return _TINY.fullmatch(model) is not None


def load_model(
    model: str,
    revision: str | None = None,
    dtype: str = "auto",
    device_map: str | None = None,
    trust_remote_code: bool = False,
):
    """Load ``(model, processor, revision_id)``.

    Args:
        model: ``tiny`` (or ``tiny-seed3``: the embedded tiny model with that weight seed), a
            local folder, or a Hub id of a SpeechPrune / Qwen2-Audio checkpoint.
        revision: a Hub branch, tag or commit to pin.
        dtype: ``auto`` (the checkpoint's), ``float32``, ``bfloat16`` or ``float16``.
        device_map: passed to ``from_pretrained`` (for example ``auto``); ``None`` leaves the
            model where it loads so the caller can place it.
        trust_remote_code: load the classes a Hub repo ships instead of the installed ones.

    Returns:
        The model in eval mode, its long-audio processor, and the revision that results.json
        records: the resolved commit sha for a Hub model, a content hash for a folder, and
        ``tiny-seed<N>`` for the tiny model.
    """
    if dtype not in ("auto", "float32", "bfloat16", "float16"):
        raise ValueError(f"dtype: expected auto, float32, bfloat16 or float16, got {dtype!r}")
    tiny = _TINY.fullmatch(model)
    if tiny:
        from speechprune.testing import tiny_speechprune

        seed = int(tiny.group(1) or 0)
        net, processor = tiny_speechprune(seed=seed)
        if dtype not in ("auto", "float32"):
            net = net.to(getattr(torch, dtype))
        return net.eval(), processor, f"tiny-seed{seed}"

    hub = local_or_hub(model, "--model", "model folder", names=("tiny",)) is None
    try:
        net, processor = _load_checkpoint(model, revision, dtype, device_map, trust_remote_code)
    except OSError as error:  # offline, no such repo, no access
        if not hub:
            raise
        raise hub_failure("--model", model, error) from None
    if not trust_remote_code and getattr(net.config, "auto_map", None):
        # Never transformers' interactive "run the custom code? [y/N]": say which code runs, in one line.
        print(
            f"speechprune: {model} ships its own model code; loading it with the installed speechprune classes "
            "(pass --trust-remote-code to run the repo's code instead)",
            file=sys.stderr,
        )
    from speechprune.evaluation.provenance import model_revision

    return net.eval(), processor, model_revision(model, revision)


def _load_checkpoint(model: str, revision, dtype: str, device_map, trust_remote_code: bool):
    kwargs = {"revision": revision, "trust_remote_code": trust_remote_code, "dtype": dtype}
    if device_map is not None:
        kwargs["device_map"] = device_map
    if trust_remote_code:
        from transformers import AutoModel, AutoProcessor

        net = AutoModel.from_pretrained(model, **kwargs)
        processor = AutoProcessor.from_pretrained(model, revision=revision, trust_remote_code=True)
    else:
        from speechprune.modeling.modeling_speechprune import Qwen2AudioSpeechPruneForConditionalGeneration
        from speechprune.modeling.processing_speechprune import SpeechPruneProcessor

        net = Qwen2AudioSpeechPruneForConditionalGeneration.from_pretrained(model, **kwargs)
        # trust_remote_code=False spelled out: left unset, transformers asks "[y/N]" on the terminal for a
        # folder whose processor config names its own classes (what export-model writes).
        processor = SpeechPruneProcessor.from_pretrained(model, revision=revision, trust_remote_code=False)
    return net, processor


__all__ = [
    "SAMPLING_RATE",
    "local_cache_dir",
    "decode_audio",
    "load_model",
]
