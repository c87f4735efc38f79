"""What the data plane writes of an OAuth2 connection (`credential_grants`): the refresh claim,
the rotated refresh token, and the "needs reconnecting" state with its notification.

Every function runs in a worker thread with its own short transaction. Writes are
compare-and-set on `generation`, so a process holding a stale view never overwrites a
newer refresh token, and `claim_refresh` lets one process at a time refresh
(`refreshing_until`: the claim ends by itself if its holder dies).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from models import Credential, CredentialGrant, utcnow
from models.crypto import KeyRing
from models.events import Event, record_event

CLAIM_FOR = timedelta(seconds=30)
MAX_ERROR_CHARS = 500
NEEDS_RECONNECT_EVENT = "credential.needs_reconnect"


@dataclass(frozen=True)
class GrantRow:
    """A grant as read for a refresh: its state and, opened, its refresh token."""

    status: str
    generation: int
    refresh_token: str | None = field(repr=False)
    refreshing_until: datetime | None


def read_grant(session: Session, key_ring: KeyRing, credential_id: str) -> GrantRow | None:
    grant = session.get(CredentialGrant, credential_id, populate_existing=True)
    if grant is None:
        return None
    return GrantRow(
        status=grant.status,
        generation=grant.generation or 0,
        refresh_token=grant.open_refresh_token(key_ring),
        refreshing_until=grant.refreshing_until,
    )


def claim_refresh(session: Session, credential_id: str, generation: int) -> bool:
    """Whether this process may refresh now: the grant is connected, still at `generation`,
    and nobody else holds an unexpired claim. The claim lasts `CLAIM_FOR` at most."""
    now = utcnow()
    claimed = session.execute(
        update(CredentialGrant)
        .where(
            CredentialGrant.credential_id == credential_id,
            CredentialGrant.generation == generation,
            CredentialGrant.status == "connected",
            or_(
                CredentialGrant.refreshing_until.is_(None),
                CredentialGrant.refreshing_until < now,
            ),
        )
        .values(refreshing_until=now + CLAIM_FOR)
    ).rowcount
    session.commit()
    return claimed == 1


def store_refresh(
    session: Session,
    key_ring: KeyRing,
    credential_id: str,
    generation: int,
    rotated: str | None,
    access_expires_at: datetime,
) -> bool:
    """A successful refresh: the rotated refresh token (generation + 1) if one came, the
    times, the claim released. False when the grant moved on meanwhile (nothing written)."""
    grant = session.scalars(
        select(CredentialGrant).where(
            CredentialGrant.credential_id == credential_id,
            CredentialGrant.generation == generation,
        )
    ).first()
    if grant is None:
        session.rollback()
        return False
    if rotated is not None:
        grant.set_refresh_token(key_ring, rotated)
    grant.last_refresh_at, grant.access_expires_at = utcnow(), access_expires_at
    grant.last_error = grant.last_error_at = grant.refreshing_until = None
    session.commit()
    return True


def release_claim(session: Session, credential_id: str, generation: int, error: str) -> None:
    """A refresh that failed for a passing reason: the claim released, the error noted."""
    session.execute(
        update(CredentialGrant)
        .where(
            CredentialGrant.credential_id == credential_id,
            CredentialGrant.generation == generation,
        )
        .values(refreshing_until=None, last_error=error[:MAX_ERROR_CHARS], last_error_at=utcnow())
    )
    session.commit()


def mark_needs_reconnect(session: Session, credential_id: str, generation: int, error: str) -> bool:
    """The refresh token was refused: the grant needs reconnecting, and the client's members
    are told once (a notification). False when it had moved on or was marked already."""
    now = utcnow()
    marked = session.execute(
        update(CredentialGrant)
        .where(
            CredentialGrant.credential_id == credential_id,
            CredentialGrant.generation == generation,
            CredentialGrant.status == "connected",
        )
        .values(
            status="needs_reconnect",
            refreshing_until=None,
            last_error=error[:MAX_ERROR_CHARS],
            last_error_at=now,
        )
    ).rowcount
    if marked == 1:
        credential = session.get(Credential, credential_id)
        if credential is not None:
            record_event(session, needs_reconnect_event(credential))
    session.commit()
    return marked == 1


def needs_reconnect_event(credential: Credential) -> Event:
    """The client event of a refused refresh token: `credential.needs_reconnect`."""
    return Event(
        name=NEEDS_RECONNECT_EVENT,
        client_id=credential.client_id,
        title="Credential needs reconnecting",
        message=(
            f"The provider refused the refresh token of credential {credential.id} "
            f"({credential.name}); connect it again in the admin to resume requests."
        ),
        details={"event": NEEDS_RECONNECT_EVENT, "credentialId": credential.id},
    )
