"""The admin's access log (`portcullis.access`): one line per request it answers.

`PORTCULLIS_ACCESS_LOG=json` makes each line one JSON object (`time`, `method`, `path`,
`status`, `durationMs`, `remote`, `userId` when known), written alone on the line so a log
collector can parse it; otherwise (`text`, the default) the line is
`<time> INFO portcullis.access <method> <path> <status>` like every other admin log line.
Never a query string, a body, a token or an invite link's token.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from datetime import UTC, datetime

import orjson
from flask import Flask, Response, g, request

from models.invite import redact_invite_tokens

access_log = logging.getLogger("portcullis.access")
ENV = "PORTCULLIS_ACCESS_LOG"
TEXT, JSON = "text", "json"
FORMATS = (TEXT, JSON)


def access_format() -> str:
    """`PORTCULLIS_ACCESS_LOG`: `text` (default) or `json`; anything else stops the start."""
    value = os.environ.get(ENV, TEXT).strip().lower() or TEXT
    if value not in FORMATS:
        raise SystemExit(f"error: {ENV} must be one of {', '.join(FORMATS)}, not {value!r}")
    return value


def init_access_log(app: Flask) -> None:
    """Log every request `app` answers, in the format `PORTCULLIS_ACCESS_LOG` asks."""
    as_json = access_format() == JSON
    if as_json:
        _bare_json_handler()
    # First of all `before_request` functions: runs even when one of them answers instead.
    app.before_request_funcs.setdefault(None, []).insert(0, _started)
    app.after_request(_log_json if as_json else _log_text)


def _bare_json_handler() -> None:
    """The access lines alone on their lines (no time/level prefix), on standard error like
    the rest of the admin's log; installed once per process."""
    if any(getattr(h, "portcullis_json", False) for h in access_log.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.portcullis_json = True  # type: ignore[attr-defined]
    access_log.addHandler(handler)
    access_log.propagate = False


def _started() -> None:
    g.access_started = time.perf_counter()


def _path() -> str:
    # Path only: query strings and bodies may carry secrets; so do invite links' paths.
    return redact_invite_tokens(request.path)


def _log_text(response: Response) -> Response:
    access_log.info("%s %s %s", request.method, _path(), response.status_code)
    return response


def _log_json(response: Response) -> Response:
    started = g.get("access_started")
    line = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "method": request.method,
        "path": _path(),
        "status": response.status_code,
        "durationMs": None if started is None else round((time.perf_counter() - started) * 1000, 3),
        "remote": request.remote_addr,
    }
    user_id = _user_id()
    if user_id is not None:
        line["userId"] = user_id
    access_log.info("%s", orjson.dumps(line).decode())
    return response


def _user_id() -> str | None:
    """The id of the user the request was authenticated as (a user token, a web session or
    a pool key), if any."""
    user = g.get("user") or g.get("pool_user")
    try:
        return None if user is None else user.id
    except Exception:  # a detached row: the line goes out without it
        return None
