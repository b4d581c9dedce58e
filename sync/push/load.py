"""Everything deciding a batch's events needs, read before the first decision: a few queries for the whole batch
instead of a few per event (the push path's cost is its round trips). The reads that answer what this batch itself
changes (a notice's current state, a fine's stage) stay per event, just before that event's decision."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

import protocol
from models import devices as device_ops
from models import evidence
from models import notices as notice_ops
from models import payments as payment_ops
from models import review as review_ops
from models.catalog import FineSchedule, ViolationCode
from models.crypto import PiiCipher
from models.devices import Device, NumberBlock
from models.fines.tables import FineCase
from models.sync_store import SyncEvent
from models.users import User
from sync.push.envelope import bad_text, named_officer, named_text, notice_no_of, photos_of, plate_and_time

_SUBJECT_TYPES = (protocol.NOTICE_VOIDED, protocol.NOTICE_CORRECTED, protocol.NOTICE_REPRINTED)


@dataclass
class Needs:
    """What the batch's decisions read, loaded up front (``load``); kept up to date with what the batch changes."""

    qr_keys: list[str] = field(default_factory=list)  # every QR key the device ever had, newest first
    blocks: list[NumberBlock] = field(default_factory=list)
    codes: dict[str, ViolationCode] = field(default_factory=dict)
    schedules: dict[str, list[protocol.ScheduleRow]] = field(default_factory=dict)  # by violation code
    users: dict[int, User] = field(default_factory=dict)
    spoiled: set[str] = field(default_factory=set)  # the batch's numbers already spoiled (this batch's spoils added)
    in_suspense: set[str] = field(default_factory=set)  # the batch's numbers with money waiting in suspense
    missing_photos: set[str] = field(default_factory=set)  # the batch's photos the server does not have
    refused_before: set[str] = field(default_factory=set)  # numbers whose issue by this device was refused before
    dedupe_window: timedelta = timedelta(0)  # the widest duplicate window of any violation code
    # live parking notices of the batch's plates (``None``: notices changed since, to be read again)
    candidates: dict[str, list[review_ops.Candidate]] | None = None
    probes: list[tuple[str, datetime]] = field(default_factory=list)  # (plate, observed time) of the batch's issues
    chain: dict[int, str] = field(default_factory=dict)  # seq → content hash of the device's links


def load(
    session: Session,
    device: Device,
    events: Sequence[dict[str, Any]],
    cipher: PiiCipher,
    stored: Sequence[dict[str, Any]] = (),
) -> Needs:
    """Read what deciding ``events`` (the events this push will apply, in order) needs, and storing ``stored``
    (the officers they name), in one query per kind."""
    needs = Needs()
    officers = sorted({o for o in (named_officer(e) for e in (*events, *stored)) if o is not None})
    if officers:
        needs.users = {u.id: u for u in session.scalars(select(User).where(User.id.in_(officers)))}
    if not events:
        return needs
    types = {event.get("type") for event in events}
    if types & {protocol.NOTICE_ISSUED, protocol.NOTICE_CORRECTED}:
        needs.qr_keys = device_ops.qr_keys(session, device.id, cipher)
    if types & {protocol.NOTICE_ISSUED, protocol.NUMBER_SPOILED}:
        needs.blocks = device_ops.blocks_of_device(session, device.id)
    issues = [event for event in events if event.get("type") == protocol.NOTICE_ISSUED]
    numbers = {n for n in (notice_no_of(e) for e in events) if n and protocol.parse_notice_no(n) is not None}
    if issues:
        code_names = {c for c in (named_text(e, "violation_code") for e in issues) if c is not None}
        if code_names:
            wanted = sorted(code_names)
            needs.codes = {
                c.code: c for c in session.scalars(select(ViolationCode).where(ViolationCode.code.in_(wanted)))
            }
            for row in session.scalars(select(FineSchedule).where(FineSchedule.code.in_(sorted(needs.codes)))):
                needs.schedules.setdefault(row.code, []).append(row.to_rule())
        needs.spoiled = device_ops.spoiled_among(session, numbers)
        needs.in_suspense = payment_ops.in_suspense_among(session, numbers)
        hashes = sorted({h for e in issues for h in photos_of(e)})
        needs.missing_photos = set(evidence.missing_photos(session, hashes))
        needs.probes = [p for p in (plate_and_time(e) for e in issues) if p is not None]
        if needs.probes:
            needs.dedupe_window = timedelta(minutes=review_ops.max_dedupe_window_min(session))
            needs.candidates = candidates(session, device.jurisdiction, needs)
    subjects = {n for e in events if e.get("type") in _SUBJECT_TYPES and (n := notice_no_of(e)) and not bad_text(n)}
    if subjects:
        needs.refused_before = refused_issues(session, device.id, subjects)
    return needs


