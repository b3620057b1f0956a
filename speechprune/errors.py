"""The one kind of error that means "the user asked for something wrong".

Any component raises :class:`UsageError` for a user mistake (a bad argument, a missing path, a
run folder that does not match); ``speechprune.cli.main`` prints it as one line naming the
command and exits 2. Every other exception is a bug and keeps its traceback.

>>> str(UsageError("--rates: 1.5 is not in [0, 1)"))
'--rates: 1.5 is not in [0, 1)'
"""

from __future__ import annotations


class UsageError(ValueError):
    """A user mistake: the message names the bad argument and what to do instead."""


__all__ = ["UsageError"]
