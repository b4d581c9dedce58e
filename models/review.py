"""The review queue and the hold queue (DESIGN.md §3 step 1, §6): what waits for a clerk, and the clerk's decisions.

- The review queue is every notice ``under_review`` (a flag was raised when it was accepted); a clerk confirms,
  corrects or cancels it (``models.notices``). Decisions carry the version the clerk saw (an ETag): a stale one is
  ``StaleVersion``.
- ``possible_duplicate``: another live notice of the same jurisdiction with the same plate and violation code,
  observed within the code's ``dedupe_window_min`` minutes and ``dedupe_distance_m`` metres (the same normalised
  address when either lacks coordinates). Never merged or rejected: flagged for a clerk.
- The hold queue is every pushed event still ``held`` behind a gap in its device's ``seq``; a clerk may
  force-process one (``sync.push.hold.force_process``), and that decision is kept here: who, when, why.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import BigInteger, DateTime, ForeignKey, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from models import notices as notice_ops
from models.base import Actor, Base, Scope
from models.catalog import ViolationCode
from models.devices import Device
from models.errors import Conflict, DomainError, NotFound
from models.notices import CANCELLED, UNDER_REVIEW, VOIDED, Notice
from models.sync_store import SyncEvent

HELD = "held"  # protocol.HELD; models does not import sync's wire constants for this one word
FORCE_APPLY, FORCE_REJECT = "apply", "reject"


class StaleVersion(Conflict):
    """The notice changed since the caller read it (``If-Match`` names another version)."""

    code = "precondition_failed"


class PreconditionRequired(DomainError):
    """A change to a notice must name the version it was decided on (``If-Match``)."""

    code = "precondition_required"


class HeldDecision(Base):
    """A clerk's force-processing of a held event: the action, the reason, who and when (the event's own row then
    carries its final status and result)."""

    __tablename__ = "held_decisions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    # the decided ``sync_events.id``: no foreign key, so that sync_events keeps refusing TRUNCATE with its own trigger
    # (a referencing key would refuse it first, less clearly); its rows are never deleted anyway
    sync_event_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    action: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(Text)
    decided_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(12))  # the event's final status after the decision


# --- the review queue -----------------------------------------------------------------------------------------------


def list_review(session: Session, scope: Scope, flag: str | None, limit: int, after: int | None) -> list[Notice]:
    """Notices waiting in review in the caller's scope, newest id first, keyset-paginated by ``after`` (an id)."""
    stmt = scope.apply(select(Notice).where(Notice.status == UNDER_REVIEW), Notice.jurisdiction)
    if flag:
        stmt = stmt.where(Notice.flags.contains([flag]))
    if after is not None:
        stmt = stmt.where(Notice.id < after)
    return list(session.scalars(stmt.order_by(Notice.id.desc()).limit(limit)))


def check_version(notice: Notice, expected: int | None) -> None:
    """Raise ``PreconditionRequired`` when no version is given, ``StaleVersion`` unless the notice is still at the
    version the caller saw."""
    if expected is None:
        raise PreconditionRequired("send If-Match with the notice's version (its ETag)", field="If-Match")
    if notice.version != expected:
        raise StaleVersion(
            f"the notice is at version {notice.version}, not {expected}: read it again", field="If-Match"
        )


CONFIRM, CANCEL, CORRECT = "confirm", "cancel", "correct"


@dataclass(frozen=True)
class Decide:
    """A clerk's decision on a notice: ``confirm``, ``cancel`` (직권취소) or ``correct`` (with ``correction``),
    taken on the version the clerk saw (``None``: not said)."""

    notice_no: str
    action: str
    reason: str
    expected_version: int | None
    correction: notice_ops.CorrectNotice | None = None


