"""Payload filters on the target's answer (issue 13 item 4), between forward and respond.

A proxy's filters (`ProxyView.filters`, from the snapshot, already in the fixed order
target credential → target → proxy credential → proxy) apply to every 2xx answer
with a body; each filter's output feeds the next (models/json_paths.py does the work):

- the body is decoded (`gzip`, `x-gzip`, `deflate`; never past the response size
  limit) and parsed with `models.json_limits.loads`; a body that is not JSON becomes
  422 `RESPONSE_NOT_JSON`, an encoding the gateway cannot decode 502: nothing is
  ever passed on unfiltered;
- the filtered document goes out as compact UTF-8 JSON without `Content-Encoding`,
  with its own `Content-Length` (digests of the old body are dropped);
- answers of proxies without filters, non-2xx answers, HEAD answers, 204/205 and
  empty bodies are left exactly as they came, byte for byte.

Answers stream to the caller unless some stage needs them whole: this step
registers a watcher (`FilterWatcher`) that asks for the whole body exactly when
`filters_apply` says so, so a filtered answer is always buffered (within the
size limit) and never streams past the filters. Large bodies are filtered in a
worker thread so the event loop keeps serving other flows.

Async deliveries get the same treatment before their answer is stored
(`filtered_delivery`, called by the dispatcher).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from mitmproxy import ctx, http

from addons.failsafe import fail_closed
from addons.response_watch import WHOLE, ResponseHead, Whole
from addons.responses import (
    GATEWAY_ERROR,
    GRANTED,
    TOO_LARGE,
    internal_error,
    proxy_error,
    replace_response,
)
from addons.responses import too_large as too_large_response
from addons.state import FlowState, state_of
from addons.upstream import UpstreamResponse
from models.content_coding import GZIP, CodingError, codings, decode_bounded
from models.json_limits import loads
from models.payload_filter import FilterStep

log = logging.getLogger("portcullis.filters")

FILTER_REFUSED = "response-filter-refused"
OFFLOAD_BYTES = 256 * 1024  # bodies above this are filtered off the event loop
BODYLESS = frozenset({204, 205})
# Headers describing the target's bytes, which the filtered body no longer is.
STALE_HEADERS = ("content-encoding", "content-md5", "digest", "content-digest", "repr-digest")
# What a filtered answer drops (it gets its own Content-Length), as mitmproxy stores names.
DROPPED_WHEN_FILTERED = frozenset(n.encode() for n in (*STALE_HEADERS, "transfer-encoding"))


@dataclass(frozen=True)
class Refusal:
    """Why a filtered answer cannot be given: the status, machine code and message."""

    status: int
    code: str
    message: str
    details: dict = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class TooLarge:
    """The decoded or filtered body would exceed the response size limit."""

    limit: int


def filters_apply(steps: Sequence[FilterStep], method: str, status: int) -> bool:
    """Whether an answer must go through the filters (and so be buffered whole)."""
    return bool(steps) and 200 <= status < 300 and status not in BODYLESS and method != "HEAD"


def filter_body(
    steps: Sequence[FilterStep], body: bytes, content_encoding: str | None, limit: int
) -> bytes | Refusal | TooLarge:
    """The filtered body (identity-encoded JSON), or why there is none. Pure, no I/O."""
    decoded = _decoded(body, content_encoding, limit)
    if not isinstance(decoded, bytes):
        return decoded
    try:
        document = loads(decoded)
    except ValueError as error:  # not JSON, not UTF-8, too deep, not I-JSON
        return Refusal(
            422,
            "RESPONSE_NOT_JSON",
            "The target's response is not JSON; this proxy has payload filters, so it is "
            "not passed on unfiltered",
            {"reason": str(error)[:200]},
        )
    for step in steps:
        document = step.apply(document)
    filtered = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    return TooLarge(limit) if len(filtered) > limit else filtered


def _decoded(body: bytes, content_encoding: str | None, limit: int) -> bytes | Refusal | TooLarge:
    names = codings(content_encoding)
    if not names:
        return body
    if len(names) > 1 or names[0] not in GZIP | {"deflate"}:
        return Refusal(
            502,
            "RESPONSE_ENCODING_UNSUPPORTED",
            f"The target's response is encoded as {content_encoding!r}; this proxy has payload "
            "filters, which can only read gzip or deflate, so it is not passed on",
        )
    try:
        decoded = decode_bounded(body, names[0], limit)
    except CodingError as error:
        return Refusal(
            502,
            "RESPONSE_ENCODING_INVALID",
            f"The target's {names[0]} response could not be decoded ({error}); this proxy has "
            "payload filters, so it is not passed on",
        )
    return TooLarge(limit) if decoded is None else decoded


async def run_filters(
    steps: Sequence[FilterStep], body: bytes, content_encoding: str | None, limit: int
) -> bytes | Refusal | TooLarge:
    """`filter_body`, in a worker thread when the body is large."""
    if len(body) > OFFLOAD_BYTES:
        return await asyncio.to_thread(filter_body, steps, body, content_encoding, limit)
    return filter_body(steps, body, content_encoding, limit)


def _error_response(outcome: Refusal | TooLarge, request_id: str | None) -> http.Response:
    if isinstance(outcome, TooLarge):
        return too_large_response(None, outcome.limit, request_id or "")
    return proxy_error(
        outcome.status,
        FILTER_REFUSED,
        outcome.code,
        outcome.message,
        outcome.details,
        request_id=request_id,
    )


@dataclass(frozen=True)
class FilterWatcher:
    """Asks the forward stage for the whole body of each answer the filters apply to."""

    steps: tuple[FilterStep, ...]

    def watch(self, head: ResponseHead) -> Whole | None:
        return WHOLE if filters_apply(self.steps, head.method, head.status) else None


class PayloadFilters:
    """The filter step: rewrites the settled answer of a granted Proxy API request."""

    @fail_closed
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        """Before anything is sent: filtered answers must be buffered, never streamed."""
        state = state_of(flow)
        if state is None or state.is_async or state.proxy is None or not state.proxy.filters:
            return
        state.watchers.append(FilterWatcher(tuple(state.proxy.filters)))

    @fail_closed
    async def response(self, flow: http.HTTPFlow) -> None:
        state = state_of(flow)
        if state is None or state.is_async or state.proxy is None:
            return
        response = state.final_response
        if (
            response is None
            or state.proxy_code != GRANTED
            or state.upstream_status is None
            or not filters_apply(state.proxy.filters, flow.request.method, response.status_code)
            or not response.raw_content
        ):
            return  # an empty body: nothing to filter, nothing to leak
        try:
            await self._filter(state, response)
        except Exception:
            # Never the unfiltered answer: the caller gets the gateway's 500 (the respond
            # stage sends `final_response`, so that is what must change).
            log.exception("payload filters failed for proxy %s", state.proxy.id)
            state.mark("systemError")
            state.proxy_code = GATEWAY_ERROR
            replace_response(response, internal_error(state.request_id))

    @staticmethod
    async def _filter(state: FlowState, response: http.Response) -> None:
        outcome = await run_filters(
            state.proxy.filters,
            response.raw_content,
            response.headers.get("content-encoding"),
            ctx.options.portcullis_max_response_bytes,
        )
        if isinstance(outcome, bytes):
            drop_headers(response.headers, DROPPED_WHEN_FILTERED)
            response.raw_content = outcome
            response.headers["content-length"] = str(len(outcome))
            return
        state.proxy_code = TOO_LARGE if isinstance(outcome, TooLarge) else FILTER_REFUSED
        replace_response(response, _error_response(outcome, state.request_id))


def drop_headers(headers: http.Headers, names: frozenset[bytes]) -> None:
    """Remove every field named in `names` (lower case), in one pass over the fields
    (one `pop` per name costs a pass each)."""
    if any(name.lower() in names for name, _value in headers.fields):
        headers.fields = tuple(field for field in headers.fields if field[0].lower() not in names)


async def filtered_delivery(
    steps: Sequence[FilterStep], method: str, response: UpstreamResponse, limit: int
) -> UpstreamResponse:
    """An async delivery's answer as it is stored: filtered like a Proxy API answer."""
    if not filters_apply(steps, method, response.status) or not response.body:
        return response
    encoding = next(
        (v.decode("latin-1") for n, v in response.headers if n.lower() == b"content-encoding"),
        None,
    )
    outcome = await run_filters(steps, response.body, encoding, limit)
    if isinstance(outcome, bytes):
        dropped = {name.encode() for name in STALE_HEADERS} | {b"content-length"}
        headers = tuple((n, v) for n, v in response.headers if n.lower() not in dropped)
        headers += ((b"content-length", str(len(outcome)).encode()),)
        return dataclasses.replace(response, headers=headers, body=outcome)
    error = _error_response(outcome, None)
    return dataclasses.replace(
        response,
        status=error.status_code,
        reason=error.reason,
        headers=tuple((n.encode(), v.encode()) for n, v in error.headers.items(multi=True)),
        body=error.raw_content or b"",
    )
