"""The egress router: which proxy, if any, carries a request to its target.

A target's egress (`TargetView.egress`, from `models.egress`) is direct (None), a fixed proxy,
or the pool. For the pool, a thread keeps an in-memory view of the free active members of each
distinct set of filters requests have asked for (`pool.egress_members.free_members`, refreshed
every `portcullis_egress_refresh_ms`); the event loop only picks from that view, never queries.
A member that failed to carry a request leaves this process's view at once, and is marked dead
in the store (due a check at once) by a queued writer thread.

Rotation: `per_request` goes round robin over the view; `sticky` keeps one member per gateway
proxy id for `sticky_seconds`, then moves on to the next (a member marked down ends it at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import time
from dataclasses import dataclass, field

from addons.upstream_errors import EgressUnusable, NoEgressProxy
from models.crypto import KeyRing, load_key_ring
from models.egress import FixedEgress, PoolEgress
from models.settings import Settings
from models.store import make_engine, make_session_factory
from pool.egress_members import Member, free_members, mark_down

log = logging.getLogger("portcullis.egress")
DOWN_HOLD_S = 120.0  # a member marked down stays out of this process's view at least this long
FIRST_LOAD_WAIT_S = 10.0  # a request for filters not loaded yet waits this long for them
FORGET_AFTER_S = 600.0  # filters no request asked for in this long are no longer refreshed


@dataclass(frozen=True)
class UnusableEgress:
    """A target's egress setting that could not be read: its requests fail, never go direct."""

    reason: str


@dataclass(frozen=True)
class EgressRoute:
    """The proxy one attempt goes through; never shown with its credentials."""

    kind: str  # "proxy" (a fixed proxy) or "pool"
    proxy_id: str | None  # the pool member's id; None for a fixed proxy
    scheme: str  # http, https, socks4, socks5
    host: str
    port: int
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def telemetry_member(self) -> str:
        """The telemetry `egress` dimension's member: `proxy`, or the pool member's id."""
        return self.proxy_id or "proxy"

    def record(self) -> dict:
        """What the request log keeps (`target_data.egress`)."""
        return {
            "kind": self.kind,
            "proxyId": self.proxy_id,
            "address": self.address,
            "protocol": self.scheme,
        }


def fixed_route(egress: FixedEgress) -> EgressRoute:
    return EgressRoute(
        "proxy", None, egress.scheme, egress.host, egress.port, egress.username, egress.password
    )


def member_route(member: Member) -> EgressRoute:
    return EgressRoute(
        "pool",
        member.id,
        member.protocol,
        member.host,
        member.port,
        member.username,
        member.password,
    )


