"""Proxy and target credentials; the secret part is only ever stored sealed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, TimestampMixin, UTCDateTime, utcnow
from models.config_version import ConfigEntity
from models.crypto import KeyRing, SealedSecret
from models.ids import new_id


class Credential(ConfigEntity, TimestampMixin, Base):
    __tablename__ = "credentials"

    id: Mapped[str] = mapped_column(
        String(32), primary_key=True, default=lambda: new_id("credential")
    )
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(200))
    credential_type: Mapped[str] = mapped_column(String(16))
    auth_type: Mapped[str] = mapped_column(String(32))
    region: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(default=True)
    default_rule_effect: Mapped[str] = mapped_column(String(8), default="allow")
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # OAuth2 credentials still waiting for authorization are "temporary".
    temporary: Mapped[bool] = mapped_column(default=False)
    # Non-secret settings of the auth type (header name, prefix, JWKS URL, ...).
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    secret_key_id: Mapped[str] = mapped_column(String(64))
    secret_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)

    rules = relationship("Rule", cascade="all, delete-orphan", foreign_keys="Rule.credential_id")

    def set_secret(self, key_ring: KeyRing, secret: dict) -> None:
        """Seal `secret` for this credential. The id must be assigned first (it is the AAD)."""
        if self.id is None:
            self.id = new_id("credential")
        sealed = key_ring.seal(secret, self.id)
        self.secret_key_id, self.secret_ciphertext = sealed.key_id, sealed.ciphertext

    def open_secret(self, key_ring: KeyRing) -> dict:
        """The decrypted secret; for the data plane only, never for an API response."""
        return key_ring.open(SealedSecret(self.secret_key_id, self.secret_ciphertext), self.id)

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or utcnow())
