"""Stage 7, record (telemetry): counters for seed 000's telemetry and seed 004's metrics history.

On the event loop, a hook builds one small `Sample` per answered request and
queues it; the writer thread does the rest (`addons/telemetry_batch.py`).
Open client connections are counted on the loop and sampled by a thread at
the end of every 10-second metrics window.
"""

from __future__ import annotations

import logging
import threading
import time

from mitmproxy import connection, ctx, exceptions, http

from addons.batch_writer import BatchWriter
from addons.ssrf import Network, parse_networks
from addons.state import FlowState, state_of
from addons.telemetry_batch import Batch, OpenConnections, Sample
from models.periods import POINT_SECONDS
from models.settings import Settings
from models.store import make_engine

log = logging.getLogger("portcullis.telemetry")
FORWARDED_FOR = "x-forwarded-for"
TOOLS_CALL = "tools/call"  # the MCP method whose tool the `tool` dimension counts
TOOL_MEMBER_CHARS = 128  # telemetry_counters.member
MAX_TOOLS_PER_REQUEST = 16
OTHER_TOOLS = "(other)"


def body_bytes(flow: http.HTTPFlow, state: FlowState) -> int:
    request = flow.request
    if request.raw_content is not None:
        size = len(request.raw_content)
    else:  # streamed: not kept, so its announced length
        length = request.headers.get("content-length", "")
        size = int(length) if length.isdigit() else 0
    if state.streamed:  # not kept either: what passed, counted by the pump
        return size + (state.response_bytes or 0)
    return size + len(flow.response.raw_content or b"")


def egress_member(state: FlowState) -> str | None:
    """The telemetry `egress` member of the target leg, when a proxy carried it."""
    return None if state.egress is None else state.egress.telemetry_member


def tool_members(state: FlowState) -> tuple[str, ...]:
    """The telemetry `tool` members of an MCP request: each tools/call's tool name (a batch may
    repeat one: each call counts), made storable (no NUL, no lone surrogate) and cut to the
    column's 128 characters. Names are the caller's: past MAX_TOOLS_PER_REQUEST distinct
    names, the rest count as OTHER_TOOLS, so one request cannot add rows without bound."""
    members: list[str] = []
    distinct: set[str] = set()
    for call in state.mcp_calls:
        if call.method != TOOLS_CALL or not isinstance(call.tool, str):
            continue
        name = storable(call.tool[:TOOL_MEMBER_CHARS])
        if name not in distinct and len(distinct) >= MAX_TOOLS_PER_REQUEST:
            name = OTHER_TOOLS
        distinct.add(name)
        members.append(name)
    return tuple(members)


def storable(text: str) -> str:
    """`text` as both stores keep it: lone surrogates become `?`, NUL becomes U+FFFD."""
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")


def peer_host(client: connection.Client) -> str:
    return client.peername[0] if client.peername else ""


class Telemetry:
    def __init__(self):
        self.writer: BatchWriter | None = None
        self.trusted: tuple[Network, ...] = ()
        self._proxies_of: dict[str, set[str]] = {}  # client connection id → proxy ids used
        self._open: dict[str, tuple[str, int]] = {}  # proxy id → (client id, open connections)
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None

    def load(self, loader) -> None:
        loader.add_option(
            "portcullis_trusted_proxies",
            str,
            "",
            "Comma-separated addresses or networks of proxies in front of the gateway whose "
            "X-Forwarded-For names the caller (for telemetry countries).",
        )

    def configure(self, updated) -> None:
        if "portcullis_trusted_proxies" in updated:
            try:
                self.trusted = parse_networks(ctx.options.portcullis_trusted_proxies)
            except ValueError as exc:
                raise exceptions.OptionsError(f"portcullis_trusted_proxies: {exc}") from exc

    def running(self) -> None:
        engine = make_engine(Settings.from_env().database_url)
        self.writer = BatchWriter(engine, self._write, "portcullis-telemetry")
        self.writer.start()
        self._sampler = threading.Thread(
            target=self._sample_open_connections, name="portcullis-open-connections", daemon=True
        )
        self._sampler.start()

    def done(self) -> None:
        self._stop.set()
        if self.writer is not None:
            self.writer.stop()

    def response(self, flow: http.HTTPFlow) -> None:
        self._count(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        """A streamed answer broken off (too large, the target's timeout or failure, the caller
        gone) ends here rather than in `response`: its head went out, so it counts."""
        self._count(flow, streamed_only=True)

    def _count(self, flow: http.HTTPFlow, streamed_only: bool = False) -> None:
        # Never raises into mitmproxy: counting must not touch the answer.
        try:
            state = state_of(flow)
            if streamed_only and not (state and state.streamed and flow.response is not None):
                return
            if self.writer is not None and state is not None and state.finished_at is not None:
                proxy = state.proxy or next(iter(state.candidates), None)
                if proxy is not None:
                    self.writer.submit(self._sample(flow, state, proxy.id, proxy.client_id))
        except Exception:
            log.exception("could not count a request")

    def _write(self, session, items: list) -> None:
        """The writer thread's work: countries, aggregation, additive upserts."""
        batch = Batch(now=time.time(), trusted=self.trusted)
        for item in items:
            batch.add(item)
        batch.write(session)

    def client_disconnected(self, client: connection.Client) -> None:
        for proxy_id in self._proxies_of.pop(client.id, ()):
            client_id, count = self._open[proxy_id]
            if count <= 1:
                del self._open[proxy_id]
            else:
                self._open[proxy_id] = (client_id, count - 1)

    def _sample(self, flow: http.HTTPFlow, state: FlowState, proxy_id: str, client_id: str):
        used = self._proxies_of.setdefault(flow.client_conn.id, set())
        new_connection = proxy_id not in used
        if new_connection:
            used.add(proxy_id)
            self._open[proxy_id] = (client_id, self._open.get(proxy_id, ("", 0))[1] + 1)
        target_seconds = state.target_seconds
        return Sample(
            proxy_id=proxy_id,
            client_id=client_id,
            at=state.finished_at,
            peer=peer_host(flow.client_conn),
            forwarded_for=tuple(flow.request.headers.get_all(FORWARDED_FOR))
            if self.trusted
            else (),
            proxy_status=flow.response.status_code,
            proxy_ms=state.proxy_seconds * 1000,
            target_status=state.upstream_status,
            target_ms=None if target_seconds is None else target_seconds * 1000,
            bytes=body_bytes(flow, state),
            new_connection=new_connection,
            is_async=state.is_async,
            egress=egress_member(state),
            tools=tool_members(state),
        )

    def count_attempt(self, state: FlowState) -> None:
        """Count an async delivery attempt: a target leg only, marked async."""
        if self.writer is None or state.upstream_status is None:
            return
        self.writer.submit(
            Sample(
                proxy_id=state.proxy.id,
                client_id=state.proxy.client_id,
                at=state.finished_at,
                peer="",
                forwarded_for=(),
                proxy_status=None,
                proxy_ms=None,
                target_status=state.upstream_status,
                target_ms=state.target_seconds * 1000,
                bytes=0,
                new_connection=False,
                is_async=True,
                egress=egress_member(state),
            )
        )

    def _sample_open_connections(self) -> None:
        """At the end of each metrics window, queue this process's open connections."""
        while True:
            window_end = (int(time.time()) // POINT_SECONDS + 1) * POINT_SECONDS
            if self._stop.wait(window_end - time.time()):
                return
            counts = dict(self._open)  # one atomic copy; values are replaced, never mutated
            if counts and self.writer is not None:
                self.writer.submit(OpenConnections(window_end, counts))
