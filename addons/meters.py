"""Usage meters, right after the limit stage: count matching requests, refuse over a limit.

- `request_count` meters add 1 per matching request, checked and counted at once
  (all the proxy's matching meters in one `consume`: all or none).
- `response_value` meters are checked before forwarding: a window refuses the
  request (the target never sees it) when it is already at or over its limit
  (limit mode `reached`, the default), or with limit mode `estimate` also when
  the average value of the answers counted in it so far would take it past the
  limit (issue 13's rule). The value read from the target's answer is added afterwards
  (`models/meter_engine.py`: a missing or non-numeric value counts 0, is left out
  of the average, and a log line says why). Requests in flight at once are all
  checked against the same count, so a window can still end above its limit.
- Over a limit: 429 `METER_LIMIT_EXCEEDED` naming the meter and window, with
  `Retry-After`. Counters unavailable (Redis down): 503 `LIMITS_UNAVAILABLE`.
- Conditional meters with body checks need the body: checked in `request` once
  it is in. A body that cannot be read before forwarding (streamed because it is
  large, or content-encoded) counts as matching, so a meter is never bypassed;
  on a proxy whose rules read the body (or an MCP proxy) it was read and decoded
  first (addons/body_first.py), and the checks see it.
- Async API: checked and counted at accept; values are added for each delivered
  attempt's answer (`count_delivery`, called by the dispatcher).
- Streams (issue 18): a response_value meter reading the body registers a
  `StreamCount` watcher (addons/response_watch.py). On an event-stream answer it
  reads each event as it passes (nothing is held back) and adds each value found
  at once (models/meter_engine.py `Extraction.event_units`); the `response` hook
  waits for those additions, so they are in before the caller sees the end of
  the answer, and counts nothing of the body again. Any other answer (JSON, or a
  content-encoded event stream) is needed whole, and counted in `response` as
  before; an event-stream body that arrives whole there (or in an async
  delivery) is read event by event the same way.
- MCP proxies: predicates on the JSON-RPC call (`mcpMethods`, `mcpTools`) see
  each call of the request; a request_count meter counts a batch once per call
  that matches (several meters with different counts in one batch are counted
  one group at a time, not all or none).

Every meter counts in all four windows (minute, hour, day, month), limited or
not; each count goes to the store in batches for the Core API's usage read-out.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import math
import weakref
from collections.abc import Sequence
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
from addons.response_watch import WHOLE, ResponseHead, Watch, Whole
from addons.responses import DENIED, GATEWAY_ERROR, answer, answered, body_follows, proxy_error
from addons.state import FlowState, state_of
from addons.stream_bridge import BRIDGE
from models.content_coding import codings
from models.json_limits import loads
from models.meter_engine import (
    ESTIMATE,
    NOT_JSON,
    REQUEST_COUNT,
    RESPONSE_VALUE,
    CompiledMeter,
)
from models.rule_engine import RequestFacts
from models.settings import Settings
from models.sse import SseEvent, SseListener, parse_all
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
_streams: weakref.WeakKeyDictionary[http.HTTPFlow, StreamCount] = weakref.WeakKeyDictionary()


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

    Refused when the window is at or over its limit, or (limit mode `estimate`) when
    the average value of the answers counted in it so far would take it past the limit.
    """
    refusing = []
    counts = outcome.windows
    estimating = meter.limit_mode == ESTIMATE
    for index, (_window, limit) in enumerate(meter.limits):
        used, answers = counts[2 * index], counts[2 * index + 1].used
        estimate = math.ceil(used.used / answers) if answers and estimating else 0
        if used.used >= limit or used.used + estimate > limit:
            refusing.append((used, limit))
    return max(refusing, key=lambda item: item[0].resets_at) if refusing else None


def request_document(request: http.Request, state: FlowState) -> Any:
    """The request body as JSON for body checks; UNREADABLE if it cannot be read here.

    On a body-first flow (addons/body_first.py) it was decoded and parsed once already.
    """
    if state.body is not None:
        return state.body.document
    if request.stream or request.raw_content is None:
        return UNREADABLE
    return body_document(request.raw_content, request.headers.get("content-encoding"))


