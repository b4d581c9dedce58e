"""The change log behind the devices' pull feed (PROTOCOL.md §3).

Every domain operation that changes something a device pulls records a row here in the same transaction. Each row
carries the id of the transaction that wrote it (``txid``); ``sync.changes`` serves only rows of transactions that
ended before the oldest one still running, ordered by (txid, id), so a late commit is never skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, DateTime, Index, String, func, insert, select, text
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


# --- compaction -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Compaction:
    """What one compaction removed, and the feed floor after it (cursors below it must reset)."""

    superseded: int
    tombstones: int
    feed_floor_id: int


_SUPERSEDED = text(
    """
    DELETE FROM change_log AS c
    WHERE c.created_at < :before
      AND EXISTS (SELECT 1 FROM change_log AS l
                  WHERE l.scope = c.scope AND l.entity = c.entity AND l.key = c.key AND (l.txid, l.id) > (c.txid, c.id))
    """
)

# the floor must cover every cursor that may not have seen a removed tombstone: cursors are positions in
# (txid, id) order, but the floor is an id, so it is one past the largest id at or before the newest removed
# tombstone's position (a cursor after it may then reset needlessly, never miss a delete)
_TOMBSTONE_FLOOR = text(
    """
    WITH newest AS (
        SELECT txid, id FROM change_log WHERE op = 'delete' AND created_at < :before ORDER BY txid DESC, id DESC LIMIT 1
    )
    SELECT max(c.id) + 1 FROM change_log AS c, newest WHERE (c.txid, c.id) <= (newest.txid, newest.id)
    """
)

_TOMBSTONES = text("DELETE FROM change_log WHERE op = 'delete' AND created_at < :before")


def compact(session: Session, now: datetime, *, tombstone_age: timedelta, superseded_age: timedelta) -> Compaction:
    """Shrink the change log without changing what any device ends up with (DESIGN.md §6).

    - A change older than ``superseded_age`` that a later change of the same entity (scope, entity, key) replaces
      is removed: every cursor before it will still get the later one.
    - A tombstone (``op = delete``) older than ``tombstone_age`` is removed and the feed floor
      (``server_state.feed_floor_id``) raised past it: a device whose cursor is older gets ``reset_required``
      and refetches its scope. ``tombstone_age`` must exceed the longest allowed offline period
      (``Config.max_offline_days``), so a device within it never has to.
    """
    from models.server_state import ServerState, get_state

    superseded = session.execute(_SUPERSEDED, {"before": now - superseded_age}).rowcount  # type: ignore[attr-defined]
    before = now - tombstone_age
    floor = session.scalar(_TOMBSTONE_FLOOR, {"before": before})
    tombstones = session.execute(_TOMBSTONES, {"before": before}).rowcount  # type: ignore[attr-defined]
    get_state(session)
    state = session.scalar(select(ServerState).where(ServerState.id == 1).with_for_update())
    assert state is not None
    if floor is not None and floor > state.feed_floor_id:
        state.feed_floor_id = floor
    session.flush()
    return Compaction(superseded=superseded, tombstones=tombstones, feed_floor_id=state.feed_floor_id)
