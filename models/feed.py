"""The change log behind the devices' pull feed (PROTOCOL.md §3).

Every domain operation that changes something a device pulls records a row here in the same transaction. Each row
carries the id of the transaction that wrote it (``txid``); ``sync.changes`` serves only rows of transactions that
ended before the oldest one still running, ordered by (txid, id), so a late commit is never skipped.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Index, String, func, insert, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, Session, mapped_column

from models import bulk
from models.base import Base

SCOPE_ALL = "all"


def jurisdiction_scope(code: str) -> str:
    return f"j:{code}"


def device_scope(device_id: str) -> str:
    return f"d:{device_id}"


class ChangeLog(Base):
    __tablename__ = "change_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    txid: Mapped[int] = mapped_column(BigInteger, server_default=text("(pg_current_xact_id()::text::bigint)"))
    scope: Mapped[str] = mapped_column(String(50))
    entity: Mapped[str] = mapped_column(String(30))
    key: Mapped[str] = mapped_column(String(120))
    op: Mapped[str] = mapped_column(String(10))
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_change_log_scope_txid_id", "scope", "txid", "id"),)


def record_change(
    session: Session, scope: str, entity: str, key: str, data: dict[str, Any] | None, op: str = "upsert"
) -> None:
    """Append one change for devices to pull; ``op`` is ``upsert`` or ``delete``."""
    session.execute(insert(ChangeLog).values(scope=scope, entity=entity, key=key, op=op, data=data))


def record_changes(session: Session, rows: list[tuple[str, str, str, str, dict[str, Any] | None]]) -> None:
    """Append many changes at once, each ``(scope, entity, key, op, data)`` (copied in: one round trip)."""
    bulk.copy_rows(session, "change_log", ("scope", "entity", "key", "op", "data"), rows)
