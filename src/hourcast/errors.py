"""The one root of hourcast's errors. Every error the package raises on purpose derives from
``HourcastError``; its message says what is wrong and what to do. The command line prints it as one line
(``hourcast: <what is wrong>; <what to do>``) and exits 1; any other exception is a bug and keeps its
traceback. Stage-specific errors (``TrainingError``, ``ExchangeFailure``, ...) live in their modules and
derive from ``HourcastError`` (or a subclass here), never from a builtin such as ``ValueError``."""

from __future__ import annotations


class HourcastError(Exception):
    """A failure the package expected: the message says what is wrong and what to do about it."""


class UserError(HourcastError):
    """Bad input (settings, options, a file): re-running as it is cannot help, the input must change."""


class UsageError(UserError):
    """A command was given options that contradict each other or cannot select anything."""


class DamagedFile(UserError):
    """A data file cannot be read (truncated, not Parquet). It is left as it is; the message says how to
    rebuild it."""