def body_document(body: bytes, encoding: str | None) -> Any:
    """A request body as JSON; UNREADABLE when content-encoded, NOT_JSON when not JSON."""
    if codings(encoding):
        return UNREADABLE
    try:
        return loads(body)
    except ValueError:
        return NOT_JSON


def matching(meters: Sequence[CompiledMeter], state: FlowState, document: Any):
    """The meters the request counts toward."""
    return [meter for meter, _times in matching_times(meters, state, document)]


def matching_times(
    meters: Sequence[CompiledMeter], state: FlowState, document: Any
) -> list[tuple[CompiledMeter, int]]:
    """The meters the request counts toward, each with how many times: once, or for a
    JSON-RPC batch on an MCP proxy, once per call its MCP predicates match."""
    if not any(m.conditional for m in meters):
        return [(meter, 1) for meter in meters]
    reads_headers, reads_query = state.proxy.meters_read
    facts = RequestFacts(
        state.method,
        state.path,
        state.caller_headers if reads_headers else (),  # only what the predicates look at
        state.caller_query if reads_query else (),
        body=state.body,
    )
    calls = [facts.for_call(call) for call in state.mcp_calls] or [facts]
    found = []
    for meter in meters:
        if document is UNREADABLE and meter.needs_body:
            # The body checks cannot be read before forwarding: the rest decide.
            if meter.rule is None or any(meter.rule.matches(r) for r in facts.readings()):
                found.append((meter, 1))
            continue
        if meter.reads_mcp:
            times = sum(1 for each in calls if meter.matches(each, document))
        else:
            times = 1 if meter.matches(calls[0], document) else 0
        if times:
            found.append((meter, times))
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
        await self._check(flow, state, meters, request_document(flow.request, state))

    @fail_closed
    async def request(self, flow: http.HTTPFlow) -> None:
        state = state_of(flow)
        if answered(flow) or state is None or state.proxy is None or flow.request.stream:
            return
        meters = state.proxy.meters
        if any(m.needs_body for m in meters) and flow not in _pending:
            await self._check(flow, state, meters, request_document(flow.request, state))

    async def _check(self, flow, state: FlowState, meters, document: Any) -> None:
        times = dict((m.id, n) for m, n in matching_times(meters, state, document))
        found = [m for m in meters if m.id in times]
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
            for cost in sorted({times[m.id] for m in counted}):  # one group unless a batch
                group = [m for m in counted if times[m.id] == cost]
                limits = [limit for m in group for limit in counting(m)]
                outcome = await self.shared.counters.consume(limits, cost, now=now)
                if not outcome.allowed:
                    key = outcome.refused.limit.key
                    meter = next(m for m in group if meter_key(m.id) == key)
                    return self._refuse(flow, state, meter, outcome.refused, now)
                self._write(outcome)
            reading_body = tuple(m for m in _pending[flow] if m.extraction.location == "body")
            if reading_body:
                _streams[flow] = watcher = StreamCount(self, state, reading_body)
                state.watchers.append(watcher)
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
            stream = _streams.pop(flow, None)
            state = state_of(flow)
            if stream is not None:
                await stream.settled()
                if stream.listened:  # its events were counted as they passed
                    meters = tuple(m for m in meters if m.extraction.location != "body")
            if not meters or state is None or state.upstream_status is None:
                return  # the target did not answer: nothing to add
            await self.count_response(state, meters, state.final_response or flow.response)
        except Exception:
            log.exception("counting meters of %s failed", flow.request.path.split("?")[0])

    async def error(self, flow: http.HTTPFlow) -> None:
        """A streamed answer broken off: the values of the events that passed are added."""
        stream = _streams.pop(flow, None)
        _pending.pop(flow, None)
        if stream is not None:
            await stream.settled()

    async def count_response(
        self, state: FlowState, meters: Sequence[CompiledMeter], response: http.Response
    ) -> None:
        """Add each response_value meter's value read from a target's whole answer (an
        event stream: the sum of its events' values). Counters that are unavailable cost
        the value (logged); the callers catch anything else."""
        events: list[SseEvent] | None = None
        parsed: Any = None
        for meter in meters:
            extraction = meter.extraction
            if extraction.location == "body" and is_event_stream(response):
                if events is None:
                    events = parse_all(response.get_content(strict=False) or b"")
                value, why = extraction.stream_units(events)
            else:
                if extraction.location == "body" and parsed is None:
                    parsed = response_document(response)
                value, why = extraction.extract(response.headers.get, parsed)
            if why is not None:
                log.info("meter %s counts 0 for this answer: %s", meter.id, why)
                continue
            await self.add_value(state, meter, value, answer=True)

    async def add_value(
        self, state: FlowState, meter: CompiledMeter, value: int, answer: bool
    ) -> None:
        """Add `value` units to a response_value meter (and, with `answer`, one answer to its
        count of answers) and charge them. Counters that are unavailable cost the value."""
        now = self._now()
        try:
            if answer:
                await self.shared.counters.consume(answering(meter.id), 1, now=now)
            if value == 0:
                return
            outcome = await self.shared.counters.consume(counting_all(meter.id), value, now=now)
        except CountersUnavailable:
            log.warning("meter %s: %d units not counted (counters unavailable)", meter.id, value)
            return
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
            await self.count_response(state, meters, to_flow_response(answer_, state.method))
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


