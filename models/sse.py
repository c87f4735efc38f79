"""Server-Sent Events (`text/event-stream`) read incrementally, and rewritten event by event.

`SseParser` follows the WHATWG event-stream rules: lines end in CRLF, LF or CR
(also when the two halves of a CRLF arrive in different chunks); a line starting
with `:` is a comment; `field: value` (one space after the colon removed, a line
without a colon is a field with an empty value); `data` lines are joined by "\\n";
`event` names the event, `id` gives its id (ignored if it contains NUL), `retry`
and unknown fields are ignored; a blank line ends an event, which is dispatched
only if it had data. A leading UTF-8 byte order mark is skipped; text that is not
UTF-8 reads as U+FFFD.

Bounded: the bytes of one event (the block up to its blank line) are never held
beyond `max_event_bytes` (1 MiB): an event that grows past it is dropped whole,
counted in `dropped`, and the rest of it up to its blank line is skipped.

`SseListener` and `SseRewriter` are response watches (addons/response_watch.py,
a structural `Watch`): the listener passes every byte unchanged and hands each
event to a callback as it completes; the rewriter passes each complete event
through a transform and holds back only the partial event at the end of a chunk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("portcullis.sse")

MAX_EVENT_BYTES = 1024 * 1024
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class SseEvent:
    """One dispatched event: its `event` field (None when absent), data and `id` field."""

    event: str | None
    data: str
    id: str | None = None

    def encode(self) -> bytes:
        """The event as event-stream bytes, ending with its blank line."""
        lines = []
        if self.event is not None:
            lines.append(f"event: {self.event}")
        if self.id is not None:
            lines.append(f"id: {self.id}")
        lines.extend(f"data: {line}" for line in self.data.split("\n"))
        return ("\n".join(lines) + "\n\n").encode()


@dataclass(frozen=True)
class SseBlock:
    """A complete block of the stream up to and including its blank line.

    `raw` is its bytes as received (empty for a dropped, oversized block);
    `event` the event it dispatches (None: comments, no data, or dropped).
    """

    raw: bytes
    event: SseEvent | None
    oversized: bool = False


class SseParser:
    """An incremental event-stream parser; `feed` bytes, get the events they complete."""

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES, keep_raw: bool = False):
        self.max_event_bytes = max_event_bytes
        self.keep_raw = keep_raw  # keep each block's bytes (for rewriting)
        self.dropped = 0  # events dropped for being over `max_event_bytes`
        self._line = bytearray()  # the current line so far
        self._raw = bytearray()  # the current block's bytes so far (keep_raw)
        self._size = 0  # the current block's size so far
        self._skipping = False  # inside an oversized block: skip to its blank line
        self._after_cr = False  # the last byte seen was a CR: an LF next is its pair
        self._skipped_line_has_text = False  # (skipping) the current line is not blank
        self._started = False  # past the optional byte order mark
        self._reset_fields()

    def _reset_fields(self) -> None:
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None
        self._lines = 0  # lines in the current block (a blank line with none ends nothing)

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """The events `chunk` completes, in order."""
        return [block.event for block in self.feed_blocks(chunk) if block.event is not None]

    def feed_blocks(self, chunk: bytes) -> list[SseBlock]:
        """The blocks `chunk` completes, in order (see `SseBlock`)."""
        if not self._started:
            joined = bytes(self._line) + chunk
            if len(joined) < len(_BOM) and _BOM.startswith(joined):
                self._line = bytearray(joined)  # maybe a BOM still arriving
                return []
            self._started = True
            self._line = bytearray()
            chunk = joined[len(_BOM) :] if joined.startswith(_BOM) else joined
        blocks: list[SseBlock] = []
        at, end = 0, len(chunk)
        if self._after_cr and at < end and chunk[0] == 0x0A:
            # The LF of a CRLF split across chunks: part of the line ending before it.
            if self.keep_raw and not self._raw and not self._skipping:
                blocks.append(SseBlock(b"\n", None))  # that line ended a block
            else:
                self._keep(b"\n")
            at = 1
        self._after_cr = False
        cr = lf = -2  # the next CR and LF at or after `at` (-1: none; -2: not looked for)
        while at < end:
            # Each is looked for again only once passed: a chunk is scanned about once.
            if -1 != cr < at:
                cr = chunk.find(b"\r", at)
            if -1 != lf < at:
                lf = chunk.find(b"\n", at)
            if cr < 0 and lf < 0:
                self._extend(chunk[at:])
                break
            stop = lf if cr < 0 or (0 <= lf < cr) else cr
            after = stop + 1
            if chunk[stop] == 0x0D:
                if after < end and chunk[after] == 0x0A:
                    after += 1
                elif after == end:
                    self._after_cr = True
            self._extend(chunk[at:stop])
            self._keep(chunk[stop:after])
            block = self._end_line()
            if block is not None:
                blocks.append(block)
            at = after
        return blocks

    def finish(self) -> SseBlock | None:
        """The stream ended: its last event if it had data but no closing blank line.

        (The standard drops such an event; counting and filtering it is the safer reading.)
        """
        if not self._skipping and self._line:
            self._end_line()
        block = None
        if not self._skipping and self._lines and self._data:
            block = SseBlock(bytes(self._raw), self._dispatch())
        self._restart()
        return block

    def pending(self) -> bytes:
        """The partial block held back (keep_raw)."""
        return bytes(self._raw)

    def _extend(self, part: bytes) -> None:
        if not part:
            return
        if self._skipping:
            self._skipped_line_has_text = True
            return
        self._size += len(part)
        if self._size > self.max_event_bytes:
            self._start_skipping()
            return
        self._line += part
        if self.keep_raw:
            self._raw += part

    def _keep(self, ending: bytes) -> None:
        """A line ending: kept in the block's raw bytes."""
        if not self._skipping:
            self._size += len(ending)
            if self.keep_raw:
                self._raw += ending

    def _start_skipping(self) -> None:
        self._skipping = True
        self._skipped_line_has_text = True  # the line that went over the bound
        self.dropped += 1
        self._restart()
        log.info("an event-stream event over %d bytes was dropped", self.max_event_bytes)

    def _restart(self) -> None:
        self._line = bytearray()
        self._raw = bytearray()
        self._size = 0
        self._reset_fields()

    def _end_line(self) -> SseBlock | None:
        """A line is complete (in `self._line`): a blank one ends the block."""
        if self._skipping:
            if self._skipped_line_has_text:
                self._skipped_line_has_text = False
                return None
            self._skipping = False
            self._restart()
            return SseBlock(b"", None, oversized=True)
        line = bytes(self._line)
        self._line = bytearray()
        if not line:
            raw = bytes(self._raw)
            event = self._dispatch() if self._data else None
            self._restart()
            return SseBlock(raw, event)
        self._lines += 1
        self._field(line.decode("utf-8", "replace"))
        return None

    def _field(self, line: str) -> None:
        if line.startswith(":"):
            return
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value

    def _dispatch(self) -> SseEvent:
        return SseEvent(self._event, "\n".join(self._data), self._id)


