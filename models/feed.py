"""The change log behind the devices' pull feed (PROTOCOL.md §3).

Every domain operation that changes something a device pulls records a row here in the same transaction. Each row
carries the id of the transaction that wrote it (``txid``); ``sync.changes`` serves rows in (txid, id) order and only
below the feed's horizon, so a late commit is never skipped.

Writers register (migration 0012). A transaction that writes changes is registered as a writer before its
transaction id exists: its ticket (the first id not yet completed) is the key of a shared advisory lock it holds to
its end. The horizon is the oldest ticket still held — so the feed waits for running writers of changes only, never
for other transactions, in this database or another. A transaction's first ``change_log`` insert registers it (a
statement trigger); one that writes anything else first must call ``register_writer`` before that first write, or
the insert is refused (``FeedWriterLate``: its id might already be below a horizon a reader has passed). Keep writers
short: a long job registers per chunk, never for its whole run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, DateTime, Index, String, delete, func, insert, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
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


class FeedWriterLate(RuntimeError):
    """A transaction wrote something before it registered as a writer of changes: a programming error."""


def register_writer(session: Session | Connection) -> int:
    """Register this transaction as a writer of changes (idempotent within it); call before its first write.

    Returns the transaction's ticket. Raises ``FeedWriterLate`` when the transaction has already written."""
    try:
        ticket: int = session.execute(text("SELECT feed_register()")).scalar_one()
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) == WRITER_LATE:
            raise FeedWriterLate(str(exc.orig)) from None
        raise
    return ticket


WRITER_NAMESPACE = 0x4A46  # "JF": the top 16 bits of a registered writer's advisory lock key (its ticket below)
WRITER_LATE = "JF001"  # the SQLSTATE of feed_register() for a transaction that wrote before registering


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
    """What one compaction (or one chunk of it) removed, and the feed floor after it (cursors below it must reset);
    ``more``: a chunk was full, so another may find more to remove."""

    superseded: int
    tombstones: int
    feed_floor_id: int
    more: bool = False
    chunks: int = 1


_SUPERSEDED = text(
    """
    DELETE FROM change_log WHERE id IN (
        SELECT c.id FROM change_log AS c
        WHERE c.created_at < :before
          AND EXISTS (SELECT 1 FROM change_log AS l
                      WHERE l.scope = c.scope AND l.entity = c.entity AND l.key = c.key
                        AND (l.txid, l.id) > (c.txid, c.id))
        ORDER BY c.id
        LIMIT :limit
    )
    """
)

# the oldest tombstones old enough to go, in feed order
_TOMBSTONES = text(
    "SELECT txid, id FROM change_log WHERE op = 'delete' AND created_at < :before ORDER BY txid, id LIMIT :limit"
)

# the floor must cover every cursor that may not have seen a removed tombstone: cursors are positions in
# (txid, id) order, but the floor is an id, so it is one past the largest id at or before the newest removed
# tombstone's position (a cursor after it may then reset needlessly, never miss a delete)
_FLOOR_PAST = text("SELECT max(id) + 1 FROM change_log WHERE (txid, id) <= (:txid, :id)")


def compact(
    session: Session, now: datetime, *, tombstone_age: timedelta, superseded_age: timedelta, limit: int | None = None
) -> Compaction:
    """Shrink the change log without changing what any device ends up with (DESIGN.md §6); with ``limit``, at most
    that many rows of each kind (a chunk: ``services.jobs`` commits one per transaction until ``more`` is false).

    - A change older than ``superseded_age`` that a later change of the same entity (scope, entity, key) replaces
      is removed: every cursor before it will still get the later one.
    - A tombstone (``op = delete``) older than ``tombstone_age`` is removed and the feed floor
      (``server_state.feed_floor_id``) raised past it in the same transaction: a device whose cursor is older gets
      ``reset_required`` and refetches its scope. ``tombstone_age`` must exceed the longest allowed offline period
      (``Config.max_offline_days``), so a device within it never has to.
    """
    from models.server_state import ServerState, get_state

    cap = limit if limit is not None else 2**62
    superseded = session.execute(_SUPERSEDED, {"before": now - superseded_age, "limit": cap}).rowcount  # type: ignore[attr-defined]
    doomed = session.execute(_TOMBSTONES, {"before": now - tombstone_age, "limit": cap}).all()
    get_state(session)
    state = session.scalar(select(ServerState).where(ServerState.id == 1).with_for_update())
    assert state is not None
    if doomed:
        newest = doomed[-1]
        floor = session.scalar(_FLOOR_PAST, {"txid": newest.txid, "id": newest.id})
        if floor is not None and floor > state.feed_floor_id:
            state.feed_floor_id = floor
        session.execute(delete(ChangeLog).where(ChangeLog.id.in_([row.id for row in doomed])))
    session.flush()
    more = limit is not None and (superseded >= limit or len(doomed) >= limit)
    return Compaction(superseded=superseded, tombstones=len(doomed), feed_floor_id=state.feed_floor_id, more=more)
