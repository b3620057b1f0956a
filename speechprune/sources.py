"""Telling a local path from a Hub id, so that a missing folder is reported as a missing folder.

``from_pretrained`` and ``load_dataset`` treat any name that is not an existing folder as a Hub id, so a
mistyped folder ends as "Repo id must be in the form ..." or "Couldn't reach ... on the Hub". The rule
here: an existing path is local; a name of the Hub form ``owner/name`` is a Hub id; anything else (an
absolute or relative path, ``~``, a bare name, more than one ``/``) is a local path that does not exist.

>>> hub_id_form("Qwen/Qwen2-Audio-7B-Instruct"), hub_id_form("./spiral"), hub_id_form("runs/a/b"), hub_id_form("x")
(True, False, False, False)
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from speechprune.errors import UsageError

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def hub_id_form(value: str) -> bool:
    """Whether ``value`` reads like a Hub repository id (``owner/name``, no path prefix)."""
    return _HUB_ID.fullmatch(value) is not None and ".." not in value


def local_or_hub(value: str, flag: str, what: str, names: tuple[str, ...] = ()) -> Path | None:
    """The existing local path ``value`` names, or ``None`` when ``value`` is a Hub id.

    Args:
        value: what the user gave.
        flag: the argument, for the message (``--model``).
        what: what it should be, for the message (``model folder``).
        names: other accepted values (``("tiny",)``), offered when ``value`` is close to one.

    Raises:
        UsageError: ``value`` is neither an existing path nor of the Hub form.
    """
    path = Path(value).expanduser()
    if path.exists():
        return path
    if hub_id_form(value):
        return None
    close = difflib.get_close_matches(value, names, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    raise UsageError(f"{flag}: no {what} {value!r} here ({hint}a Hub id reads owner/name)")


def hub_failure(flag: str, value: str, error: BaseException) -> UsageError:
    """One line for a Hub id that could not be loaded (offline, missing, gated), keeping the library's reason."""
    lines = str(error).strip().splitlines()
    reason = f"{type(error).__name__}: {lines[0][:300]}" if lines else type(error).__name__
    return UsageError(f"{flag}: could not load {value!r} from the Hub ({reason}); check the id and the network")


__all__ = ["hub_id_form", "local_or_hub", "hub_failure"]