class EgressRouter:
    """Routes on mitmproxy's loop from views a thread refreshes; see the module's docstring."""

    def __init__(self):
        self._views: dict[PoolEgress, tuple[Member, ...]] = {}  # replaced whole by the thread
        self._wanted: dict[PoolEgress, float] = {}  # filters asked for → last asked (monotonic)
        self._waiting: dict[PoolEgress, asyncio.Event] = {}  # on the loop: first loads
        self._down: dict[str, float] = {}  # member id → until (monotonic); on the loop
        self._turns: dict[PoolEgress, itertools.count] = {}
        # gateway proxy id → (member id, until (monotonic), the setting it was held under)
        self._sticky: dict[str, tuple[str, float, PoolEgress]] = {}
        self._refresh_s = 5.0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._marks: list[str] = []
        self._marked = threading.Condition()
        self._writer: threading.Thread | None = None
        self._sessions = None
        self._key_ring: KeyRing | None = None

    # -- lifecycle (called by the forward addon's hooks) --

    def load(self, loader) -> None:
        loader.add_option(
            "portcullis_egress_refresh_ms",
            int,
            5_000,
            "Milliseconds between refreshes of the pool members targets' egress may use.",
        )

    def configure(self, refresh_ms: int) -> None:
        if refresh_ms < 1:
            raise ValueError("portcullis_egress_refresh_ms must be positive")
        self._refresh_s = refresh_ms / 1000
        self._wake.set()

    def running(self) -> None:
        settings = Settings.from_env()
        self._key_ring, _ = load_key_ring(settings.master_keys, settings.master_key_file)
        self._sessions = make_session_factory(make_engine(settings.database_url))
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._refresh_loop, name="portcullis-egress")
        self._thread.daemon = True
        self._thread.start()
        self._writer = threading.Thread(target=self._write_loop, name="portcullis-egress-marks")
        self._writer.daemon = True
        self._writer.start()

    def done(self) -> None:
        self._stop.set()
        self._wake.set()
        with self._marked:
            self._marked.notify_all()
        for thread in (self._thread, self._writer):
            if thread is not None:
                thread.join(timeout=5)

    # -- on the event loop --

    async def route(
        self, proxy_id: str, egress: FixedEgress | PoolEgress | UnusableEgress | None
    ) -> EgressRoute | None:
        """The route of one attempt for gateway proxy `proxy_id`: None means directly.

        Raises `NoEgressProxy` when the pool has no free member for the filters,
        `EgressUnusable` for a setting that could not be read.
        """
        if egress is None:
            return None
        if isinstance(egress, UnusableEgress):
            raise EgressUnusable(egress.reason)
        if isinstance(egress, FixedEgress):
            return fixed_route(egress)
        now = time.monotonic()
        self._wanted[egress] = now
        if egress not in self._views:
            await self._first_load(egress)
        members = [m for m in self._views.get(egress, ()) if self._down.get(m.id, 0) <= now]
        if not members:
            raise NoEgressProxy("no free active pool proxy matches the target's egress filters")
        if egress.rotation == "sticky":
            held = self._sticky.get(proxy_id)
            # A hold made under another setting (filters, stickySeconds) ends with it.
            if held is not None and held[1] > now and held[2] == egress:
                member = next((m for m in members if m.id == held[0]), None)
                if member is not None:
                    return member_route(member)
            member = self._next(egress, members, after=held[0] if held else None)
            self._sticky[proxy_id] = (member.id, now + egress.sticky_seconds, egress)
            return member_route(member)
        return member_route(self._next(egress, members))

    def failed(self, route: EgressRoute, in_store: bool = True) -> None:
        """`route` could not carry a request: a pool member leaves this process's view and,
        `in_store`, is marked dead in the store (due a check at once)."""
        if route.kind != "pool" or route.proxy_id is None:
            return
        now = time.monotonic()
        for member_id, until in list(self._down.items()):
            if until <= now:
                del self._down[member_id]
        self._down[route.proxy_id] = now + DOWN_HOLD_S
        log.warning("egress pool proxy %s failed; marked down", route.proxy_id)
        if not in_store:
            return
        with self._marked:
            self._marks.append(route.proxy_id)
            self._marked.notify()

    def _next(self, egress: PoolEgress, members: list[Member], after: str | None = None) -> Member:
        if after is not None:  # sticky: the member after the one held, in the view's order
            ids = [m.id for m in members]
            if after in ids:
                return members[(ids.index(after) + 1) % len(members)]
        turn = next(self._turns.setdefault(egress, itertools.count()))
        return members[turn % len(members)]

    async def _first_load(self, egress: PoolEgress) -> None:
        event = self._waiting.get(egress)
        if event is None:
            event = self._waiting[egress] = asyncio.Event()
        self._wake.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), FIRST_LOAD_WAIT_S)

    def _announce(self) -> None:
        """After a refresh, on the loop: wake first loads; forget filters nobody asks for."""
        for egress, event in list(self._waiting.items()):
            if egress in self._views:
                event.set()
                del self._waiting[egress]
        now = time.monotonic()
        for egress, at in list(self._wanted.items()):
            if now - at >= FORGET_AFTER_S:
                del self._wanted[egress]
                self._turns.pop(egress, None)

    # -- threads --

    def _refresh_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self._refresh()
            except Exception:
                log.exception("could not refresh the egress pool members; keeping the last view")
            self._wake.wait(self._refresh_s)

    def _refresh(self) -> None:
        now = time.monotonic()
        wanted = [e for e, at in list(self._wanted.items()) if now - at < FORGET_AFTER_S]
        if not wanted:
            self._views = {}
            return
        views: dict[PoolEgress, tuple[Member, ...]] = {}
        with self._sessions() as session:
            for egress in wanted:
                views[egress] = tuple(free_members(session, self._key_ring, egress, time.time()))
        self._views = views
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._announce)

    def _write_loop(self) -> None:
        while True:
            with self._marked:
                self._marked.wait_for(lambda: self._marks or self._stop.is_set())
                marks, self._marks = self._marks, []
            if marks:
                try:
                    with self._sessions() as session:
                        mark_down(session, marks)
                        session.commit()
                except Exception:
                    log.exception("could not mark egress pool proxies %s dead", marks)
            if self._stop.is_set():
                return
