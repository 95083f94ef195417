"""Atomic file writes: write a temporary file beside the target, fsync, then rename over it.

A process killed at any point leaves either the old file or the new one, never a torn one.
Temporary files start with a dot, which Parquet dataset readers ignore.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

logger = logging.getLogger(__name__)
DAMAGED_INFIX = ".damaged-"


def _temporary_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(temporary: Path, path: Path) -> None:
    with open(temporary, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    _fsync_directory(path.parent)


def write_bytes(path: Path, data: bytes) -> Path:
    """Atomically replace ``path`` with ``data``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_path(path)
    temporary.write_bytes(data)
    _publish(temporary, path)
    return path


def write_text(path: Path, text: str) -> Path:
    """Atomically replace ``path`` with UTF-8 ``text``."""
    return write_bytes(path, text.encode("utf-8"))


def write_parquet(frame: pd.DataFrame, path: Path) -> Path:
    """Atomically replace ``path`` with ``frame`` as Parquet (no index)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_path(path)
    frame.to_parquet(temporary, index=False)
    _publish(temporary, path)
    return path


def remove_stale_temporaries(directory: Path) -> int:
    """Delete temporary files a killed writer left in ``directory``; returns how many."""
    removed = 0
    for leftover in directory.glob(".*.tmp"):
        leftover.unlink(missing_ok=True)
        removed += 1
    return removed


def set_aside_damaged(path: Path, error: BaseException | str, outcome: str) -> Path:
    """Rename a file (or folder) that cannot be read to ``<name>.damaged-<time>`` beside it, bytes untouched,
    and log one warning line naming both, the reader's whole error and ``outcome`` (what the reader does
    instead: "rebuilt from ...", "skipped"); returns where it went. Readers of side files call it so a
    damaged one never blocks the archive."""
    aside = path.with_name(f"{path.name}{DAMAGED_INFIX}{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}")
    try:
        os.replace(path, aside)
    except FileNotFoundError:  # another reader set it aside first
        return aside
    reason = " ".join(str(error).split()) or type(error).__name__
    logger.warning("%s cannot be read (%s): set aside as %s; %s", path, reason, aside, outcome)
    return aside


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created, with its folder, if missing) until the block ends;
    other processes and threads taking it wait."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
