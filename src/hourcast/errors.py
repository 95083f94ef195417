"""Errors a user can fix. The command line prints them as one line (``hourcast: <message>``) and exits
non-zero; anything else is a bug and keeps its traceback."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or a damaged file: the message says what is wrong and what to do about it."""


class UsageError(UserError):
    """A command was given options that contradict each other or cannot select anything."""


class DamagedFile(UserError):
    """A data file cannot be read (truncated, not Parquet). It is left as it is; the message says how to
    rebuild it."""
