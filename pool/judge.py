"""The judge: what a check's request looked like when it arrived, and where the judge is.

A check sends a request through a pool member to the judge with a fresh random nonce; the
judge answers `{"nonce", "remote_addr", "headers", "method"}`. The checker compares the echoed
nonce with the one it sent (a member that answers the judge request itself, or serves a
cached answer, cannot know it) and reads the member's anonymity from the headers and the
address the request came from.

Where the judge is (`judge_url`): `PORTCULLIS_POOL_JUDGE_URL` if set, else
`PORTCULLIS_PUBLIC_URL` + "/pool/judge", else the address `run_admin.py serve` listens on
(it calls `remember_listen_url`; a wildcard listen address becomes loopback). Only the first
two reach members on other hosts.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable

from models.settings import Settings

JUDGE_PATH = "/pool/judge"
NONCE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
# Echoing these would hand a script on the admin's own pages the HttpOnly session cookie
# (cross-site tracing); the checker never sends them to the judge.
REDACTED_HEADERS = frozenset({"cookie", "authorization"})
REDACTED = "[redacted]"

_listen_url: str | None = None


def new_nonce() -> str:
    """A fresh random nonce for one check (URL-safe, 128 bits)."""
    return secrets.token_urlsafe(16)


def judge_answer(
    nonce: str, remote_addr: str | None, headers: Iterable[tuple[str, str]], method: str
) -> dict:
    """The judge's answer for one request; repeated headers are joined with ", "."""
    echoed: dict[str, str] = {}
    for name, value in headers:
        value = REDACTED if name.lower() in REDACTED_HEADERS else value
        echoed[name] = f"{echoed[name]}, {value}" if name in echoed else value
    return {"nonce": nonce, "remote_addr": remote_addr, "headers": echoed, "method": method}


def remember_listen_url(host: str, port: int) -> None:
    """Record where `serve` listens: the judge URL when none is configured."""
    global _listen_url
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    shown = f"[{host}]" if ":" in host else host
    _listen_url = f"http://{shown}:{port}{JUDGE_PATH}"


def judge_url(settings: Settings) -> str | None:
    """Where checks send their requests (see the module's docstring); None when unknown."""
    if settings.pool_judge_url:
        return settings.pool_judge_url
    if settings.public_url:
        return settings.public_url.rstrip("/") + JUDGE_PATH
    return _listen_url
