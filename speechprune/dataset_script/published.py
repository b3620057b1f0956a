"""The published SPIRAL annotations: downloaded once from the authors' GitHub repository, checked, cached.

``data.jsonl`` (1,012 dialogues) and ``data_h.jsonl`` (the 401 of SPIRAL-H) are read from the raw files of
``linyueqian/SPIRAL_Dataset`` (branch ``main``), verified against the sha256 of SPEC section 4, and kept under
``<cache>/spiral-annotations/`` (``speechprune.cache.cache_dir``). A cached file is used again only while
its hash still matches, so a later build needs no network. A download whose hash differs is refused and
nothing is cached: the authors' files changed, or something altered them on the way.

Example (offline it answers with one line saying what to pass instead)::

    >>> paths = fetch_published()  # doctest: +SKIP
    >>> sorted(paths)  # doctest: +SKIP
    ['data.jsonl', 'data_h.jsonl']
"""

from __future__ import annotations

import hashlib
import os
import secrets
import urllib.error
import urllib.request
from pathlib import Path

from speechprune.cache import cache_dir
from speechprune.errors import UsageError

REPOSITORY = "linyueqian/SPIRAL_Dataset"
BASE_URL = f"https://raw.githubusercontent.com/{REPOSITORY}/main/"
#: file name -> sha256 (SPEC section 4)
PUBLISHED_FILES = {
    "data.jsonl": "485225b9ef52c98298ceb06745c7acf022dcc7c6436c610a17dbd11e8022519f",
    "data_h.jsonl": "a6c33e2a9ebf8f79c298f6aeb86a904ea136bc3bd845cc87c25fd6812750328c",
}
CACHE_SUBDIR = "spiral-annotations"
OFFLINE_HINT = "pass --annotations data.jsonl --hard data_h.jsonl from a copy of github.com/" + REPOSITORY + " instead"


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _download(url: str, target: Path, timeout: float) -> tuple[Path, str]:
    """Stream ``url`` into a new temporary file beside ``target``; returns (that file, its sha256).

    The file is opened with ``open(..., "xb")`` so that it follows the user's umask (``mkstemp`` would make it 0600).
    """
    digest = hashlib.sha256()
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, digest.hexdigest()


def fetch_published(
    cache: str | Path | None = None,
    *,
    base_url: str | None = None,
    files: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> dict[str, Path]:
    """The cached, verified published annotation files: ``{"data.jsonl": path, "data_h.jsonl": path}``.

    Args:
        cache: folder to keep them in (default ``cache_dir() / "spiral-annotations"``).
        base_url: where the files are (``base_url + name``); default ``BASE_URL``, the authors' repository.
        files: name -> expected sha256 (default ``PUBLISHED_FILES``).
        timeout: seconds to wait for the server.

    Raises:
        UsageError: the download failed (offline) or its hash is not the published one; one line that says
            what to pass instead.
    """
    files = PUBLISHED_FILES if files is None else files
    base_url = BASE_URL if base_url is None else base_url
    folder = Path(cache) if cache is not None else cache_dir() / CACHE_SUBDIR
    paths = {}
    for name, expected in files.items():
        path = folder / name
        if path.is_file() and _sha256(path) == expected:
            paths[name] = path
            continue
        url = base_url + name
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UsageError(
                f"--annotations: cannot create the cache folder {folder} ({err.strerror}); "
                f"set $SPEECHPRUNE_CACHE to a writable folder, or {OFFLINE_HINT}"
            ) from None
        try:
            tmp, actual = _download(url, path, timeout)
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", None) or err
            raise UsageError(f"--annotations: could not download {url} ({reason}); {OFFLINE_HINT}") from None
        if actual != expected:
            tmp.unlink()
            raise UsageError(
                f"--annotations: {url} has sha256 {actual}, not the published {expected} (SPEC section 4); "
                f"the file changed or was altered on the way, so it was not used; {OFFLINE_HINT}"
            )
        os.replace(tmp, path)
        paths[name] = path
    return paths


__all__ = ["BASE_URL", "PUBLISHED_FILES", "REPOSITORY", "fetch_published"]
