"""OAuth2 grants of target credentials (issue 14): a connection's refresh token and its Connects.

`CredentialGrant` is one row per oauth2 `authorization_code` / `refresh_token`
credential: its connection state and the refresh token, sealed with the key
ring (AAD `"{credential_id}:refresh"`). The data plane rotates the refresh
token in place (`generation` + 1, a compare-and-set), so the grant lives
outside the credential's sealed secret and writing it does not bump the
config version (neither table is a `ConfigEntity`).

`OAuthAuthorization` is a Connect in progress: keyed by the sha256 of the
random `state` (the state itself is never stored), holding the PKCE code
verifier sealed (AAD the state hash); single use (`used_at`), 10 minutes.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, Text, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base, UTCDateTime, utcnow
from models.crypto import KeyRing, SealedSecret

GRANT_STATUSES = ("pending", "connected", "needs_reconnect")
AUTHORIZATION_TTL = timedelta(minutes=10)


def refresh_aad(credential_id: str) -> str:
    """The associated data a credential's refresh token is sealed under."""
    return f"{credential_id}:refresh"


def state_hash(state: str) -> str:
    """The key an authorization is stored under: sha256 hex of its `state`."""
    return hashlib.sha256(state.encode("utf-8")).hexdigest()


def seal_refresh_token(key_ring: KeyRing, credential_id: str, token: str) -> SealedSecret:
    """Seal a refresh token for `credential_id`."""
    return key_ring.seal({"refreshToken": token}, refresh_aad(credential_id))


def open_refresh_token(key_ring: KeyRing, credential_id: str, sealed: SealedSecret) -> str:
    """The refresh token sealed by `seal_refresh_token`; raises SecretDecryptionError."""
    return key_ring.open(sealed, refresh_aad(credential_id))["refreshToken"]


class CredentialGrant(Base):
    """The connection of an oauth2 credential that refreshes tokens (see the module doc)."""

    __tablename__ = "credential_grants"

    credential_id: Mapped[str] = mapped_column(
        ForeignKey("credentials.id", ondelete="CASCADE"), primary_key=True
    )
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    refresh_key_id: Mapped[str | None] = mapped_column(String(64))
    refresh_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    # +1 at each stored refresh token: the data plane's compare-and-set.
    generation: Mapped[int] = mapped_column(Integer, default=0)
    connected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    connected_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    last_refresh_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    access_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # informational
    last_error: Mapped[str | None] = mapped_column(Text)  # never a secret
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A refresh claim: one process refreshes at a time, until this moment at most.
    refreshing_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    def set_refresh_token(self, key_ring: KeyRing, token: str) -> None:
        """Store `token` sealed and count a new generation."""
        sealed = seal_refresh_token(key_ring, self.credential_id, token)
        self.refresh_key_id, self.refresh_ciphertext = sealed.key_id, sealed.ciphertext
        self.generation = (self.generation or 0) + 1

    def open_refresh_token(self, key_ring: KeyRing) -> str | None:
        """The refresh token in clear (data plane only), or None when there is none."""
        if self.refresh_key_id is None or self.refresh_ciphertext is None:
            return None
        sealed = SealedSecret(self.refresh_key_id, self.refresh_ciphertext)
        return open_refresh_token(key_ring, self.credential_id, sealed)


class OAuthAuthorization(Base):
    """A Connect in progress (see the module doc)."""

    __tablename__ = "oauth_authorizations"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    credential_id: Mapped[str] = mapped_column(
        ForeignKey("credentials.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    verifier_key_id: Mapped[str | None] = mapped_column(String(64))
    verifier_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    redirect_uri: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def set_code_verifier(self, key_ring: KeyRing, verifier: str) -> None:
        """Seal the PKCE code verifier under this authorization's state hash."""
        sealed = key_ring.seal({"codeVerifier": verifier}, self.state_hash)
        self.verifier_key_id, self.verifier_ciphertext = sealed.key_id, sealed.ciphertext

    def open_code_verifier(self, key_ring: KeyRing) -> str | None:
        """The PKCE code verifier, or None for a Connect without PKCE."""
        if self.verifier_key_id is None or self.verifier_ciphertext is None:
            return None
        sealed = SealedSecret(self.verifier_key_id, self.verifier_ciphertext)
        return key_ring.open(sealed, self.state_hash)["codeVerifier"]

    def is_usable(self, now: datetime | None = None) -> bool:
        """Not used yet and not expired."""
        return self.used_at is None and self.expires_at > (now or utcnow())


def reseal_refresh_tokens(session: Session, key_ring: KeyRing) -> int:
    """Re-seal every refresh token not sealed with the active master key; how many changed.

    Each write is a compare-and-set on the row's generation and key id: a token the data
    plane rotated meanwhile (sealed with the active key already) is left as it is.
    """
    rows = session.execute(
        select(
            CredentialGrant.credential_id,
            CredentialGrant.generation,
            CredentialGrant.refresh_key_id,
            CredentialGrant.refresh_ciphertext,
        ).where(
            CredentialGrant.refresh_key_id.is_not(None),
            CredentialGrant.refresh_key_id != key_ring.active_key_id,
        )
    ).all()
    changed = 0
    for credential_id, generation, key_id, ciphertext in rows:
        token = open_refresh_token(key_ring, credential_id, SealedSecret(key_id, ciphertext))
        sealed = seal_refresh_token(key_ring, credential_id, token)
        changed += session.execute(
            update(CredentialGrant)
            .where(
                CredentialGrant.credential_id == credential_id,
                CredentialGrant.generation == generation,
                CredentialGrant.refresh_key_id == key_id,
            )
            .values(refresh_key_id=sealed.key_id, refresh_ciphertext=sealed.ciphertext)
        ).rowcount
    return changed
