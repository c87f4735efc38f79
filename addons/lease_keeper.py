"""Keeping the leases of the async jobs this process is delivering, while their attempts run.

A claim leases a job for `portcullis_async_lease_ms`; an attempt may take longer
(a slow target, a long timeout). Every third of the lease, one store call on the
queue's worker thread extends the leases of all attempts in flight here, so no
other process re-claims a job while the process delivering it is alive. An attempt
whose lease was lost anyway (this process stalled, or the store was unreachable
for most of a lease) is dropped from renewal; its outcome is refused by the store.
"""

from __future__ import annotations

import asyncio
import logging

from mitmproxy import ctx

from addons.async_queue import AsyncQueue
from addons.job_store import ClaimedJob

log = logging.getLogger("portcullis.dispatcher")
RENEWALS_PER_LEASE = 3  # a renewal may be late by two of them before the lease runs out


def lease_seconds() -> float:
    return ctx.options.portcullis_async_lease_ms / 1000


class LeaseKeeper:
    def __init__(self, queue: AsyncQueue):
        self._queue = queue
        self._held: dict[tuple[str, int], ClaimedJob] = {}
        self._task: asyncio.Task | None = None

    def hold(self, job: ClaimedJob) -> None:
        """Renew `job`'s lease from now until `release`."""
        self._held[(job.id, job.attempt_number)] = job

    def release(self, job: ClaimedJob) -> None:
        self._held.pop((job.id, job.attempt_number), None)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            # A timer, not synchronisation: renewals are due every third of the lease.
            await asyncio.sleep(lease_seconds() / RENEWALS_PER_LEASE)
            await self.renew()

    async def renew(self) -> None:
        """Extend every held lease in one store call; forget the ones that were lost."""
        jobs = list(self._held.values())
        if not jobs:
            return
        try:
            held = await self._queue.run(self._queue.store.renew, jobs, lease_seconds())
        except Exception:
            log.exception("could not renew the leases of %d async jobs; trying again", len(jobs))
            return
        for job, still in zip(jobs, held, strict=True):
            if not still:
                log.warning(
                    "lost the lease on job %s during attempt %d; its outcome will be refused",
                    job.id,
                    job.attempt_number,
                )
                self.release(job)
