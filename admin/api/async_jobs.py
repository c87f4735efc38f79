"""The Async API's jobs of a proxy: list, one with every attempt, and replay (seed 002)."""

from __future__ import annotations

import time

from flask import request
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from admin.api.common import api_blueprint
from admin.api.proxies import proxy_for
from admin.errors import conflict, not_found
from admin.extensions import db
from admin.http import envelope
from admin.openapi import doc
from admin.schemas.async_jobs import AsyncJobDetailSchema, AsyncJobQuerySchema, AsyncJobSchema
from models import AsyncJob
from models.async_job import REPLAYABLE
from models.enums import Role

bp = api_blueprint("async_jobs")
ENVELOPE = "asyncRequests"


def _job(client_id: str, proxy_id: str, request_id: str, role: Role = Role.USER) -> AsyncJob:
    proxy = proxy_for(client_id, proxy_id, role)
    job = db.session.get(AsyncJob, request_id, options=[selectinload(AsyncJob.attempts)])
    if job is None or job.proxy_id != proxy.id:
        raise not_found("Async request")
    return job


@bp.get("/clients/<client_id>/proxies/<proxy_id>/async")
@doc(
    "List a proxy's async requests, newest first",
    "async",
    envelope=ENVELOPE,
    schema=AsyncJobSchema,
    query=AsyncJobQuerySchema().fields,
    errors=(400, 401, 404),
)
def list_jobs(client_id: str, proxy_id: str):
    proxy = proxy_for(client_id, proxy_id)
    args = AsyncJobQuerySchema().load(request.args.to_dict())
    query = select(AsyncJob).where(AsyncJob.proxy_id == proxy.id)
    if "status" in args:
        query = query.where(AsyncJob.status == args["status"])
    query = (
        query.options(selectinload(AsyncJob.attempts))
        .order_by(AsyncJob.accepted_at.desc(), AsyncJob.id)
        .limit(args["limit"])
    )
    jobs = db.session.scalars(query).all()
    return envelope(ENVELOPE, AsyncJobSchema(many=True).dump(jobs))


@bp.get("/clients/<client_id>/proxies/<proxy_id>/async/<request_id>")
@doc(
    "Get one async request: its status, every attempt and the final response",
    "async",
    envelope=ENVELOPE,
    schema=AsyncJobDetailSchema,
    errors=(401, 404),
)
def get_job(client_id: str, proxy_id: str, request_id: str):
    return envelope(ENVELOPE, [AsyncJobDetailSchema().dump(_job(client_id, proxy_id, request_id))])


@bp.post("/clients/<client_id>/proxies/<proxy_id>/async/<request_id>/replay")
@doc(
    "Queue a failed or dead async request again, with a new retry window",
    "async",
    envelope=ENVELOPE,
    schema=AsyncJobSchema,
    errors=(401, 403, 404, 409),
)
def replay_job(client_id: str, proxy_id: str, request_id: str):
    job = _job(client_id, proxy_id, request_id, Role.ADMIN)
    if job.status not in REPLAYABLE:
        raise conflict(
            f"Only failed or dead requests can be replayed; this one is {job.status}",
            {"status": job.status},
        )
    now = time.time()
    job.status = "queued"
    job.deadline_at = now + job.window_s
    job.attempts_in_round = 0
    job.next_attempt_at = now
    job.finished_at = None
    db.session.flush()
    # The answer says what the replay did: once committed, a dispatcher may claim the job
    # at once, and reading it back could already show it in progress.
    replayed = AsyncJobSchema().dump(job)
    db.session.commit()
    return envelope(ENVELOPE, [replayed], message="Queued again")