def decide(session: Session, scope: Scope, cmd: Decide, actor: Actor, now: datetime) -> Notice:
    """Apply a review decision to the notice, locked; in this order of refusal: ``NotFound`` (unknown or outside the
    scope), ``PreconditionRequired``, ``StaleVersion``, then the operation's own (``InvalidTransition`` …)."""
    notice = notice_ops.find_notice(session, cmd.notice_no, for_update=True)
    if notice is None or not scope.allows(notice.jurisdiction):
        raise NotFound("no such notice", field="notice_no")
    check_version(notice, cmd.expected_version)
    if cmd.action == CONFIRM:
        return notice_ops.confirm_notice(session, notice, cmd.reason, actor, now)
    if cmd.action == CANCEL:
        return notice_ops.cancel_notice(session, notice, cmd.reason, actor, now)
    assert cmd.action == CORRECT and cmd.correction is not None
    return notice_ops.correct_notice(session, notice, cmd.correction, actor, now)


# --- possible duplicates --------------------------------------------------------------------------------------------

_SPACES = re.compile(r"\s+")
_EARTH_RADIUS_M = 6_371_008.8


def normalise_address(text: str) -> str:
    """An address compared for sameness: trimmed, inner whitespace removed, case folded."""
    return _SPACES.sub("", text).casefold()


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


@dataclass(frozen=True)
class DuplicateProbe:
    """A parking notice about to be accepted, as duplicate detection sees it."""

    notice_no: str
    jurisdiction: str
    plate: str
    violation_code: str
    observed_at: datetime
    place_address: str
    lat: float | None
    lon: float | None


@dataclass(frozen=True)
class Candidate:
    """A live parking notice as duplicate detection compares it (``id`` is ``None`` while it is being written)."""

    notice_no: str
    plate: str
    violation_code: str
    observed_at: datetime
    place_address: str
    lat: float | None
    lon: float | None
    id: int | None = None


def may_duplicate(probe: DuplicateProbe, other: Candidate, window_min: int, distance_m_max: int) -> bool:
    """Whether ``other`` may be the notice ``probe`` duplicates: same plate and code, observed within the window,
    and within the distance (by coordinates when both have them, else the same address)."""
    if (other.notice_no == probe.notice_no or other.plate != probe.plate
            or other.violation_code != probe.violation_code):  # fmt: skip
        return False
    if abs(other.observed_at - probe.observed_at) > timedelta(minutes=window_min):
        return False
    if probe.lat is not None and probe.lon is not None and other.lat is not None and other.lon is not None:
        return distance_m(probe.lat, probe.lon, other.lat, other.lon) <= distance_m_max
    return normalise_address(probe.place_address) == normalise_address(other.place_address)


def duplicate_candidates(
    session: Session, jurisdiction: str, plates: Collection[str], start: datetime, end: datetime
) -> list[Candidate]:
    """Live notices of ``jurisdiction`` with one of ``plates`` observed from ``start`` to ``end`` (one query for a
    whole sync batch; ``may_duplicate`` then compares)."""
    if not plates:
        return []
    rows = session.execute(
        select(
            Notice.notice_no,
            Notice.vehicle_plate,
            Notice.violation_code,
            Notice.observed_at,
            Notice.place_address,
            Notice.lat,
            Notice.lon,
            Notice.id,
        )
        .where(
            Notice.vehicle_plate.in_(sorted(plates)),
            Notice.observed_at >= start,
            Notice.observed_at <= end,
            Notice.jurisdiction == jurisdiction,
            Notice.status.not_in((VOIDED, CANCELLED)),
        )
        .order_by(Notice.observed_at, Notice.id)
    )
    return [Candidate(no, plate or "", code, at, address, lat, lon, notice_id)
            for no, plate, code, at, address, lat, lon, notice_id in rows]  # fmt: skip


def max_dedupe_window_min(session: Session) -> int:
    """The widest duplicate window of any violation code (how far around a batch to read candidates)."""
    return session.scalar(select(func.max(ViolationCode.dedupe_window_min))) or 0


