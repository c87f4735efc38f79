"""The budget check of the limit stage: a priced proxy's request must be covered by credit.

A proxy with a price (models/credit.py, set through the Core API) costs its
client `perRequest` credits per request, taken when the request is admitted
(Proxy API: before forwarding; Async API: at accept, before anything is queued).
The balance is `granted - spent`: grants come with the configuration snapshot
(every grant bumps the config version), what was spent lives in the spending
counters (addons/credit_counters.py: memory, or Redis with
`PORTCULLIS_REDIS_URL`), never below the debits already in the ledger. No store
query per request.

- Balance cannot cover the price (a proxy priced only per meter unit needs a
  positive balance): 402 `billing-suspended`, "Payment Required - Account
  suspended due to insufficient budget", never forwarded, nothing taken.
- Balance below the client's low-budget threshold after this request (and on a
  402): `requestrocket-proxy-warning: Low budget - please add a valid payment
  method to continue using the API`.
- Spending counters unavailable (Redis down): 503 `LIMITS_UNAVAILABLE`.

Debits go to the ledger through a batch writer (one entry per request, keyed by
its request id, so a batch written twice is stored once). A clean shutdown
writes every queued debit first; a SIGKILL loses the debits still queued (at
most about 0.4 s of them). With Redis, the spent total survives in Redis even
then, so the balance the data plane enforces stays right while the ledger
misses those entries; in memory, they are forgotten with the process.
"""

from __future__ import annotations

import logging
import time
import weakref

from mitmproxy import http

from addons.batch_writer import BatchWriter
from addons.counters import CountersUnavailable, SharedCounters
from addons.credit_counters import Spend, Spending
from addons.events import Events
from addons.failsafe import fail_closed
from addons.limit import limits_unavailable
from addons.responses import answer, answered, proxy_error
from addons.snapshot import Snapshot
from addons.state import state_of
from models.credit import BudgetView, Debit, Price, format_credits, write_debits
from models.settings import Settings
from models.store import make_engine

log = logging.getLogger("portcullis.budget")

BILLING_SUSPENDED = "billing-suspended"
SUSPENDED_MESSAGE = "Payment Required - Account suspended due to insufficient budget"
WARNING = "requestrocket-proxy-warning"
LOW_BUDGET = "Low budget - please add a valid payment method to continue using the API"
NO_BUDGET = BudgetView(granted=0, debited=0, low_threshold=0)
OVERDRAW = -(2**53) + 1  # `needed` for charges that are taken whatever is left

_warned: weakref.WeakKeyDictionary[http.HTTPFlow, bool] = weakref.WeakKeyDictionary()


def suspended(request_id: str, balance: int, price: int) -> http.Response:
    details = {"balance": format_credits(balance), "price": format_credits(price)}
    return proxy_error(
        402, BILLING_SUSPENDED, "BILLING_SUSPENDED", SUSPENDED_MESSAGE, details, request_id
    )


class Budget:
    """Takes each priced request's price from its client's credit, or answers 402."""

    def __init__(self, shared: SharedCounters, events: Events | None = None):
        self.shared = shared
        self.spending = Spending()
        self.events = events  # credits.low / credits.exhausted (addons/events.py)
        self.writer: BatchWriter | None = None

    def running(self) -> None:
        engine = make_engine(Settings.from_env().database_url)
        self.writer = BatchWriter(engine, write_debits, "portcullis-ledger")
        self.writer.start()

    def done(self) -> None:
        if self.writer is not None:
            self.writer.stop()  # writes every queued debit first

    async def _spend(self, snapshot: Snapshot, client_id: str, cost: int, needed: int) -> Spend:
        budget = snapshot.budgets.get(client_id, NO_BUDGET)
        spending = self.spending.for_counters(self.shared.counters)
        return await spending.spend(client_id, budget.debited, budget.granted, cost, needed)

    @fail_closed
    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        if answered(flow):
            return
        state = state_of(flow)
        proxy = state.proxy
        price = state.snapshot.prices.get(proxy.id)
        if price is None or (price.per_request <= 0 and price.per_units <= 0):
            return
        cost = price.per_request
        try:
            spend = await self._spend(state.snapshot, proxy.client_id, cost, max(cost, 1))
        except CountersUnavailable:
            state.mark("systemError")
            state.proxy_code = "gateway-error"
            answer(flow, limits_unavailable(state.request_id))
            return
        budget = state.snapshot.budgets.get(proxy.client_id, NO_BUDGET)
        left = budget.granted - spend.spent
        if left < budget.low_threshold or not spend.allowed:
            _warned[flow] = True
            self._signal(proxy.client_id, left, budget.low_threshold, not spend.allowed)
        if not spend.allowed:
            state.proxy_code = BILLING_SUSPENDED
            response = suspended(state.request_id, left, cost)
            response.headers[WARNING] = LOW_BUDGET
            answer(flow, response)
            return
        if cost > 0:
            self._debit(proxy.client_id, proxy.id, state.request_id, cost, "request")

    async def charge_units(
        self,
        snapshot: Snapshot,
        client_id: str,
        proxy_id: str,
        request_id: str,
        meter_id: str,
        units: float,
    ) -> int:
        """Debit `units` of meter `meter_id` at the proxy's unit price, after the response.

        The one entry point for meters: returns the micro-credits taken (0 when the
        proxy has no unit price). Never refused: it may take the balance below zero,
        and the client's next request is then refused. One ledger entry per request
        and meter. Raises `CountersUnavailable` when Redis cannot be reached.
        """
        price = snapshot.prices.get(proxy_id, Price())
        cost = price.units_debit(units)
        if cost <= 0:
            return 0
        spend = await self._spend(snapshot, client_id, cost, OVERDRAW)
        budget = snapshot.budgets.get(client_id, NO_BUDGET)
        left = budget.granted - spend.spent
        if left < budget.low_threshold or left <= 0:
            self._signal(client_id, left, budget.low_threshold, left <= 0)
        what = f"{units:g} units of meter {meter_id}"
        self._debit(client_id, proxy_id, f"{request_id}:{meter_id}", cost, what)
        return cost

    def _signal(self, client_id: str, left: int, threshold: int, exhausted: bool) -> None:
        """Report a low or used-up balance (once per client and day: addons/events.py)."""
        if self.events is not None:
            self.events.credits(client_id, left, threshold, exhausted, time.time())

    def _debit(self, client_id: str, proxy_id: str, key: str, cost: int, what: str) -> None:
        if self.writer is None:  # not running (never in a started data plane)
            log.error("ledger writer not started: debit %s of %s lost", key, client_id)
            return
        self.writer.submit(Debit(client_id, proxy_id, key, cost, f"{what} via proxy {proxy_id}"))


class BudgetWarning:
    """Adds the low-budget warning to the answer, after the respond stage settled it."""

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        self.response(flow)  # a streamed answer's head goes out now, before `response`

    def response(self, flow: http.HTTPFlow) -> None:
        if _warned.get(flow) and flow.response is not None:
            if WARNING not in flow.response.headers:
                flow.response.headers[WARNING] = LOW_BUDGET
            elif LOW_BUDGET not in flow.response.headers.get_all(WARNING):
                flow.response.headers.add(WARNING, LOW_BUDGET)
