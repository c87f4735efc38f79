"""Delivering Async API jobs: claim due jobs, send each with the Proxy API's own code, retry.

Runs as a task on mitmproxy's event loop; every store call goes to the queue's
worker thread. Each attempt is built exactly as a synchronous request would
be (addons/outbound.py: the target credential injected now, never stored),
sent through the same client (SSRF guard, timeouts, bounded read), and
appears in the request log and telemetry marked as async.

Delivery is at least once: a process that dies mid-attempt leaves a request the
target may have received, and the job is delivered again once its lease runs
out. Every attempt of a job therefore carries the same `Idempotency-Key` (the
caller's, or the job's request id), by which the target can tell a repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
import uuid

from mitmproxy import ctx, exceptions
from mitmproxy.http import Headers

from addons.async_queue import AsyncQueue
from addons.config import Config
from addons.dispatcher_health import DispatcherHealth
from addons.filters import filtered_delivery
from addons.forward import Forward, whole_body_limit
from addons.job_store import ClaimedJob, Outcome
from addons.lease_keeper import LeaseKeeper, lease_seconds
from addons.meters import Meters
from addons.outbound import (
    BodyRefused,
    retry_with_new_token,
    upstream_request,
    with_additional_data,
)
from addons.record import Record
from addons.snapshot import ProxyView
from addons.ssrf import TargetRefused
from addons.state import VALIDATION_FLAGS, FlowState
from addons.telemetry import Telemetry
from addons.tokens.minted import TokenError
from addons.upstream import (
    ResponseTooLarge,
    UpstreamFailure,
    UpstreamRequest,
    UpstreamResponse,
)
from models import utcnow
from models.async_job import IDEMPOTENCY_HEADER
from models.credential_parts import UnsupportedInjection, mints_token
from models.redaction import bounded_body
from models.retry_policy import TRANSIENT_STATUSES, retry_after_seconds

log = logging.getLogger("portcullis.dispatcher")
RESPONSE_BODY_BYTES = 64 * 1024  # of the final response, kept with the job
CHECKS_DONE_AT_ACCEPTANCE = frozenset(VALIDATION_FLAGS) - {
    "requestSent",
    "responseReceived",
    "systemError",
    "requestConfigError",
}
MODE_OPTION = "portcullis_dispatcher"
MODES = ("on", "off", "only")


class Dispatcher:
    def __init__(
        self,
        config: Config,
        queue: AsyncQueue,
        forward: Forward,
        record: Record,
        telemetry: Telemetry,
        meters: Meters | None = None,
    ):
        self.config, self.queue, self.forward = config, queue, forward
        self.meters = meters  # response_value meters count each delivered answer
        self.record, self.telemetry = record, telemetry
        self._task: asyncio.Task | None = None
        self._deliveries: set[asyncio.Task] = set()
        self._rng = random.Random()
        self.leases = LeaseKeeper(queue)
        self._claims_failing = False  # one traceback per outage of the store, not one per poll
        self._health: DispatcherHealth | None = None
        self._health_task: asyncio.Task | None = None

    def load(self, loader) -> None:
        loader.add_option(
            MODE_OPTION,
            str,
            "on",
            "on: this process accepts and delivers; off: it accepts /async/ requests and "
            "leaves their delivery to other processes; only: it delivers queued jobs and "
            "serves no proxy traffic (mitmproxy's proxy server is off; GET "
            "/_portcullis/health is still answered on the listen address).",
            choices=MODES,
        )

    def configure(self, updated) -> None:
        only = ctx.options.portcullis_dispatcher == "only"
        if (MODE_OPTION in updated or "server" in updated) and only and ctx.options.server:
            # Delivery only must mean no proxy listener, so no proxy traffic reaches this
            # process. (Turning `server` off from here is too late: mitmproxy has its
            # listeners set up by then.)
            raise exceptions.OptionsError(
                f"{MODE_OPTION}=only needs --set server=false as well "
                "(run_proxy.py --dispatcher-only sets both)"
            )
        if MODE_OPTION in updated and self._task is not None:
            raise exceptions.OptionsError(f"{MODE_OPTION} can only be set at start-up")

    def running(self) -> None:
        # `running` stays synchronous (script reloads require it); the loop is already running.
        mode = ctx.options.portcullis_dispatcher
        if mode == "off":
            log.info("delivery is off here: accepted async jobs wait for a dispatcher process")
            return
        loop = asyncio.get_running_loop()
        if mode == "only":
            self._health = DispatcherHealth(self.config)
            self._health_task = loop.create_task(
                self._health.start(ctx.options.listen_host, ctx.options.listen_port or 8080)
            )
        self._task = loop.create_task(self._run())
        self.leases.start()

    def done(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._health is not None:
            self._health.stop()
        self.leases.stop()
        for delivery in self._deliveries:
            delivery.cancel()  # unfinished attempts are retried once their lease expires

    async def _run(self) -> None:
        await self.forward.start()
        while True:
            self.queue.wakeup.clear()  # before claiming: a job accepted meanwhile wakes us
            free = ctx.options.portcullis_async_concurrency - len(self._deliveries)
            # Every free slot is claimed for at once: a slot left waiting for others to free
            # (to claim them together) stays idle as long as the slowest delivery runs.
            jobs = await self._claim(free) if free > 0 else []
            for job in jobs:
                self.leases.hold(job)
                delivery = asyncio.ensure_future(self._deliver(job))
                self._deliveries.add(delivery)
                delivery.add_done_callback(self._deliveries.discard)
            if not jobs:
                await self._idle()

    async def _claim(self, limit: int) -> list[ClaimedJob]:
        try:
            jobs = await self.queue.run(
                self.queue.store.claim, limit, lease_seconds(), lambda: str(uuid.uuid4())
            )
        except Exception:
            if not self._claims_failing:
                log.exception("could not claim async jobs; trying again at every poll")
            self._claims_failing = True
            return []
        if self._claims_failing:
            log.info("claiming async jobs again")
            self._claims_failing = False
        return jobs

    async def _idle(self) -> None:
        """Until a job is accepted here, a delivery ends, or the poll interval passes."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                self.queue.wakeup.wait(), ctx.options.portcullis_async_poll_ms / 1000
            )

    async def _deliver(self, job: ClaimedJob) -> None:
        try:
            state, outcome = await self._attempt(job)
            held = await self.queue.finish(job, outcome)
            if not held:
                log.warning(
                    "lost the lease on job %s during attempt %d", job.id, job.attempt_number
                )
            if state is not None:
                self._report(state, job, outcome)
        except Exception:
            # The lease runs out and another attempt follows: nothing is lost.
            log.exception("async attempt %d of job %s failed", job.attempt_number, job.id)
        finally:
            self.leases.release(job)
            # The slot is free now, not when the done callback runs: `_run` counts the free
            # slots as soon as the wakeup reaches it.
            self._deliveries.discard(asyncio.current_task())
            self.queue.wakeup.set()

    async def _attempt(self, job: ClaimedJob) -> tuple[FlowState | None, Outcome]:
        """Send one attempt; its flow state (for the log) and what becomes of the job."""
        proxy = self.config.snapshot().proxies.get(job.proxy_id)
        problem = unusable(proxy)
        if problem:
            return None, Outcome(status="failed", finished_at=time.time(), error=problem)
        state = attempt_state(self.config, proxy, job)
        credential = proxy.target_credential
        token = None
        try:
            if mints_token(credential):
                token = (await self.forward.tokens.token(credential)).value
            request, body = self._request(proxy, job, state, token)
        except TokenError as exc:
            state.mark("requestConfigError")
            state.finish()
            if exc.transient:  # the endpoint or the store may well be back for a later attempt
                return state, self._retry_or_dead(
                    job, state.finished_at, None, {"error": exc.message}
                )
            return state, Outcome(status="failed", finished_at=state.finished_at, error=exc.message)
        except (BodyRefused, UnsupportedInjection) as exc:
            # The proxy's configuration changed since acceptance: no retry can succeed.
            state.mark("requestConfigError")
            state.finish()
            return state, Outcome(status="failed", finished_at=state.finished_at, error=str(exc))
        state.mark("requestSent")
        state.sent_at = time.time()
        try:
            response = await self._send(state, request, body)
            if retry_with_new_token(request.method, response.status, state.injection):
                response = await self._with_new_token(proxy, job, state, response)
        except (UpstreamFailure, TargetRefused) as exc:
            state.finish()
            return state, self._failed(job, state, exc)
        state.mark("responseReceived")
        state.upstream_status = response.status
        state.target_answered_at = response.finished_at
        if self.meters is not None:  # the target's own answer, before any filter
            await self.meters.count_delivery(state, job.body, response)
        # What is stored is what a Proxy API caller would get: filtered, or 422/502/413.
        response = await filtered_delivery(
            proxy.filters, job.method, response, ctx.options.portcullis_max_response_bytes
        )
        state.finish()
        return state, self._answered(job, response, state)

    def _request(
        self, proxy: ProxyView, job: ClaimedJob, state: FlowState, token: str | None
    ) -> tuple[UpstreamRequest, bytes]:
        """The attempt's request, built as the Proxy API builds it; sets `state.upstream`."""
        headers = stored_headers(job.headers)
        # Replaces any the caller sent: one value, the same on every attempt of the job.
        headers[IDEMPOTENCY_HEADER] = job.delivery_key
        refused = state.injection
        request, state.injection = upstream_request(
            proxy, job.method, job.path, headers, job.query, token
        )
        if refused is not None:  # a refused token stays a secret too
            state.injection = dataclasses.replace(
                state.injection, secrets=(*state.injection.secrets, *refused.secrets)
            )
        request, body = with_additional_data(proxy, request, job.body or b"")
        state.upstream = request
        return request, body

    async def _send(
        self, state: FlowState, request: UpstreamRequest, body: bytes
    ) -> UpstreamResponse:
        """One attempt, through the target's egress as a Proxy API request would go."""
        return await self.forward.send(
            state,
            request,
            body,
            whole_body_limit(state.proxy),  # stored whole
            timeouts=self.queue.attempt_timeouts(),
        )

    async def _with_new_token(
        self, proxy: ProxyView, job: ClaimedJob, state: FlowState, refused: UpstreamResponse
    ) -> UpstreamResponse:
        """The target refused the minted token (401): mint anew and send once more; the
        refused answer stands when no new token can be had."""
        try:
            token = await self.forward.tokens.token(
                proxy.target_credential, rejected=state.injection.token
            )
        except TokenError as exc:
            log.warning("job %s: no new token after a 401: %s", job.id, exc.message)
            return refused
        request, body = self._request(proxy, job, state, token.value)
        return await self._send(state, request, body)

    def _answered(self, job: ClaimedJob, response: UpstreamResponse, state: FlowState) -> Outcome:
        headers = [[n.decode("latin-1"), v.decode("latin-1")] for n, v in response.headers]
        kept = {
            "response_status": response.status,
            "response_headers": headers,
            "response_body": bounded_body(
                response.body, RESPONSE_BODY_BYTES, state.injection.secrets
            ),
        }
        if response.status not in TRANSIENT_STATUSES:
            status = "succeeded" if response.status < 400 else "failed"
            return Outcome(status=status, finished_at=state.finished_at, **kept)
        retry_after = next((v for n, v in headers if n.lower() == "retry-after"), None)
        wait = retry_after_seconds(retry_after, time.time())
        return self._retry_or_dead(job, state.finished_at, wait, kept)

    def _failed(self, job: ClaimedJob, state: FlowState, exc: Exception) -> Outcome:
        if isinstance(exc, TargetRefused | ResponseTooLarge):  # not transient: the job ends
            status = exc.status if isinstance(exc, ResponseTooLarge) else None
            return Outcome(
                status="failed",
                finished_at=state.finished_at,
                response_status=status,
                error=str(exc),
            )
        return self._retry_or_dead(job, state.finished_at, None, {"error": str(exc)})

    def _retry_or_dead(
        self, job: ClaimedJob, now: float, retry_after: float | None, kept
    ) -> Outcome:
        next_at = self.queue.policy().next_attempt(
            attempts_in_round=job.attempts_in_round,
            deadline_at=job.deadline_at,
            now=now,
            retry_after_s=retry_after,
            rng=self._rng,
        )
        if next_at is None:
            return Outcome(status="dead", finished_at=now, **kept)
        return Outcome(status="queued", finished_at=now, next_attempt_at=next_at, **kept)

    def _report(self, state: FlowState, job: ClaimedJob, outcome: Outcome) -> None:
        """The attempt in the request log and telemetry; never raises."""
        try:
            self.record.submit(
                state,
                status=outcome.response_status,
                message=outcome.error or f"Async attempt {job.attempt_number}: {outcome.status}",
                request_body=job.body,
                response_body=None,
                response_fields=tuple(
                    (name.encode("latin-1"), value.encode("latin-1"))
                    for name, value in outcome.response_headers or ()
                ),
            )
            self.telemetry.count_attempt(state)
        except Exception:
            log.exception("could not record async attempt %s", state.request_id)


