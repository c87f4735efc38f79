"""The control plane's own events: credentials expiring or expired, a failed target test.

Each is recorded with models.events.record_event in the caller's transaction;
dedup keys make a condition reported once however often it is seen (the expiry
scan runs hourly, and in every admin process).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import jwt
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Credential
from models.base import isoformat_z, utcnow
from models.crypto import KeyRing
from models.events import Event, record_event

log = logging.getLogger("portcullis.notify")


def jwt_expiry(token: str) -> datetime | None:
    """The `exp` of a JWT, read without verifying it (it is our own stored secret)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        return None
    try:
        return datetime.fromtimestamp(exp, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def expiries(credential: Credential, key_ring: KeyRing) -> Iterator[tuple[str, datetime]]:
    """What of `credential` expires and when: its secret (expires_at), its JWT's `exp`."""
    if credential.expires_at is not None:
        yield "secret", credential.expires_at
    if credential.auth_type == "jwt":
        try:
            token = credential.open_secret(key_ring).get("token")
        except Exception:  # a secret that does not open is not this scan's concern
            log.warning("credential %s: the secret cannot be opened to read its JWT", credential.id)
            return
        moment = jwt_expiry(token) if isinstance(token, str) else None
        if moment is not None:
            yield "JWT", moment


def expiry_event(credential: Credential, what: str, moment: datetime, now: datetime) -> Event:
    expired = moment <= now
    name = "credential.expired" if expired else "credential.expiring"
    when = isoformat_z(moment)
    noun = "secret" if what == "secret" else "JWT"
    if expired:
        title = f"Credential {credential.name} has expired"
        message = f"The {noun} of credential {credential.name} expired at {when}."
    else:
        days = max((moment - now).days, 0)
        left = "less than a day" if days == 0 else f"{days} day{'s' if days != 1 else ''}"
        title = f"Credential {credential.name} expires in {left}"
        message = f"The {noun} of credential {credential.name} expires at {when}. Replace it."
    return Event(
        name=name,
        title=title,
        message=message,
        details={"credentialId": credential.id, "expires": what, "expiresAt": when},
        client_id=credential.client_id,
        dedup_key=f"{name}:{credential.id}:{what}:{moment.date().isoformat()}",
    )


def scan_credential_expiry(
    session: Session, key_ring: KeyRing, warning_days: int, now: datetime | None = None
) -> int:
    """Record expiring / expired events for active credentials; how many were new. Commits."""
    now = now or utcnow()
    horizon = now + timedelta(days=warning_days)
    recorded = 0
    credentials = session.scalars(
        select(Credential).where(Credential.active.is_(True), Credential.temporary.is_(False))
    ).all()
    for credential in credentials:
        for what, moment in expiries(credential, key_ring):
            if moment <= horizon:
                event = expiry_event(credential, what, moment, now)
                recorded += record_event(session, event) is not None
    session.commit()
    return recorded


def test_failed(status: int | None, error: str | None) -> bool:
    """Whether a target test failed: no answer, or a 4xx/5xx one."""
    return error is not None or status is None or status >= 400


def record_failed_test(
    session: Session,
    client_id: str,
    target: dict,
    proxy_id: str,
    status: int | None,
    error: str | None,
) -> None:
    """Record `target.test_failed` when the test failed; commits."""
    if test_failed(status, error):
        record_event(session, target_test_failed(client_id, target, proxy_id, status, error))
        session.commit()


def target_test_failed(
    client_id: str, target: dict, proxy_id: str, status: int | None, error: str | None
) -> Event:
    """The event of a target Test that failed (no answer, or a 4xx/5xx one)."""
    name = target.get("targetName") or target.get("sKey")
    reason = error or f"the answer was {status}"
    return Event(
        name="target.test_failed",
        title=f"Testing target {name} failed",
        message=f"A test request to target {name} through proxy {proxy_id} failed: {reason}.",
        details={
            "targetId": target.get("sKey"),
            "proxyId": proxy_id,
            "status": status,
            "error": error,
        },
        client_id=client_id,
    )
