"""The addon chain, loaded by mitmdump/mitmweb with `-s addons/gateway.py`.

Order is the pipeline of DESIGN.md: route, authenticate, authorize, limit,
forward, respond, record. For proxies whose policy reads the request body,
`BodyFirst` reads it right after authenticate and the stages wrapped in
`AfterBody` do their `requestheaders` work in `request`, once it is in
(addons/body_first.py). The protocol guard acts before any of them, on the HTTP/1
connection itself (head limits, malformed requests); the health answer
(`/_portcullis/health`) comes before route. Each stage leaves a
flow alone once an earlier one has answered it. The async queue and its
dispatcher deliver what `/async/` requests left queued.
"""

import sys
from pathlib import Path

# mitmproxy puts only this file's folder on sys.path; the project root holds the packages.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from addons.async_queue import AsyncQueue
from addons.authenticate import Authenticate
from addons.authorize import Authorize
from addons.body_first import BodyFirst
from addons.budget import Budget, BudgetWarning
from addons.config import Config
from addons.connect_guard import ConnectGuard
from addons.counters import SharedCounters
from addons.dispatcher import Dispatcher
from addons.events import Events
from addons.fetch import Fetcher
from addons.filters import PayloadFilters
from addons.forward import Forward
from addons.health import Health
from addons.limit import RateLimit
from addons.mcp_policy import McpPolicy
from addons.meters import Meters
from addons.metrics import Metrics
from addons.pipeline import Pipeline
from addons.protocol_guard import ProtocolGuard
from addons.record import Record
from addons.respond import Respond
from addons.route import Route
from addons.telemetry import Telemetry
from addons.unused_addons import UnusedAddons

config = Config()
counters = SharedCounters()  # in memory, or in Redis with PORTCULLIS_REDIS_URL
events = Events()  # credits.*, ratelimit.reached: to the store's notifications and notifiers
budget = Budget(counters, events)  # credit per priced request; debits batched to the ledger
# usage meters: counted and limited, values added after answers
meters = Meters(counters, budget, events)
queue = AsyncQueue()
forward = Forward(queue)
body_first = BodyFirst(forward.start)
record = Record()
telemetry = Telemetry()
stages = [
    UnusedAddons(),  # mitmproxy's own addons the data plane does not use: out of the chain
    config,
    ConnectGuard(),  # mitmproxy itself connects only to the stream bridge
    counters,
    events,
    Health(config, counters),  # the balancer's check: answered from memory, never routed
    ProtocolGuard(),
    queue,
    Route(config),
    Authenticate(Fetcher(forward.upstream_client)),
    body_first,  # body-reading proxies: the checks below wait for the body
    body_first.after_body(Authorize()),
    body_first.after_body(RateLimit(counters, events)),
    body_first.after_body(meters),
    body_first.after_body(budget),
    forward.tokens,  # oauth2 / customToken target tokens: minted, cached, shared (Redis)
    body_first.after_body(forward),
    McpPolicy(),  # an MCP tools/list answer cut to the tools the caller may call
    PayloadFilters(),  # retain/destroy JSON fields of 2xx answers (issue 13)
    Respond(),
    BudgetWarning(),  # the low-budget header on the settled answer
    record,
    telemetry,
    Metrics(config, writers=(record, telemetry, budget, meters, events)),
    Dispatcher(config, queue, forward, record, telemetry, meters=meters),
]
# One addon for mitmproxy: it walks its chain once per event, the pipeline calls the stages.
addons = [Pipeline(stages)]
