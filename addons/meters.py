"""Usage meters, right after the limit stage: count matching requests, refuse over a limit.

- `request_count` meters add 1 per matching request, checked and counted at once
  (all the proxy's matching meters in one `consume`: all or none).
- `response_value` meters are checked before forwarding: a window refuses the
  request (the target never sees it) when it is already at or over its limit,
  or when the average value of the answers counted in it so far would take it
  past the limit. The value read from the target's answer is added afterwards
  (`models/meter_engine.py`: a missing or non-numeric value counts 0, is left out
  of the average, and a log line says why). Requests in flight at once are all
  checked against the same count, so a window can still end above its limit.
- Over a limit: 429 `METER_LIMIT_EXCEEDED` naming the meter and window, with
  `Retry-After`. Counters unavailable (Redis down): 503 `LIMITS_UNAVAILABLE`.
- Conditional meters with body checks need the body: checked in `request` once
  it is in. A body that cannot be read before forwarding (streamed because it is
  large, or content-encoded) counts as matching, so a meter is never bypassed.
- Async API: checked and counted at accept; values are added for each delivered
  attempt's answer (`count_response`, called by the dispatcher).

Every meter counts in all four windows (minute, hour, day, month), limited or
not; each count goes to the store in batches for the Core API's usage read-out.
"""

from __future__ import annotations

import functools
import logging
import math
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from mitmproxy import http

from addons.batch_writer import BatchWriter
from addons.budget import Budget
from addons.counters import (
    CountersUnavailable,
    Limit,
    Outcome,
    SharedCounters,
    Window,
    WindowCount,
)
from addons.events import Events
from addons.failsafe import fail_closed
from addons.limit import limits_unavailable
from addons.meter_usage import UsageNotes, meter_key, write_usage
from addons.outbound import to_flow_response
from addons.responses import DENIED, GATEWAY_ERROR, answer, answered, body_follows, proxy_error
from addons.state import FlowState, state_of
from addons.stream_bridge import BRIDGE
from models.json_limits import loads
from models.meter_engine import NOT_JSON, REQUEST_COUNT, RESPONSE_VALUE, CompiledMeter
from models.rule_engine import RequestFacts
from models.settings import Settings
from models.store import make_engine

log = logging.getLogger("portcullis.meters")
UNLIMITED = 2**62
# The usage read-out's rows are coalesced per meter window over this long: each write
# keeps only a window's latest count, so a busier meter costs no more rows (and many
# meters cost the writer thread one upsert per window every interval, not per request).
USAGE_WRITE_INTERVAL_S = 5.0
# Limit lists are built once per meter and its limits, not once per request.
LIMIT_LISTS_CACHED = 4096
UNREADABLE = object()  # a request body that cannot be read before forwarding
_pending: weakref.WeakKeyDictionary[http.HTTPFlow, tuple[CompiledMeter, ...]] = (
    weakref.WeakKeyDictionary()
)


def counting(meter: CompiledMeter) -> tuple[Limit, ...]:
    """Add to every window; only the configured limits can refuse."""
    return _counting(meter.id, meter.limits)


@functools.lru_cache(maxsize=LIMIT_LISTS_CACHED)
def _counting(meter_id: str, windows: tuple[tuple[str, int], ...]) -> tuple[Limit, ...]:
    limits = dict(windows)
    return tuple(Limit(meter_key(meter_id), w, limits.get(w.value, UNLIMITED)) for w in Window)


def answers_key(meter_id: str) -> str:
    """How many answers a response_value meter has counted: its per-request estimate."""
    return f"meter-answers:{meter_id}"


def reading(meter: CompiledMeter) -> tuple[Limit, ...]:
    """Read (with cost 0) each limited window's use and number of answers counted."""
    return _reading(meter.id, meter.limits)


@functools.lru_cache(maxsize=LIMIT_LISTS_CACHED)
def _reading(meter_id: str, windows: tuple[tuple[str, int], ...]) -> tuple[Limit, ...]:
    return tuple(
        Limit(key, Window(w), UNLIMITED)
        for w, _limit in windows
        for key in (meter_key(meter_id), answers_key(meter_id))
    )


def over_limit(meter: CompiledMeter, outcome: Outcome) -> tuple[WindowCount, int] | None:
    """The window (and its limit) that refuses the next request of a response_value meter.

    Refused when the window is at or over its limit, or when the average value of
    the answers counted in it so far would take it past the limit.
    """
    refusing = []
    counts = outcome.windows
    for index, (_window, limit) in enumerate(meter.limits):
        used, answers = counts[2 * index], counts[2 * index + 1].used
        estimate = math.ceil(used.used / answers) if answers else 0
        if used.used >= limit or used.used + estimate > limit:
            refusing.append((used, limit))
    return max(refusing, key=lambda item: item[0].resets_at) if refusing else None


