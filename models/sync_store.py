"""Stored sync events: every event a device pushed, its content hash (the chain link) and its fate.

Personal fields are encrypted inside the stored payload (DESIGN.md §7); re-sent events are compared by content
hash, never by plaintext. A row changes only while it is ``held``: its fate, once final, is fixed (a trigger
enforces it). ``is_link`` marks the event that owns its ``seq`` in the device's hash chain.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base


class SyncEvent(Base):
    __tablename__ = "sync_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    generation: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    seq: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(40))
    notice_no: Mapped[str | None] = mapped_column(String(40))
    content_hash: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(12))
    result: Mapped[dict[str, Any]] = mapped_column(JSONB)
    is_link: Mapped[bool] = mapped_column(Boolean)
    batch_id: Mapped[str] = mapped_column(String(36))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    officer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    __table_args__ = (
        Index(
            "uq_sync_events_device_generation_seq_link",
            "device_id",
            "generation",
            "seq",
            unique=True,
            postgresql_where=text("is_link"),
        ),
        Index("ix_sync_events_held", "device_id", "generation", "seq", postgresql_where=text("status = 'held'")),
        Index("ix_sync_events_notice_no", "notice_no"),
    )
