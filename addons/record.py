"""Stage 7, record: a request log entry for every request attributed to a proxy.

The hook only captures raw material and queues it; the writer thread shapes,
redacts and inserts the rows in batches, and writes the access log lines when asked
(`portcullis_access_log=json`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson
from mitmproxy import ctx, http

from addons import access_log
from addons.batch_writer import BatchWriter
from addons.injection import caller_credential_names
from addons.response_stream import OUTCOME_MESSAGES
from addons.responses import GRANTED, PROXY_MESSAGE
from addons.state import FlowState, state_of
from models import RequestLog
from models.bulk import insert_tuples
from models.redaction import bounded_body, redact_fields, redact_pairs
from models.request_log import RESPONSE_HEADERS
from models.settings import Settings
from models.store import make_engine

log = logging.getLogger("portcullis.record")
DAY_S = 86400
# `proxyData.message` of a request the gateway let through (seed 001); refusals keep their own.
LOGGED = "Request logged"


@dataclass(eq=False)
class Material:
    """Everything a log row needs, captured on the event loop without any formatting.

    Not changed once queued, except `access_logged`, set by the writer thread.
    """

    state: FlowState
    status: int | None
    message: str
    request_body: bytes | None
    response_body: bytes | None
    ttl_days: int
    body_limit: int
    stage: str
    # The headers of the answer the caller got, raw (mitmproxy's immutable fields tuple).
    response_fields: tuple[tuple[bytes, bytes], ...] = ()
    # Its access log line is out: a batch the store refuses is retried item by item.
    access_logged: bool = False


def ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1000)


def to_row(m: Material) -> dict:
    """A `request_logs` row in seed 001's shape, redacted. Runs in the writer thread."""
    state, proxy = m.state, m.state.proxy or m.state.candidates[0]
    drop_headers, drop_query = caller_credential_names(proxy.proxy_credential)
    secrets = state.injection.secrets if state.injection else ()
    proxy_data = {
        "stage": m.stage,
        "method": state.method,
        "apiPath": state.path,
        "receivedAt": ms(state.received_at),
        "sentAt": ms(state.finished_at),
        "duration": round(state.proxy_seconds, 3),
        "status": m.status,
        "message": m.message,
        "arnBase": "",
        "apiHeaders": redact_fields(state.caller_fields, also=drop_headers),
        "apiParams": redact_pairs(state.caller_query, {q.lower() for q in drop_query}),
        "async": state.is_async,
        RESPONSE_HEADERS: response_headers(m.response_fields, secrets),
        "proxyCode": state.proxy_code,
        "streamed": state.streamed,
        "responseBytes": state.response_bytes,
    }
    if state.stream_outcome is not None:  # a streamed answer broken off, and why
        proxy_data["streamOutcome"] = state.stream_outcome
    if state.mcp_calls:
        proxy_data["mcp"] = mcp_record(state)
    if state.attempt:
        proxy_data["asyncRequestId"], proxy_data["attempt"] = state.attempt
    target_data = None
    if state.validation["requestSent"]:
        target_seconds = state.target_seconds
        target_data = {
            "sentAt": ms(state.sent_at),
            "receivedAt": ms(state.target_answered_at),
            "duration": None if target_seconds is None else round(target_seconds, 3),
            "status": state.upstream_status,
            "location": urlsplit(state.upstream.url).hostname,
        }
        if state.egress is not None:  # which proxy carried it; never its credentials
            target_data["egress"] = state.egress.record()
    return {
        "id": state.request_id,
        "proxy_id": proxy.id,
        "client_id": proxy.client_id,
        "user_id": proxy.created_by,
        "processed_at": ms(state.received_at),
        "expires_at": int(state.received_at) + m.ttl_days * DAY_S,
        "proxy_data": proxy_data,
        "target_data": target_data,
        "validation_data": dict(state.validation),
        "request_body": bounded_body(m.request_body, m.body_limit, secrets),
        "response_body": bounded_body(m.response_body, m.body_limit, secrets),
    }


def mcp_record(state: FlowState) -> dict:
    """`proxyData.mcp`: the JSON-RPC method and tool of the call, or of each call of a batch."""
    calls = [{"method": call.method, "tool": call.tool} for call in state.mcp_calls]
    return {"batch": calls} if state.mcp_batch else calls[0]


def response_headers(fields, secrets) -> dict[str, str]:
    """The caller's answer's headers: sensitive names (Set-Cookie, tokens) and the injected
    secrets' values redacted, as the request headers are."""
    return redact_fields(fields, secrets)


COLUMNS = (
    "id", "proxy_id", "client_id", "user_id", "processed_at", "expires_at",
    "proxy_data", "target_data", "validation_data", "request_body", "response_body",
)  # fmt: skip
JSON_COLUMNS = frozenset({"proxy_data", "target_data", "validation_data"})