def is_event_stream(response: http.Response) -> bool:
    return ResponseHead("", response.status_code, tuple(response.headers.fields)).is_event_stream


class StreamCount:
    """The watcher of a request's body-reading response_value meters (see the module).

    On an event-stream answer: a listener adding each event's values as it passes
    (scheduled on the event loop at once; `settled` waits for them). Otherwise the
    answer is needed whole and counted in `Meters.response`.
    """

    def __init__(self, stage: Meters, state: FlowState, meters: tuple[CompiledMeter, ...]):
        self.stage, self.state, self.meters = stage, state, meters
        self.listened = False  # the answer's events were read as they passed
        self._answered: set[str] = set()  # meters that counted this answer already
        self._adding: list[asyncio.Task | concurrent.futures.Future] = []
        self._loop = asyncio.get_running_loop()

    def watch(self, head: ResponseHead) -> Watch | Whole | None:
        if head.is_event_stream and not head.encoded:
            self.listened = True
            return SseListener(self._event)
        return WHOLE  # JSON (or an encoded stream): read whole in `response`, as before

    def _event(self, event: SseEvent) -> None:
        for meter in self.meters:
            reading = meter.extraction.event_units(event)
            if reading is None:
                continue
            value, why = reading
            if why is not None:
                log.info("meter %s counts 0 for this event: %s", meter.id, why)
                continue
            answer = meter.id not in self._answered
            self._answered.add(meter.id)
            self._schedule(self.stage.add_value(self.state, meter, value, answer))

    def _schedule(self, adding) -> None:
        try:
            on_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            self._adding.append(self._loop.create_task(adding))
        else:  # a watch run off the event loop (a thread): hand it over
            self._adding.append(asyncio.run_coroutine_threadsafe(adding, self._loop))

    async def settled(self) -> None:
        """Wait for the values of the events so far to be added (failures are logged)."""
        while self._adding:
            adding, self._adding = self._adding, []
            waits = [a if isinstance(a, asyncio.Task) else asyncio.wrap_future(a) for a in adding]
            for outcome in await asyncio.gather(*waits, return_exceptions=True):
                if isinstance(outcome, BaseException):
                    log.error("adding a streamed meter value failed: %r", outcome)


def response_document(response: http.Response) -> Any:
    """A target's answer as JSON (decoded if content-encoded), or NOT_JSON."""
    try:
        content = response.get_content(strict=True)
        return loads(content or b"")
    except ValueError:
        return NOT_JSON