def stored_headers(pairs: list[list[str]]) -> Headers:
    """A job's stored headers back as mitmproxy headers (stored as mitmproxy decoded them)."""
    return Headers(
        [
            (n.encode("utf-8", "surrogateescape"), v.encode("utf-8", "surrogateescape"))
            for n, v in pairs
        ]
    )


def unusable(proxy: ProxyView | None) -> str | None:
    """Why a job's proxy can no longer deliver it, or None."""
    if proxy is None:
        return "the proxy no longer exists"
    if not proxy.active:
        return "the proxy is inactive"
    if not proxy.target.active:
        return "the proxy's target is inactive"
    credential = proxy.target_credential
    if not credential.active or (credential.expires_at and credential.expires_at <= utcnow()):
        return "the proxy's target credential is inactive or expired"
    return None


def attempt_state(config: Config, proxy: ProxyView, job: ClaimedJob) -> FlowState:
    """The flow state of an attempt: what the request log and telemetry record of it."""
    state = FlowState(snapshot=config.snapshot(), request_id=job.attempt_request_id)
    state.proxy, state.method, state.path, state.query = proxy, job.method, job.path, job.query
    state.caller_fields = stored_headers(job.headers).fields
    state.is_async, state.routed = True, True
    state.attempt = (job.id, job.attempt_number)
    state.mark(*CHECKS_DONE_AT_ACCEPTANCE)
    return state