def candidates(session: Session, jurisdiction: str, needs: Needs) -> dict[str, list[review_ops.Candidate]]:
    """Live parking notices of the batch's plates near the batch's observed times (one query)."""
    found: dict[str, list[review_ops.Candidate]] = {plate: [] for plate, _ in needs.probes}
    if needs.probes:
        window = needs.dedupe_window
        start = min(t for _, t in needs.probes) - window
        end = max(t for _, t in needs.probes) + window
        for candidate in review_ops.duplicate_candidates(session, jurisdiction, list(found), start, end):
            found[candidate.plate].append(candidate)
    return found


def candidates_near(
    session: Session, jurisdiction: str, window: timedelta, plate: str, observed_at: datetime
) -> list[review_ops.Candidate]:
    """Live parking notices of one plate near one time (for an issue whose plate the batch's probes missed)."""
    return review_ops.duplicate_candidates(session, jurisdiction, [plate], observed_at - window, observed_at + window)


def refused_issues(session: Session, device_id: str, notice_nos: Iterable[str]) -> set[str]:
    """Which of ``notice_nos`` this device pushed an issue of that was refused (rejected, or lost the number)."""
    wanted = sorted(notice_nos)
    if not wanted:
        return set()
    return set(
        session.scalars(
            select(SyncEvent.notice_no).where(
                SyncEvent.notice_no.in_(wanted),
                SyncEvent.type == protocol.NOTICE_ISSUED,
                SyncEvent.status.in_([protocol.REJECTED, protocol.CONFLICT]),
                SyncEvent.device_id == device_id,
            )
        )
    )


def previous_link_hash(session: Session, needs: Needs, device_id: str, generation: int, seq: int) -> str | None:
    """The content hash of the link before ``seq`` (``None``: not received yet)."""
    if seq == 1:
        return protocol.GENESIS_HASH
    if seq - 1 in needs.chain:
        return needs.chain[seq - 1]
    found = session.scalar(
        select(SyncEvent.content_hash).where(
            SyncEvent.device_id == device_id,
            SyncEvent.generation == generation,
            SyncEvent.seq == seq - 1,
            SyncEvent.is_link.is_(True),
        )
    )
    if found is not None:
        needs.chain[seq - 1] = found
    return found


def subject(session: Session, notice_no: str, *, for_update: bool) -> tuple[notice_ops.Notice | None, str | None]:
    """The notice an event is about as it stands now (this batch's earlier events included), and its fine's stage
    (``None``: no case yet), in one query."""
    stmt = (
        select(notice_ops.Notice, FineCase.stage)
        .outerjoin(FineCase, FineCase.notice_id == notice_ops.Notice.id)
        .where(notice_ops.Notice.notice_no == notice_no)
    )
    if for_update:
        stmt = stmt.with_for_update(of=notice_ops.Notice)
    row = session.execute(stmt).first()
    return (None, None) if row is None else (row[0], row[1])


def notice_exists(session: Session, notice_no: str) -> bool:
    """Whether a notice has this number (this batch's issues included)."""
    return notice_ops.find_notice(session, notice_no) is not None


@dataclass(frozen=True)
class BatchRows:
    """The stored events a push compares its batch with."""

    existing: dict[str, SyncEvent]  # event id → the stored event, for the batch's event ids
    held: dict[int, SyncEvent]  # seq → the device's held events above its acked seq
    forced: dict[int, str]  # seq → content hash of held events a clerk already decided (final, gap still open)
    chain: dict[int, str]  # the device's link at its acked seq (the next event's predecessor), when stored


def batch_rows(session: Session, device: Device, event_ids: set[str]) -> BatchRows:
    """The stored copies of the batch's events, and the device's chain from its acked seq on: its held events, its
    force-processed links and the link the next event follows (two queries)."""
    existing = {
        row.event_id: row for row in session.scalars(select(SyncEvent).where(SyncEvent.event_id.in_(event_ids)))
    }
    acked = device.acked_seq
    held: dict[int, SyncEvent] = {}
    forced: dict[int, str] = {}
    chain: dict[int, str] = {}
    for row in session.scalars(
        select(SyncEvent).where(
            SyncEvent.device_id == device.id,
            SyncEvent.generation == device.generation,
            SyncEvent.seq >= acked,
            or_(SyncEvent.status == protocol.HELD, SyncEvent.is_link.is_(True)),
        )
    ):
        if row.seq == acked:
            if row.is_link:
                chain[acked] = row.content_hash
        elif row.status == protocol.HELD:
            held[row.seq] = row
        elif row.is_link:
            forced[row.seq] = row.content_hash
    return BatchRows(existing, held, forced, chain)
