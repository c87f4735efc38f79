"""What rules and payload filters share: each belongs to one credential, proxy or target."""

from __future__ import annotations

from sqlalchemy import CheckConstraint, ForeignKey
from sqlalchemy.orm import Mapped, declared_attr, mapped_column, relationship

# The parent kinds, as the Core API's routes name them (kind → plural path segment).
PARENT_KINDS = {"credential": "credentials", "proxy": "proxies", "target": "targets"}


class OneParent:
    """A record attached to exactly one of a credential, a proxy or a target.

    Mixed into `Rule` and `PayloadFilter`: the three nullable parent columns, the
    check that exactly one is set, and the parent's id whichever it is.
    """

    @declared_attr.directive
    def __table_args__(cls) -> tuple:
        # A new constraint per table: one shared object would be renamed by each table.
        return (
            CheckConstraint(
                "CAST(credential_id IS NOT NULL AS INTEGER) + CAST(proxy_id IS NOT NULL AS INTEGER)"
                " + CAST(target_id IS NOT NULL AS INTEGER) = 1",
                name="one_parent",
            ),
        )

    credential_id: Mapped[str | None] = mapped_column(
        ForeignKey("credentials.id", ondelete="CASCADE"), index=True
    )
    proxy_id: Mapped[str | None] = mapped_column(
        ForeignKey("proxies.id", ondelete="CASCADE"), index=True
    )
    target_id: Mapped[str | None] = mapped_column(
        ForeignKey("targets.id", ondelete="CASCADE"), index=True
    )

    @declared_attr
    def credential(cls):
        return relationship("Credential", foreign_keys=[cls.credential_id], viewonly=True)

    @property
    def parent_id(self) -> str:
        return self.credential_id or self.proxy_id or self.target_id

    def attach_to(self, kind: str, parent_id: str) -> None:
        """Set the parent: `kind` is one of `PARENT_KINDS`."""
        setattr(self, f"{kind}_id", parent_id)
