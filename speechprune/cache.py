"""Where speechprune keeps what it downloads or builds for reuse (the demo dataset, the published annotations).

``$SPEECHPRUNE_CACHE``, else ``$XDG_CACHE_HOME/speechprune``, else ``~/.cache/speechprune``:

>>> import os
>>> os.environ["SPEECHPRUNE_CACHE"] = "/tmp/sp-cache"
>>> str(cache_dir())
'/tmp/sp-cache'
>>> del os.environ["SPEECHPRUNE_CACHE"]
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_VARIABLE = "SPEECHPRUNE_CACHE"


def cache_dir() -> Path:
    """``$SPEECHPRUNE_CACHE``, else ``$XDG_CACHE_HOME/speechprune``, else ``~/.cache/speechprune`` (not created)."""
    if os.environ.get(CACHE_VARIABLE):
        return Path(os.environ[CACHE_VARIABLE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "speechprune"


__all__ = ["CACHE_VARIABLE", "cache_dir"]
