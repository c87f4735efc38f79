"""Authorization rules attached to a credential, a proxy or a target."""

from __future__ import annotations

from sqlalchemy import JSON, ForeignKey, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, TimestampMixin
from models.config_version import ConfigEntity
from models.ids import new_id
from models.scoped import OneParent

EMPTY_LIST = text("'[]'")  # rules written before a JSON list column existed


class Rule(OneParent, ConfigEntity, TimestampMixin, Base):
    __tablename__ = "rules"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("rule"))
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    effect: Mapped[str] = mapped_column(String(8))
    priority: Mapped[int] = mapped_column(default=0)
    methods: Mapped[list[str]] = mapped_column(JSON, default=list)
    path_pattern: Mapped[str | None] = mapped_column(Text)
    path_presence: Mapped[str] = mapped_column(String(8), default="present")
    # [{"namePattern": str, "valuePattern": str | None, "presence": "present" | "absent"}]
    header_checks: Mapped[list[dict]] = mapped_column(JSON, default=list)
    query_checks: Mapped[list[dict]] = mapped_column(JSON, default=list)
    # Request body checks (issue 18): [{"path": str, "valuePattern": str} |
    #  {"path": str, "equals": any} | {"path": str}, each with "presence": present|absent]
    body_checks: Mapped[list[dict]] = mapped_column(JSON, default=list, server_default=EMPTY_LIST)
    body_pattern: Mapped[str | None] = mapped_column(Text)  # RE2 over the raw body as text
    body_pattern_presence: Mapped[str] = mapped_column(
        String(8), default="present", server_default="present"
    )
    # MCP JSON-RPC (proxies marked `mcp`): the methods and tool names a call must (not) have
    mcp_methods: Mapped[list[str]] = mapped_column(JSON, default=list, server_default=EMPTY_LIST)
    mcp_tools: Mapped[list[str]] = mapped_column(JSON, default=list, server_default=EMPTY_LIST)
    mcp_tools_presence: Mapped[str] = mapped_column(
        String(8), default="present", server_default="present"
    )
    regex_flags: Mapped[str] = mapped_column(String(8), default="")
    notes: Mapped[str | None] = mapped_column(Text)