def write_rows(
    session, materials: list[Material], access: access_log.AccessLog | None = None
) -> None:
    """Insert the rows of `materials`; their access log lines first (if `access`), so a
    store that refuses them does not keep them out of the access log."""
    rows = [to_row(m) for m in materials]
    if access is not None:
        log_access(access, materials, rows)
    insert_tuples(session, RequestLog.__table__, COLUMNS, [column_values(row) for row in rows])


def column_values(row: dict) -> tuple:
    """`row`'s values in `COLUMNS` order, the JSON columns as text."""
    return tuple(
        json_text(row[name]) if name in JSON_COLUMNS and row[name] is not None else row[name]
        for name in COLUMNS
    )


def json_text(value) -> str:
    """`value` as JSON text: orjson's (compact), or Python's where orjson refuses the value
    (a lone surrogate from a header decoded with surrogateescape, an integer past 64 bits, a
    key that is not a string). Either reads back as the same value."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value)


def log_access(access: access_log.AccessLog, materials: list[Material], rows: list[dict]) -> None:
    """Write the access log line of each material not written yet (one write per batch)."""
    lines = []
    for material, row in zip(materials, rows, strict=True):
        if not material.access_logged:
            material.access_logged = True
            try:
                lines.append(access_log.encode(row, material.state.received_at))
            except Exception:  # one unencodable row costs its own line only
                log.exception("could not encode the access log line of %s", row["id"])
    access.write(lines)


class Record:
    def __init__(self):
        self.writer: BatchWriter | None = None
        # Read by the writer thread; replaced (never changed) when the options change.
        self.access: access_log.AccessLog | None = None

    def load(self, loader) -> None:
        loader.add_option("portcullis_log_ttl_days", int, 90, "Days request logs are kept.")
        loader.add_option(
            "portcullis_log_body_bytes", int, 16384, "Bytes of each body kept in request logs."
        )
        loader.add_option("portcullis_stage", str, "prod", "`proxyData.stage` of request logs.")
        loader.add_option(
            "portcullis_access_log",
            str,
            access_log.OFF,
            "`json`: one JSON line per request (request log fields, no bodies).",
            choices=access_log.FORMATS,
        )
        loader.add_option(
            "portcullis_access_log_file",
            str,
            "",
            "File the access log lines are appended to; empty: standard error.",
        )

    def configure(self, updated) -> None:
        if {"portcullis_access_log", "portcullis_access_log_file"} & set(updated):
            options = ctx.options
            self.access = (
                access_log.AccessLog(options.portcullis_access_log_file)
                if options.portcullis_access_log == access_log.JSON
                else None
            )

    def running(self) -> None:
        engine = make_engine(Settings.from_env().database_url)
        self.writer = BatchWriter(engine, self._write, "portcullis-request-log")
        self.writer.start()

    def done(self) -> None:
        if self.writer is not None:
            self.writer.stop()

    def _write(self, session, materials: list[Material]) -> None:
        write_rows(session, materials, self.access)

    def response(self, flow: http.HTTPFlow) -> None:
        self._capture(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._capture(flow)

    def _capture(self, flow: http.HTTPFlow) -> None:
        # Never raises into mitmproxy: a logging failure must not touch the answer.
        try:
            state = state_of(flow)
            if state is None or not (state.proxy or state.candidates):
                return
            response = flow.response
            if state.stream_outcome is not None:  # a streamed answer that did not end cleanly
                message = OUTCOME_MESSAGES.get(state.stream_outcome, state.stream_outcome)
            elif state.proxy_code == GRANTED:
                message = LOGGED
            else:
                message = (response.headers.get(PROXY_MESSAGE) if response else None) or (
                    flow.error.msg if flow.error else LOGGED
                )
            self.submit(
                state,
                status=response.status_code if response else None,
                message=message,
                request_body=flow.request.raw_content,
                response_body=(
                    state.response_preview
                    if state.streamed
                    else (response.raw_content if response else None)
                ),
                response_fields=response.headers.fields if response else (),
            )
        except Exception:
            log.exception("could not queue a request log entry")

    def submit(
        self,
        state: FlowState,
        *,
        status: int | None,
        message: str,
        request_body: bytes | None,
        response_body: bytes | None,
        response_fields: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        """Queue a log entry for `state` (a flow, or an async delivery attempt)."""
        if self.writer is None:
            return
        options = ctx.options
        self.writer.submit(
            Material(
                state=state,
                status=status,
                message=message,
                request_body=request_body,
                response_body=response_body,
                ttl_days=options.portcullis_log_ttl_days,
                body_limit=options.portcullis_log_body_bytes,
                stage=options.portcullis_stage,
                response_fields=response_fields,
            )
        )