class SseListener:
    """A watch that passes the body unchanged and calls `on_event` for each complete event.

    `on_event` must not raise; if it does, the failure is logged and the stream goes on.
    """

    rewrites = False

    def __init__(self, on_event: Callable[[SseEvent], None], parser: SseParser | None = None):
        self.on_event = on_event
        self.parser = parser or SseParser()

    def feed(self, chunk: bytes) -> bytes:
        for event in self.parser.feed(chunk):
            self._call(event)
        return chunk

    def end(self) -> bytes:
        block = self.parser.finish()
        if block is not None and block.event is not None:
            self._call(block.event)
        return b""

    def _call(self, event: SseEvent) -> None:
        try:
            self.on_event(event)
        except Exception:
            log.exception("an event-stream listener failed on an event")


class SseRewriter:
    """A watch (rewrites=True) passing each complete event through `transform`.

    `transform` returns the event to send: the same event (equal) sends the block's
    bytes unchanged, another one is sent re-serialized, None drops the event.
    Blocks without an event (comments, keep-alives) pass unchanged; an event over the
    parser's bound is dropped (never passed unchecked). Only the partial event at the
    end of a chunk is held back; at the end of the body a last event without its
    blank line is transformed like the others. A transform that raises is logged and
    its event passes unchanged (the watch contract).
    """

    rewrites = True

    def __init__(
        self, transform: Callable[[SseEvent], SseEvent | None], parser: SseParser | None = None
    ):
        self.transform = transform
        self.parser = parser or SseParser(keep_raw=True)
        self.parser.keep_raw = True

    def feed(self, chunk: bytes) -> bytes:
        return b"".join(self._emit(block) for block in self.parser.feed_blocks(chunk))

    def end(self) -> bytes:
        held = self.parser.pending()
        block = self.parser.finish()
        if block is None:
            return held
        return self._emit(block)

    def _emit(self, block: SseBlock) -> bytes:
        if block.event is None:
            return block.raw
        try:
            sent = self.transform(block.event)
        except Exception:
            log.exception("an event-stream rewrite failed; the event passes unchanged")
            return block.raw
        if sent is None:
            return b""
        return block.raw if sent == block.event else sent.encode()


def parse_all(body: bytes, max_event_bytes: int = MAX_EVENT_BYTES) -> list[SseEvent]:
    """Every event of a complete event-stream body (a last one without its blank line too)."""
    parser = SseParser(max_event_bytes)
    events = parser.feed(body)
    last = parser.finish()
    if last is not None and last.event is not None:
        events.append(last.event)
    return events