def request_document(request: http.Request) -> Any:
    """The request body as JSON for body checks; UNREADABLE if it cannot be read here."""
    if request.stream or request.raw_content is None:
        return UNREADABLE
    return body_document(request.raw_content, request.headers.get("content-encoding"))


def body_document(body: bytes, encoding: str | None) -> Any:
    """A request body as JSON; UNREADABLE when content-encoded, NOT_JSON when not JSON."""
    if (encoding or "identity").strip().lower() not in ("", "identity"):
        return UNREADABLE
    try:
        return loads(body)
    except ValueError:
        return NOT_JSON


def matching(meters: Sequence[CompiledMeter], state: FlowState, document: Any):
    """The meters the request counts toward."""
    if not any(m.conditional for m in meters):
        return list(meters)
    reads_headers, reads_query = state.proxy.meters_read
    facts = RequestFacts(
        state.method,
        state.path,
        state.caller_headers if reads_headers else (),  # only what the predicates look at
        state.caller_query if reads_query else (),
    )
    found = []
    for meter in meters:
        if document is UNREADABLE and meter.needs_body:
            # The body checks cannot be read before forwarding: the rest decide.
            if meter.rule is None or any(meter.rule.matches(r) for r in facts.readings()):
                found.append(meter)
        elif meter.matches(facts, document):
            found.append(meter)
    return found


def meter_limited(meter: CompiledMeter, refused: WindowCount, now: float, request_id: str):
    retry_after = refused.resets_in(now)
    window = refused.limit.window.value
    limit = dict(meter.limits)[window]
    message = (
        f"Meter {meter.name!r} is at its limit of {limit} per {window}; retry in {retry_after} s"
    )
    details = {
        "meterId": meter.id,
        "meterName": meter.name,
        "window": window,
        "limit": limit,
        "used": refused.used,
        "retryAfterSeconds": retry_after,
    }
    response = proxy_error(429, DENIED, "METER_LIMIT_EXCEEDED", message, details, request_id)
    response.headers["Retry-After"] = str(retry_after)
    return response


