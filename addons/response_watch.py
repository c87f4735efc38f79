"""What stages may ask of a target's answer before it reaches the caller (issue 18).

A stage that wants to see or change an answer registers a `ResponseWatcher` on
the flow's state (`state.watchers`) before the request is sent. When the
target's status and headers arrive, the forward stage asks each watcher what
it needs for this answer (`ResponseWatcher.watch`):

- `None`: nothing; the answer streams past it.
- `WHOLE`: the whole body, buffered (within the size limit), handled in the
  stage's own `response` hook as before streaming existed (payload filters,
  a JSON meter extraction, an MCP `tools/list` answered as JSON).
- a `Watch`: every chunk of the body passes through `feed` as it arrives, and
  `end` once it is complete. A watch sees the body in order whether the answer
  is streamed or, because it came complete at once or something else needed
  it whole, buffered: `run_watches` is the one place both paths apply them.

A watch may hold back bytes (a partial SSE event) and give them later, and may
rewrite what it is given (`rewrites = True`: the answer then loses its
Content-Length and goes chunked). A watch never raises: a failure is logged
by the watch itself and the bytes pass unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from models.content_coding import codings


@dataclass(frozen=True)
class ResponseHead:
    """The target's status line and headers, before any of the body."""

    method: str  # the request's method
    status: int
    headers: tuple[tuple[bytes, bytes], ...]

    def header(self, name: str) -> str | None:
        wanted = name.lower().encode()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value.decode("latin-1")
        return None

    @property
    def media_type(self) -> str:
        """The Content-Type without parameters, lower case ("" when absent)."""
        return (self.header("content-type") or "").split(";", 1)[0].strip().lower()

    @property
    def is_event_stream(self) -> bool:
        return self.media_type == "text/event-stream"

    @property
    def encoded(self) -> bool:
        """Whether the body is content-encoded (gzip, br, ...): watches then see encoded bytes."""
        return bool(codings(self.header("content-encoding")))


class Watch(Protocol):
    rewrites: bool  # True if `feed`/`end` may give other bytes than they were given

    def feed(self, chunk: bytes) -> bytes:
        """The bytes to pass on for `chunk` (possibly fewer, held for later, or rewritten)."""

    def end(self) -> bytes:
        """The body is complete: whatever is still held back."""


class ResponseWatcher(Protocol):
    def watch(self, head: ResponseHead) -> Watch | Whole | None:
        """What this answer needs from the watcher's stage; see the module docstring."""


class Whole:
    """The answer must be buffered whole before anything is sent."""

    def __repr__(self) -> str:
        return "WHOLE"


WHOLE = Whole()


def watches_for(watchers: Sequence[ResponseWatcher], head: ResponseHead) -> tuple[bool, list]:
    """(whether some stage needs the whole body, the watches to run over it)."""
    whole, watches = False, []
    for watcher in watchers:
        need = watcher.watch(head)
        if need is WHOLE:
            whole = True
        elif need is not None:
            watches.append(need)
    return whole, watches


def run_watches(watches: Sequence[Watch], chunk: bytes, final: bool = False) -> bytes:
    """`chunk` through every watch in order; with `final`, each watch's `end` too."""
    for watch in watches:
        chunk = watch.feed(chunk) if chunk else b""
        if final:
            chunk += watch.end()
    return chunk


def rewrites(watches: Sequence[Watch]) -> bool:
    return any(watch.rewrites for watch in watches)
