"""Async API jobs (seed 002): accepted requests stored durably until delivered, with every attempt.

A job holds the caller's request without the caller's credential; the target
credential is never stored and is injected at each delivery. Jobs have no
foreign key to their proxy: a job whose proxy is gone fails at delivery.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import (
    JSON,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base

JOB_STATUSES = ("queued", "in_progress", "succeeded", "failed", "dead")
WAITING = ("queued", "in_progress")  # may still be delivered
REPLAYABLE = ("failed", "dead")
IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY_MAX_CHARS = 255  # the column's length


def caller_idempotency_key(headers: Iterable[Sequence[str]]) -> str | None:
    """The caller's `Idempotency-Key` among a request's headers (the first one), or None."""
    wanted = IDEMPOTENCY_HEADER.lower()
    return next((value for name, value in headers if name.lower() == wanted and value), None)


def delivery_key(headers: Iterable[Sequence[str]], job_id: str) -> str:
    """The `Idempotency-Key` every delivery attempt of a job carries, whoever delivers it.

    Derived only from what was stored at acceptance (the caller's own key, else the
    job's request id), so it is the same on every retry, after a replay, and after
    another process re-claims the job.
    """
    return caller_idempotency_key(headers) or job_id


class AsyncJob(Base):
    __tablename__ = "async_jobs"
    __table_args__ = (
        UniqueConstraint("proxy_id", "idempotency_key", name="uq_async_jobs_proxy_idempotency"),
        Index("ix_async_jobs_due", "status", "next_attempt_at"),
        Index("ix_async_jobs_proxy_accepted", "proxy_id", "accepted_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the request id
    proxy_id: Mapped[str] = mapped_column(String(32))
    client_id: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(12))
    method: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(Text)  # canonical, below the proxy
    query: Mapped[str] = mapped_column(Text)  # raw, the caller's credential removed
    headers: Mapped[list] = mapped_column(JSON)  # [[name, value], ...], credential removed
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    accepted_at: Mapped[float] = mapped_column(Float)  # epoch s
    window_s: Mapped[float] = mapped_column(Float)  # how long retries may go on
    deadline_at: Mapped[float] = mapped_column(Float)  # retries end here (renewed by a replay)
    attempts_in_round: Mapped[int] = mapped_column(Integer, default=0)  # since accept or replay
    attempts_total: Mapped[int] = mapped_column(Integer, default=0)  # numbers the attempts
    next_attempt_at: Mapped[float | None] = mapped_column(Float)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[float | None] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float)
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_headers: Mapped[list | None] = mapped_column(JSON)
    response_body: Mapped[str | None] = mapped_column(Text)  # bounded
    last_error: Mapped[str | None] = mapped_column(Text)

    attempts: Mapped[list[AsyncAttempt]] = relationship(
        cascade="all, delete-orphan", order_by="AsyncAttempt.number", passive_deletes=True
    )


class AsyncAttempt(Base):
    """One delivery attempt: when, and the target's status or the error."""

    __tablename__ = "async_attempts"

    job_id: Mapped[str] = mapped_column(
        ForeignKey("async_jobs.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True)  # 1, 2, ... over all rounds
    request_id: Mapped[str] = mapped_column(String(36))  # its request log entry
    scheduled_at: Mapped[float] = mapped_column(Float)  # when it was due
    started_at: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float)
    status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
