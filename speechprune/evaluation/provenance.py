"""Provenance: what produced a result, pinned so that anyone can check it later.

- :func:`content_hash`: a sha256 over a folder's files, the revision of a local model or dataset folder;
- :func:`is_pinned`: whether a revision names fixed content (a commit sha or a content hash);
- :func:`model_revision` and :func:`dataset_revision`: the Hub commit of a model or dataset, or a folder's
  content hash;
- :func:`git_hash` and :func:`package_versions`: the code and library versions a run used.

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "config.json").write_text("{}")
    >>> digest = content_hash(folder)
    >>> _ = (folder / "README.md").write_text("a card")  # cards change when results are published
    >>> content_hash(folder) == digest, is_pinned(digest), is_pinned("main")
    (True, True, False)
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import subprocess
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

# Names skipped at any depth by content_hash: the card and eval results change when results are published,
# and the git/cache folders are not content. ".spiral-build" is build-spiral's resume state
# (dataset_script.build.STATE_DIR), never uploaded: without it a built folder hashes as its Hub copy does, so a
# claimed dataset commit can be checked against the folder.
HASH_EXCLUDE = frozenset(
    {".git", ".gitattributes", ".eval_results", ".cache", "__pycache__", "README.md", ".spiral-build"}
)
PACKAGES = ("speechprune", "torch", "transformers", "datasets", "evaluate", "accelerate", "huggingface_hub")
_PINNED = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def package_versions(packages: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    """Installed versions of the packages a result depends on (``None`` when one is absent), and Python's."""
    versions = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_hash(folder: str | os.PathLike | None = None) -> str | None:
    """The commit checked out where ``folder`` (default: this package) lives, or ``None`` outside git."""
    where = Path(folder) if folder is not None else Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def is_pinned(revision: object) -> bool:
    """Whether ``revision`` names fixed content: a 40-hex git commit or a 64-hex :func:`content_hash`.

    >>> is_pinned("main"), is_pinned("0" * 40), is_pinned("f" * 64), is_pinned(None)
    (False, True, True, False)
    """
    return isinstance(revision, str) and _PINNED.fullmatch(revision) is not None


def content_hash(folder: str | os.PathLike, exclude: Iterable[str] = HASH_EXCLUDE) -> str:
    """A sha256 (64 hex digits) over a folder's files: the revision of a local model or dataset folder.

    Files are visited in sorted order of their relative POSIX path; each contributes its path, a NUL byte,
    the sha256 of its bytes and a newline. Any file or folder whose name is in ``exclude`` is skipped
    (by default the card ``README.md``, ``.eval_results``, ``.git``, ``.gitattributes``, ``.cache`` and
    ``__pycache__``), so publishing results into a model folder does not change its hash, and a Hub snapshot
    (symlinks are followed) hashes like the folder it was uploaded from.
    """
    root = Path(folder)
    digest = hashlib.sha256()
    for relative in payload_files(root, exclude):
        file_digest = hashlib.sha256()
        with open(root / relative, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                file_digest.update(chunk)
        digest.update(relative.encode() + b"\0" + file_digest.digest() + b"\n")
    return digest.hexdigest()


def payload_files(folder: str | os.PathLike, exclude: Iterable[str] = HASH_EXCLUDE) -> list[str]:
    """Relative POSIX paths of the files :func:`content_hash` covers, sorted."""
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"folder {str(root)!r} is not a directory")
    skip = frozenset(exclude)
    files = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = [name for name in dirnames if name not in skip]
        files.extend(Path(dirpath, name).relative_to(root).as_posix() for name in filenames if name not in skip)
    return sorted(files)


def model_revision(model: str, revision: str | None = None) -> str:
    """The commit sha of a Hub model (from the local cache, no network) or a folder's content hash."""
    if Path(model).is_dir():
        return content_hash(model)
    from transformers.utils.hub import cached_file, extract_commit_hash

    resolved = cached_file(model, "config.json", revision=revision)
    sha = extract_commit_hash(resolved, None)
    if sha is None:
        raise ValueError(f"model: could not resolve the commit of {model!r} at revision {revision!r}")
    return sha


def dataset_revision(dataset: str, revision: str | None) -> str | None:
    """A local folder's content hash, or the Hub commit of a dataset (``revision`` as given when offline)."""
    if Path(dataset).is_dir():
        return content_hash(dataset)
    try:
        from huggingface_hub import HfApi

        return HfApi().dataset_info(dataset, revision=revision).sha
    except Exception:  # offline, gated or private: the fingerprint still identifies the rows
        return revision


__all__ = [
    "HASH_EXCLUDE",
    "PACKAGES",
    "package_versions",
    "git_hash",
    "is_pinned",
    "content_hash",
    "payload_files",
    "model_revision",
    "dataset_revision",
]
