"""Credentials never leave the process: every message that may carry a URL or a connection string goes
through ``redact`` before it is logged, returned by the API or shown on the dashboard."""

from __future__ import annotations

import re

_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):(?P<secret>[^@/\s]+)@")
_PASSWORD_OPTION = re.compile(r"(?i)(?P<head>\b(?:password|passwd|pwd)=)(?P<secret>[^,\s&;]+)")
MASK = "***"


def redact(text: str) -> str:
    """``text`` with the password of every URL (``redis://user:pw@host``) and every ``password=`` option
    (Feast's Redis connection string) replaced by ``***``."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}:{MASK}@", text)
    return _PASSWORD_OPTION.sub(lambda m: f"{m['head']}{MASK}", text)
