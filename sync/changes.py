"""The pull feed (PROTOCOL.md §3): what changed in a device's scope since its cursor.

Positions are (txid, id) of ``change_log`` rows, served in that order and only for transactions below the feed's
horizon: the oldest ticket of a transaction registered as a writer of changes and still running (``models.feed``;
``_SNAPSHOT`` says how one statement reads it consistently with its snapshot). A change-writing transaction
that commits late therefore holds the feed back instead of being skipped, nothing is served twice on one cursor
chain, and no other transaction — a long import, a report, another database of the server — holds it back at all.

Number blocks are read from their own table by block id (a pull allocates them in its own transaction, and they must
be in that same response); device settings are sent whenever they differ from what the cursor chain last carried.
Cursors are opaque to devices and never built from device clocks. Compacting the log (a later issue) raises
``server_state.feed_floor_id``; a cursor below it must reset, as must one from another epoch.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from models import devices as device_ops
from models import feed
from models.devices import ACTIVE, NumberBlock, number_block_data
from models.errors import Conflict, Forbidden, InvalidInput
from models.feed import SCOPE_ALL, WRITER_NAMESPACE, device_scope, jurisdiction_scope
from models.jurisdictions import Jurisdiction
from models.server_state import bump_epoch, get_state


class ResetRequired(Conflict):
    """The cursor belongs to another epoch or is older than the feed keeps: refetch the scope from no cursor."""

    code = "reset_required"


# positions are PostgreSQL bigints; a larger number cannot come from this server and must not reach SQL
_MAX_POSITION = 2**63 - 1


@dataclass(frozen=True)
class Cursor:
    epoch: str
    txid: int
    id: int
    block_id: int
    settings_hash: str

    def encode(self) -> str:
        raw = json.dumps([self.epoch, self.txid, self.id, self.block_id, self.settings_hash], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, value: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            epoch, txid, id_, block_id, settings_hash = json.loads(raw)
            if not (
                isinstance(epoch, str)
                and all(
                    isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= _MAX_POSITION
                    for v in (txid, id_, block_id)
                )
                and isinstance(settings_hash, str)
            ):
                raise ValueError("bad cursor fields")
        except (ValueError, TypeError):
            raise InvalidInput("the cursor is not one this server made", field="cursor") from None
        return cls(epoch, txid, id_, block_id, settings_hash)


@dataclass(frozen=True)
class PullSettings:
    block_size: int
    min_live_blocks: int
    block_expiry: timedelta
    device_settings: dict[str, Any]
    watermarks: device_ops.Watermarks | None = None


def _settings_hash(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class _Snapshot:
    """What a pull needs to know before it reads the feed, read in one statement."""

    epoch: str
    feed_floor_id: int
    newest_change: int
    jurisdiction: str
    status: str
    live_blocks: int
    newest_block: int


# The horizon (``models.feed``): the oldest ticket of a registered writer, the first transaction id not yet
# completed, and any transaction still running when this statement's snapshot was taken that has ended since (it may
# have been a writer that let its registration go after the snapshot: its rows are not in the snapshot, so nothing
# above it may be served yet). The lock table is read once, after the snapshot was taken.
_SNAPSHOT = text(
    f"""
    WITH locks AS MATERIALIZED (
        SELECT locktype, database, classid, objid, objsubid, transactionid FROM pg_lock_status()
    ), horizon AS (
        SELECT least(
            pg_snapshot_xmax(pg_current_snapshot())::text::bigint,
            (SELECT min(((l.classid::bigint & 65535) << 32) | l.objid::bigint) FROM locks AS l
              WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND (l.classid::bigint >> 16) = {WRITER_NAMESPACE}
                AND l.database = (SELECT d.oid FROM pg_database AS d WHERE d.datname = current_database())),
            (SELECT min(x::text::bigint) FROM pg_snapshot_xip(pg_current_snapshot()) AS x
              WHERE NOT EXISTS (SELECT 1 FROM locks AS l
                                 WHERE l.locktype = 'transactionid' AND l.transactionid = xid(x)))
        ) AS txid
    ), snap AS (
        SELECT s.epoch, s.feed_floor_id,
               coalesce((SELECT max(id) FROM change_log), 0) AS newest_change,
               d.id AS device_id, d.jurisdiction, d.status,
               (SELECT count(*) FROM number_blocks b
                 WHERE b.device_id = d.id AND b.status = :active AND b.expires_at > :now
                   AND b.used_count < b.last_serial - b.first_serial + 1) AS live_blocks,
               coalesce((SELECT max(id) FROM number_blocks b WHERE b.device_id = d.id AND b.status = :active), 0)
                 AS newest_block
        FROM server_state AS s, devices AS d
        WHERE s.id = 1 AND d.id = :device_id
    )
    SELECT snap.epoch, snap.feed_floor_id, snap.newest_change, snap.jurisdiction, snap.status, snap.live_blocks,
           snap.newest_block, c.id, c.txid, c.entity, c.key, c.op, c.data
    FROM snap LEFT JOIN LATERAL (
        SELECT id, txid, entity, key, op, data FROM change_log
        WHERE scope = ANY(ARRAY[:scope_all, :jurisdiction_prefix || snap.jurisdiction, :device_scope])
          AND (txid, id) > (:txid, :id)
          AND txid < (SELECT txid FROM horizon)
        ORDER BY txid, id
        LIMIT :limit
    ) AS c ON true
    ORDER BY c.txid, c.id
    """
)


def _read(
    session: Session, device_id: str, now: datetime, after: tuple[int, int], limit: int
) -> tuple[_Snapshot, list[Any]]:
    """The server state, the device, its blocks and up to ``limit`` changes after ``after`` in its scope: one
    statement, one snapshot of the database (the empty pull is the hot path)."""
    params = {
        "device_id": device_id,
        "now": now,
        "active": ACTIVE,
        "scope_all": SCOPE_ALL,
        "jurisdiction_prefix": jurisdiction_scope(""),
        "device_scope": device_scope(device_id),
        "txid": after[0],
        "id": after[1],
        "limit": limit,
    }
    rows = session.execute(_SNAPSHOT, params).all()
    if not rows:
        feed.register_writer(session)  # creating the state row writes, and this pull may go on to allocate
        get_state(session)  # the state row is created on first use; the device is then what is missing
        device_ops.get_device(session, device_id)
        rows = session.execute(_SNAPSHOT, params).all()
    snap = _Snapshot(*rows[0][:7])
    return snap, [row[7:] for row in rows if row[7] is not None]


def pull(
    session: Session, device_id: str, cursor_text: str | None, limit: int, now: datetime, settings: PullSettings
) -> dict[str, Any]:
    """One page of changes for ``device_id`` after ``cursor_text`` (``None``: the whole scope from the start).

    Tops the device up with number blocks first (in this transaction), so new blocks are in this response.
    Raises ``ResetRequired``, ``InvalidInput`` (undecodable cursor) and ``Forbidden(device_revoked)``.
    """
    cursor = None if cursor_text is None else Cursor.decode(cursor_text)
    after = (0, 0) if cursor is None else (cursor.txid, cursor.id)
    snap, rows = _read(session, device_id, now, after, limit + 1)
    epoch = snap.epoch
    if cursor is None:
        cursor = Cursor(epoch, 0, 0, 0, "")
    else:
        if cursor.epoch != epoch:
            raise ResetRequired("the server's sync epoch changed; push what is unsynced, then pull from no cursor")
        if cursor.id > snap.newest_change:
            # a cursor from the future: this database was restored from a backup older than the cursor
            bump_epoch(session)
            raise ResetRequired(
                "the database was restored: push what is unsynced, then pull from no cursor", keep_changes=True
            )
        if cursor.id < snap.feed_floor_id:
            raise ResetRequired(
                "the cursor is older than the feed keeps; push what is unsynced, then pull from no cursor"
            )

    if snap.status == device_ops.REVOKED:
        raise Forbidden("this device has been revoked", code="device_revoked")
    newest_block = snap.newest_block
    if snap.live_blocks < settings.min_live_blocks:
        # only a pull that must allocate locks the device (and writes): the usual empty pull is a pure read.
        # Allocating may delete spent blocks from the feed, so the pull registers as a writer before it locks.
        feed.register_writer(session)
        device = device_ops.get_device(session, device_id, for_update=True)
        added = device_ops.top_up_blocks(
            session,
            device,
            now,
            block_size=settings.block_size,
            min_live=settings.min_live_blocks,
            expiry=settings.block_expiry,
            watermarks=settings.watermarks,
        )
        newest_block = max([newest_block, *(block.id for block in added)])
        epoch = get_state(session).epoch
    if cursor_text is not None and epoch != cursor.epoch:
        # the allocator found the database restored and started a new epoch: this cursor may point past changes
        # the restored database never had. Keep the new epoch (and the blocks), refuse the page.
        raise ResetRequired(
            "the database was restored: push what is unsynced, then pull from no cursor", keep_changes=True
        )

    changes: list[dict[str, Any]] = []
    device_settings = {**settings.device_settings, **_office_of(session, snap.jurisdiction)}
    settings_hash = _settings_hash(device_settings)
    if settings_hash != cursor.settings_hash:
        changes.append({"entity": "device_settings", "op": "upsert", "key": "settings", "data": device_settings})
    block_id = cursor.block_id
    for block in _new_blocks(session, device_id, block_id) if newest_block > block_id else []:
        changes.append(
            {"entity": "number_block", "op": "upsert", "key": str(block.id), "data": number_block_data(block)}
        )
        block_id = block.id

    has_more = len(rows) > limit
    rows = rows[:limit]
    txid, last_id = cursor.txid, cursor.id
    for change_id, change_txid, entity, key, op, data in rows:
        changes.append({"entity": entity, "op": op, "key": key, "data": data})
        txid, last_id = change_txid, change_id
    next_cursor = Cursor(epoch, txid, last_id, block_id, settings_hash)
    return {"epoch": epoch, "next_cursor": next_cursor.encode(), "has_more": has_more, "changes": changes}


def _new_blocks(session: Session, device_id: str, after_id: int) -> list[NumberBlock]:
    return list(
        session.scalars(
            select(NumberBlock)
            .where(NumberBlock.device_id == device_id, NumberBlock.id > after_id, NumberBlock.status == ACTIVE)
            .order_by(NumberBlock.id)
        )
    )


_OFFICES: dict[str, dict[str, Any]] = {}  # per process: jurisdictions' names and addresses change only by release


def _office_of(session: Session, jurisdiction: str) -> dict[str, Any]:
    """The issuing office printed on the device's slips (its jurisdiction, with the city's name before it)."""
    cached = _OFFICES.get(jurisdiction)
    if cached is None:
        cached = _OFFICES[jurisdiction] = _load_office(session, jurisdiction)
    return cached


def _load_office(session: Session, jurisdiction: str) -> dict[str, Any]:
    office = session.get(Jurisdiction, jurisdiction)
    if office is None:
        return {}
    parent = session.get(Jurisdiction, office.parent_code) if office.parent_code else None
    name = f"{parent.name} {office.name}" if parent is not None else office.name
    data: dict[str, Any] = {"office_name": name}
    if office.address:
        data["office_address"] = office.address
    return data