def possible_duplicates(session: Session, probe: DuplicateProbe) -> list[Notice]:
    """Live notices (any device or officer) that ``probe`` may duplicate, oldest first.

    Index-friendly: candidates come by (plate, observed_at range) (``ix_notices_plate_observed_at``); distance and
    address are then compared in Python on those few rows.
    """
    code = session.get(ViolationCode, probe.violation_code)
    if code is None:
        return []
    window = timedelta(minutes=code.dedupe_window_min)
    found = duplicate_candidates(
        session, probe.jurisdiction, [probe.plate], probe.observed_at - window, probe.observed_at + window
    )
    ids = [c.id for c in found if may_duplicate(probe, c, code.dedupe_window_min, code.dedupe_distance_m)]
    return [notice for notice in (session.get(Notice, i) for i in ids) if notice is not None]


# --- the hold queue -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeldItem:
    event: SyncEvent
    device: Device
    missing: list[tuple[int, int]]  # the seqs missing before it, as inclusive ranges

    @property
    def missing_count(self) -> int:
        return sum(last - first + 1 for first, last in self.missing)

    @property
    def acked_seq(self) -> int | None:
        """The device's acknowledged seq, when the event is of the device's current generation."""
        return self.device.acked_seq if self.event.generation == self.device.generation else None

    @property
    def gaps(self) -> list[Gap]:
        return [Gap(first, last) for first, last in self.missing]


@dataclass(frozen=True)
class Gap:
    """Seqs missing before a held event, ``first`` to ``last`` inclusive."""

    first: int
    last: int


def _gaps(known: list[int], floor: int, seq: int) -> list[tuple[int, int]]:
    """Inclusive ranges of (floor, seq) not in ``known`` (sorted)."""
    gaps, expected = [], floor + 1
    for value in known:
        if value >= seq:
            break
        if value > expected:
            gaps.append((expected, value - 1))
        expected = max(expected, value + 1)
    if expected < seq:
        gaps.append((expected, seq - 1))
    return gaps


def list_held(session: Session, scope: Scope, limit: int, after: int | None) -> list[HeldItem]:
    """Held events of devices in the caller's scope, oldest first (keyset by the stored row's id), each with the
    seqs missing before it."""
    stmt = select(SyncEvent, Device).join(Device, Device.id == SyncEvent.device_id).where(SyncEvent.status == HELD)
    stmt = scope.apply(stmt, Device.jurisdiction)
    if after is not None:
        stmt = stmt.where(SyncEvent.id > after)
    rows = session.execute(stmt.order_by(SyncEvent.id).limit(limit)).all()
    # per (device, generation): every link above what is known final, up to the highest held seq of the page
    spans: dict[tuple[str, int], tuple[int, int]] = {}
    for event, device in rows:
        floor = device.acked_seq if event.generation == device.generation else 0
        key = (device.id, event.generation)
        low, high = spans.get(key, (floor, 0))
        spans[key] = (low, max(high, event.seq))
    known: dict[tuple[str, int], list[int]] = {}
    for (device_id, generation), (low, high) in spans.items():
        known[(device_id, generation)] = list(
            session.scalars(
                select(SyncEvent.seq)
                .where(
                    SyncEvent.device_id == device_id,
                    SyncEvent.generation == generation,
                    SyncEvent.is_link.is_(True),
                    SyncEvent.seq > low,
                    SyncEvent.seq < high,
                )
                .order_by(SyncEvent.seq)
            )
        )
    return [
        HeldItem(
            event,
            device,
            _gaps(known[(device.id, event.generation)], spans[(device.id, event.generation)][0], event.seq),
        )
        for event, device in rows
    ]


def held_event(session: Session, scope: Scope, event_id: str) -> SyncEvent:
    """A stored event of a device in the caller's scope (held or not); else ``NotFound`` (no oracle)."""
    row = session.scalar(select(SyncEvent).where(SyncEvent.event_id == event_id))
    if row is None:
        raise NotFound("no such held event", field="event_id")
    device = session.get(Device, row.device_id)
    if device is None or not scope.allows(device.jurisdiction):
        raise NotFound("no such held event", field="event_id")
    return row


def record_decision(
    session: Session, row: SyncEvent, action: str, reason: str, user_id: int, at: datetime, status: str
) -> HeldDecision:
    decision = HeldDecision(
        sync_event_id=row.id, action=action, reason=reason, decided_by=user_id, decided_at=at, status=status
    )
    session.add(decision)
    session.flush()
    return decision
