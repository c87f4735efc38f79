"""The data plane's access log: one JSON object per line per request, for log collectors.

Lines are built and written by the request-log writer thread from the same redacted row the
request log stores (`record.to_row`), never on the event loop. Field names are the Requests
API's (an entry's detail), without the bodies and the seed's storage keys (`pKey`, `sKey`,
`processed`, `TTL`), plus `time`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from datetime import UTC, datetime
from typing import IO

import orjson

from models.request_log import RESPONSE_HEADERS, duration_ms, shown_proxy_data

log = logging.getLogger("portcullis.access_log")
OFF, JSON = "off", "json"
FORMATS = (OFF, JSON)


def iso_time(seconds: float) -> str:
    """`seconds` since the epoch as ISO 8601 in UTC with milliseconds: 2026-12-01T03:30:27.123Z."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def entry(row: dict, received_at: float) -> dict:
    """The access log object of a request log row (`record.to_row`): the Requests API's
    detail names and values, bodies left out."""
    proxy_data = row["proxy_data"]
    return {
        "time": iso_time(received_at),
        "requestId": row["id"],
        "parentId": row["proxy_id"],
        "clientId": row["client_id"],
        "userId": row["user_id"],
        "processedAt": row["processed_at"],
        "method": proxy_data.get("method"),
        "path": proxy_data.get("apiPath"),
        "statusCode": proxy_data.get("status"),
        "duration": duration_ms(proxy_data),
        "requestHeaders": proxy_data.get("apiHeaders", {}),
        "responseHeaders": proxy_data.get(RESPONSE_HEADERS),
        "proxyData": shown_proxy_data(proxy_data),
        "targetData": row["target_data"],
        "validationData": row["validation_data"],
    }


class AccessLog:
    """Writes access log lines to a stream (standard error) or appends them to a file.

    Used by one thread only (the request-log writer).
    """

    def __init__(self, path: str = ""):
        self.path = path
        self._stream: IO[bytes] | None = None

    def write(self, lines: list[bytes]) -> None:
        """Write `lines` (each one JSON object, no newline) in one write; never raises."""
        if not lines:
            return
        try:
            stream = self._open()
            stream.write(b"".join(line + b"\n" for line in lines))
            stream.flush()
        except Exception:  # the log must never stop the request log's writer
            log.exception("could not write %d access log lines to %s", len(lines), self.where)
            self._reset()

    @property
    def where(self) -> str:
        return self.path or "standard error"

    def _reset(self) -> None:
        """Open the file anew on the next write (standard error is never closed)."""
        if self.path and self._stream is not None:
            with contextlib.suppress(OSError):
                self._stream.close()
        self._stream = None

    def _open(self) -> IO[bytes]:
        if self._stream is None:
            if self.path:
                # Appending (O_APPEND): several workers may share one file, lines stay whole.
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                self._stream = os.fdopen(fd, "ab")
            else:
                self._stream = sys.stderr.buffer
        return self._stream


def encode(row: dict, received_at: float) -> bytes:
    """One access log line (no newline) for a request log row."""
    return orjson.dumps(entry(row, received_at))