class Meters:
    """The meters stage (after RateLimit, before Forward) and the adding of response values."""

    def __init__(
        self, shared: SharedCounters, budget: Budget | None = None, events: Events | None = None
    ):
        self.shared = shared
        self.budget = budget  # debits each counted value at the proxy's unit price
        self.events = events  # ratelimit.reached, once per meter and window (addons/events.py)
        self.writer: BatchWriter | None = None
        self.usage: UsageNotes | None = None

    def running(self) -> None:
        engine = make_engine(Settings.from_env().database_url)
        self.writer = BatchWriter(engine, write_usage, "portcullis-meter-usage")
        self.writer.start()
        self.usage = UsageNotes(self.writer, USAGE_WRITE_INTERVAL_S)
        self.usage.start()

    def done(self) -> None:
        if self.usage is not None:
            self.usage.stop()
        if self.writer is not None:
            self.writer.stop()

    def _now(self) -> float:
        return self.shared.clock()  # the host's clock, or the limits' test clock in tests

    @fail_closed
    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        if answered(flow):
            return
        state = state_of(flow)
        meters = state.proxy.meters
        if not meters:
            return
        if any(m.needs_body for m in meters) and body_follows(flow.request):
            if not flow.request.stream:
                return  # checked in `request`, once the body is in
            await self._check(flow, state, meters, UNREADABLE)
            return
        await self._check(flow, state, meters, request_document(flow.request))

    @fail_closed
    async def request(self, flow: http.HTTPFlow) -> None:
        state = state_of(flow)
        if answered(flow) or state is None or state.proxy is None or flow.request.stream:
            return
        meters = state.proxy.meters
        if any(m.needs_body for m in meters) and flow not in _pending:
            await self._check(flow, state, meters, request_document(flow.request))

    async def _check(self, flow, state: FlowState, meters, document: Any) -> None:
        found = matching(meters, state, document)
        _pending[flow] = tuple(m for m in found if m.meter_type == RESPONSE_VALUE)
        if not found:
            return
        now = self._now()
        try:
            for meter in found:
                if meter.meter_type == RESPONSE_VALUE and meter.limits:
                    outcome = await self.shared.counters.consume(reading(meter), 0, now=now)
                    refused = over_limit(meter, outcome)
                    if refused is not None:
                        return self._refuse(flow, state, meter, refused[0], now)
            counted = [m for m in found if m.meter_type == REQUEST_COUNT]
            if counted:
                limits = [limit for m in counted for limit in counting(m)]
                outcome = await self.shared.counters.consume(limits, 1, now=now)
                if not outcome.allowed:
                    key = outcome.refused.limit.key
                    meter = next(m for m in counted if meter_key(m.id) == key)
                    return self._refuse(flow, state, meter, outcome.refused, now)
                self._write(outcome)
        except CountersUnavailable:
            state.mark("systemError")
            state.proxy_code = GATEWAY_ERROR
            answer(flow, limits_unavailable(state.request_id))

    def _refuse(self, flow, state: FlowState, meter, refused: WindowCount, now: float) -> None:
        _pending.pop(flow, None)
        response = meter_limited(meter, refused, now, state.request_id)
        if state.routed:  # refused in `request`: forward already prepared the flow
            BRIDGE.forget(flow)
            state.final_response = flow.response = response
        else:
            answer(flow, response)
        state.proxy_code = DENIED
        if self.events is not None:
            window = refused.limit.window
            proxy = state.proxy
            start = window.bounds(now)[0]
            self.events.rate_limit_reached(proxy.client_id, proxy.id, window.value, start, meter.id)

    async def response(self, flow: http.HTTPFlow) -> None:
        """Add the answer's values. Never raises: the answer the target gave is sent as it is,
        a failure to count it costs its value (and a traceback in the log)."""
        try:
            meters = _pending.pop(flow, ())
            state = state_of(flow)
            if not meters or state is None or state.upstream_status is None:
                return  # the target did not answer: nothing to add
            answer_ = state.final_response or flow.response
            await self.count_response(
                state, meters, answer_.headers.get, lambda: response_document(answer_)
            )
        except Exception:
            log.exception("counting meters of %s failed", flow.request.path.split("?")[0])

    async def count_response(
        self,
        state: FlowState,
        meters: Sequence[CompiledMeter],
        header: Callable[[str], str | None],
        document: Callable[[], Any],
    ) -> None:
        """Add each response_value meter's value read from a target's answer. Counters that
        are unavailable cost the value (logged); the callers catch anything else."""
        parsed: Any = None
        for meter in meters:
            if meter.extraction.location == "body" and parsed is None:
                parsed = document()
            value, why = meter.extraction.extract(header, parsed)
            if why is not None:
                log.info("meter %s counts 0 for this answer: %s", meter.id, why)
                continue
            now = self._now()
            try:
                await self.shared.counters.consume(answering(meter.id), 1, now=now)
                if value == 0:
                    continue
                outcome = await self.shared.counters.consume(counting_all(meter.id), value, now=now)
            except CountersUnavailable:
                log.warning(
                    "meter %s: %d units not counted (counters unavailable)", meter.id, value
                )
                continue
            self._write(outcome)
            await self._charge(state, meter, value)

    async def _charge(self, state: FlowState, meter: CompiledMeter, value: int) -> None:
        """The budget's debit for `value` units (nothing when the proxy has no unit price)."""
        if self.budget is None:
            return
        proxy = state.proxy
        try:
            await self.budget.charge_units(
                state.snapshot, proxy.client_id, proxy.id, state.request_id, meter.id, value
            )
        except CountersUnavailable:
            log.warning("meter %s: %d units not charged (counters unavailable)", meter.id, value)

    async def count_delivery(self, state: FlowState, body: bytes | None, answer_) -> None:
        """An async attempt's answer (an UpstreamResponse): add the values of the proxy's
        matching response_value meters (checked, and request_count counted, at accept).
        Never raises."""
        try:
            meters = [m for m in state.proxy.meters if m.meter_type == RESPONSE_VALUE]
            if not meters:
                return
            headers = http.Headers(state.caller_fields)
            document = body_document(body or b"", headers.get("content-encoding"))
            meters = matching(meters, state, document)
            response = to_flow_response(answer_, state.method)
            await self.count_response(
                state, meters, response.headers.get, lambda: response_document(response)
            )
        except Exception:
            log.exception("counting meters of async attempt %s failed", state.request_id)

    def _write(self, outcome: Outcome) -> None:
        if self.usage is not None:
            self.usage.note(outcome)


@functools.lru_cache(maxsize=LIMIT_LISTS_CACHED)
def counting_all(meter_id: str) -> tuple[Limit, ...]:
    """Adding a response value: every window, never refused (the check came before)."""
    return tuple(Limit(meter_key(meter_id), w, UNLIMITED) for w in Window)


@functools.lru_cache(maxsize=LIMIT_LISTS_CACHED)
def answering(meter_id: str) -> tuple[Limit, ...]:
    """Adding one answer to a response_value meter's count of answers, in every window."""
    return tuple(Limit(answers_key(meter_id), w, UNLIMITED) for w in Window)


def response_document(response: http.Response) -> Any:
    """A target's answer as JSON (decoded if content-encoded), or NOT_JSON."""
    try:
        content = response.get_content(strict=True)
        return loads(content or b"")
    except ValueError:
        return NOT_JSON
