"""위반대장: notices issued in the street, their status, version and history (DESIGN.md §3).

Accepting a ``notice.issued`` creates the notice and at once its receivable with the principal charge equal to the
printed amount, even when flagged ``amount_mismatch``: the printed amount is what the citizen saw. A person
notice's personal data (주민등록번호 above all) is stored encrypted from the first row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, Session, mapped_column

from models import bulk, ledger
from models.base import Actor, Base, Scope
from models.catalog import ViolationCode, schedule_rules
from models.crypto import PiiCipher
from models.errors import InvalidInput, InvalidTransition, NotFound
from models.feed import device_scope, record_change, record_changes, register_writer
from protocol import reduced_amount, select_schedule, seoul_date
from protocol.masking import mask_name

ISSUED, UNDER_REVIEW, VOIDED, CANCELLED, PAID = "issued", "under_review", "voided", "cancelled", "paid"
VOIDABLE = (ISSUED, UNDER_REVIEW)
PAYABLE = (ISSUED, UNDER_REVIEW, "noticed")


class Notice(Base):
    __tablename__ = "notices"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    notice_no: Mapped[str] = mapped_column(String(15), unique=True)
    jurisdiction: Mapped[str] = mapped_column(ForeignKey("jurisdictions.code"))
    kind: Mapped[str] = mapped_column(String(10))
    violation_code: Mapped[str] = mapped_column(ForeignKey("violation_codes.code"))
    schedule_key: Mapped[str] = mapped_column(String(80))  # the row the device printed from
    amount: Mapped[int] = mapped_column(BigInteger)  # printed
    reduced_amount: Mapped[int] = mapped_column(BigInteger)  # printed
    opinion_deadline: Mapped[date] = mapped_column(Date)  # printed
    expected: Mapped[dict[str, Any] | None] = mapped_column(JSONB)  # the server's recomputation, when it differs
    vehicle_plate: Mapped[str | None] = mapped_column(String(20), index=True)
    vehicle_type: Mapped[str | None] = mapped_column(String(10))
    offender_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    offender_name_masked: Mapped[str | None] = mapped_column(String(40))
    rrn_hash: Mapped[bytes | None] = mapped_column(LargeBinary, index=True)
    place_address: Mapped[str] = mapped_column(String(200))
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    zone: Mapped[str | None] = mapped_column(String(40))
    observed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    observed_again_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    photos: Mapped[list[str]] = mapped_column(ARRAY(String(64)), default=list)
    officer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    memo: Mapped[str | None] = mapped_column(Text)
    qr: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(15))
    version: Mapped[int] = mapped_column(Integer)
    flags: Mapped[list[str]] = mapped_column(ARRAY(String(30)), default=list)
    issued_event_id: Mapped[str] = mapped_column(String(36))
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # occurred_at on the device
    synced_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    void_reason: Mapped[str | None] = mapped_column(String(20))
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    # duplicate detection looks notices up by plate and a time window (models.review.possible_duplicates)
    __table_args__ = (Index("ix_notices_plate_observed_at", "vehicle_plate", "observed_at"),)


class NoticeHistory(Base):
    """The timeline of a notice: what happened, when, by whom or which device."""

    __tablename__ = "notice_history"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("notices.id"), index=True)
    what: Mapped[str] = mapped_column(String(30))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_device_id: Mapped[str | None] = mapped_column(ForeignKey("devices.id"))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


def notice_status_data(notice: Notice) -> dict[str, Any]:
    data: dict[str, Any] = {"notice_no": notice.notice_no, "status": notice.status, "version": notice.version}
    if notice.paid_at is not None:
        data["paid_at"] = notice.paid_at.isoformat()
    return data


def _status_changed(session: Session, notice: Notice) -> None:
    record_change(
        session, device_scope(notice.device_id), "notice_status", notice.notice_no, notice_status_data(notice)
    )


def _history(
    session: Session, notice: Notice, what: str, at: datetime, actor: Actor, detail: dict[str, Any] | None = None
) -> None:
    session.add(
        NoticeHistory(
            notice_id=notice.id,
            what=what,
            at=at,
            actor_user_id=actor.user_id,
            actor_device_id=actor.device_id,
            detail=detail,
        )
    )


@dataclass(frozen=True)
class IssueNotice:
    """A notice as the device printed it, with the flags the server raised."""

    notice_no: str
    event_id: str
    device_id: str
    jurisdiction: str
    kind: str
    violation_code: str
    schedule_key: str
    amount: int
    reduced_amount: int
    opinion_deadline: date
    place_address: str
    observed_at: datetime
    issued_at: datetime
    qr: str
    officer_id: int | None
    vehicle_plate: str | None = None
    vehicle_type: str | None = None
    offender: dict[str, Any] | None = None
    lat: float | None = None
    lon: float | None = None
    zone: str | None = None
    observed_again_at: datetime | None = None
    photos: list[str] = field(default_factory=list)
    memo: str | None = None
    flags: list[str] = field(default_factory=list)
    expected: dict[str, Any] | None = None
    revenue_item: str | None = None  # the violation code's, when the caller already has it


def issue_notice(session: Session, cmd: IssueNotice, actor: Actor, now: datetime, cipher: PiiCipher) -> Notice | None:
    """Record an issued notice and open its receivable with the principal charge (``issue_notices`` for one).

    Returns ``None`` when the number is already taken by another notice (the caller answers ``notice_no_taken``).
    """
    inserted = issue_notices(session, [(cmd, actor)], now, cipher)
    return session.get(Notice, inserted[cmd.notice_no]) if cmd.notice_no in inserted else None


def issue_notices(
    session: Session, items: Sequence[tuple[IssueNotice, Actor]], now: datetime, cipher: PiiCipher
) -> dict[str, int]:
    """Record issued notices, each with its receivable, principal charge, timeline and change for its device; a
    sync batch's worth in a handful of statements. Returns notice number → id of the notices recorded.

    A number already taken by another notice (or earlier in ``items``) is not recorded and is absent from the
    answer (the caller answers ``notice_no_taken``): the unique constraint decides, never a prior check.
    """
    firsts: dict[str, tuple[IssueNotice, Actor]] = {}
    for cmd, actor in items:
        firsts.setdefault(cmd.notice_no, (cmd, actor))
    if not firsts:
        return {}
    register_writer(session)  # it ends with changes for the devices: registered before its first write
    rows = bulk.insert_returning(
        session,
        cast(Table, Notice.__table__),
        [_notice_values(cmd, now, cipher) for cmd, _ in firsts.values()],
        returning=("notice_no", "id"),
        conflict_column="notice_no",
    )
    inserted: dict[str, int] = {notice_no: notice_id for notice_no, notice_id in rows}
    done = [(cmd, actor, inserted[cmd.notice_no]) for cmd, actor in firsts.values() if cmd.notice_no in inserted]
    if not done:
        return inserted
    items_by_code = {cmd.violation_code for cmd, _, _ in done if cmd.revenue_item is None}
    revenue_items = (
        {
            code: item
            for code, item in session.execute(
                select(ViolationCode.code, ViolationCode.revenue_item).where(ViolationCode.code.in_(items_by_code))
            )
        }
        if items_by_code
        else {}
    )
    ledger.open_receivables(
        session,
        [
            ledger.NewReceivable(
                jurisdiction=cmd.jurisdiction,
                revenue_item=cmd.revenue_item or revenue_items[cmd.violation_code],
                notice_id=notice_id,
                principal=ledger.Post(
                    ledger.PRINCIPAL, "charge", cmd.amount, seoul_date(cmd.observed_at), f"event:{cmd.event_id}"
                ),
                actor=actor,
            )
            for cmd, actor, notice_id in done
        ],
    )
    history = []
    for cmd, actor, notice_id in done:
        detail = {"flags": list(cmd.flags)} if cmd.flags else None
        history.append((notice_id, "issued", cmd.issued_at, actor.user_id, actor.device_id, detail))
        history.append((notice_id, "synced", now, actor.user_id, actor.device_id, None))
    bulk.copy_rows(
        session, "notice_history", ("notice_id", "what", "at", "actor_user_id", "actor_device_id", "detail"), history
    )
    record_changes(
        session,
        [
            (
                device_scope(cmd.device_id),
                "notice_status",
                cmd.notice_no,
                "upsert",
                {"notice_no": cmd.notice_no, "status": _initial_status(cmd), "version": 1},
            )
            for cmd, _, _ in done
        ],
    )
    return inserted


def _initial_status(cmd: IssueNotice) -> str:
    return UNDER_REVIEW if cmd.flags else ISSUED


def _notice_values(cmd: IssueNotice, now: datetime, cipher: PiiCipher) -> dict[str, Any]:
    offender_enc = rrn_hash = name_masked = None
    if cmd.offender:
        offender_enc = cipher.encrypt_json(cmd.offender, context=cmd.notice_no.encode())
        if cmd.offender.get("rrn"):
            rrn_hash = cipher.lookup_hash(cmd.offender["rrn"])
        if cmd.offender.get("name"):
            name_masked = mask_name(cmd.offender["name"])
    return dict(
        notice_no=cmd.notice_no,
        jurisdiction=cmd.jurisdiction,
        kind=cmd.kind,
        violation_code=cmd.violation_code,
        schedule_key=cmd.schedule_key,
        amount=cmd.amount,
        reduced_amount=cmd.reduced_amount,
        opinion_deadline=cmd.opinion_deadline,
        expected=cmd.expected,
        vehicle_plate=cmd.vehicle_plate,
        vehicle_type=cmd.vehicle_type,
        offender_enc=offender_enc,
        offender_name_masked=name_masked,
        rrn_hash=rrn_hash,
        place_address=cmd.place_address,
        lat=cmd.lat,
        lon=cmd.lon,
        zone=cmd.zone,
        observed_at=cmd.observed_at,
        observed_again_at=cmd.observed_again_at,
        photos=list(cmd.photos),
        officer_id=cmd.officer_id,
        device_id=cmd.device_id,
        memo=cmd.memo,
        qr=cmd.qr,
        status=_initial_status(cmd),
        version=1,
        flags=list(cmd.flags),
        issued_event_id=cmd.event_id,
        issued_at=cmd.issued_at,
        synced_at=now,
    )


def find_notice(session: Session, notice_no: str, *, for_update: bool = False) -> Notice | None:
    stmt = select(Notice).where(Notice.notice_no == notice_no)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalar(stmt)


def void_notice(
    session: Session,
    notice: Notice,
    reason_code: str,
    memo: str | None,
    actor: Actor,
    at: datetime,
    now: datetime,
    source: str,
) -> Notice:
    """Void a notice (the officer's mistake, with a reason): it is withdrawn and its receivable reversed."""
    if notice.status not in VOIDABLE:
        raise InvalidTransition(f"a notice that is {notice.status} cannot be voided", field="notice_no")
    notice.status = VOIDED
    notice.void_reason = reason_code
    notice.version += 1
    notice.updated_at = now
    receivable = session.scalar(select(ledger.Receivable).where(ledger.Receivable.notice_id == notice.id))
    if receivable is not None:
        ledger.cancel_receivable(session, receivable, seoul_date(at), source, actor, f"void:{reason_code}")
    _history(session, notice, "voided", at, actor, {"reason_code": reason_code, "memo": memo})
    session.flush()
    _status_changed(session, notice)
    return notice


# --- back-office reads -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoticeFilter:
    notice_no: str | None = None
    plate: str | None = None
    status: str | None = None
    observed_from: datetime | None = None
    observed_to: datetime | None = None


def list_notices(session: Session, scope: Scope, flt: NoticeFilter, limit: int, after: int | None) -> list[Notice]:
    """Notices in the caller's scope, newest id first, keyset-paginated by ``after`` (an id)."""
    stmt = select(Notice)
    stmt = scope.apply(stmt, Notice.jurisdiction)
    if flt.notice_no:
        stmt = stmt.where(Notice.notice_no == flt.notice_no)
    if flt.plate:
        stmt = stmt.where(Notice.vehicle_plate == flt.plate)
    if flt.status:
        stmt = stmt.where(Notice.status == flt.status)
    if flt.observed_from:
        stmt = stmt.where(Notice.observed_at >= flt.observed_from)
    if flt.observed_to:
        stmt = stmt.where(Notice.observed_at < flt.observed_to)
    if after is not None:
        stmt = stmt.where(Notice.id < after)
    return list(session.scalars(stmt.order_by(Notice.id.desc()).limit(limit)))


def get_notice(session: Session, scope: Scope, notice_no: str) -> Notice:
    """One notice in the caller's scope; outside it, or unknown, is ``NotFound`` alike."""
    notice = find_notice(session, notice_no)
    if notice is None or not scope.allows(notice.jurisdiction):
        raise NotFound("no such notice", field="notice_no")
    return notice


def history(session: Session, notice_id: int) -> list[NoticeHistory]:
    return list(
        session.scalars(
            select(NoticeHistory)
            .where(NoticeHistory.notice_id == notice_id)
            .order_by(NoticeHistory.at, NoticeHistory.id)
        )
    )


def receivable_of(session: Session, notice_id: int) -> ledger.Receivable | None:
    return session.scalar(select(ledger.Receivable).where(ledger.Receivable.notice_id == notice_id))


def mark_paid(session: Session, notice: Notice, paid_at: datetime, actor: Actor, now: datetime) -> None:
    """Fully paid: the case ends (status ``paid``, a new version devices see on their next pull)."""
    before = notice.status
    notice.status = PAID
    notice.paid_at = paid_at
    notice.version += 1
    notice.updated_at = now
    _history(session, notice, "paid", paid_at, actor, {"before": before})
    session.flush()
    _status_changed(session, notice)


def unmark_paid(session: Session, notice: Notice, at: datetime, actor: Actor, now: datetime) -> None:
    """The payment that ended the notice did not stand (cancelled at the gateway after approval): payable again, in
    the status it had before ``mark_paid`` (kept on that history line), ``paid_at`` cleared, a new version devices
    see on their next pull."""
    if notice.status != PAID:
        return
    paid = session.scalar(
        select(NoticeHistory)
        .where(NoticeHistory.notice_id == notice.id, NoticeHistory.what == "paid")
        .order_by(NoticeHistory.id.desc())
        .limit(1)
    )
    before = (paid.detail or {}).get("before") if paid is not None else None
    notice.status = before if before in PAYABLE else ISSUED
    notice.paid_at = None
    notice.version += 1
    notice.updated_at = now
    _history(session, notice, "payment_cancelled", at, actor, {"status": notice.status})
    session.flush()
    _status_changed(session, notice)


def note_payment(session: Session, notice: Notice, amount: int, paid_at: datetime, actor: Actor) -> None:
    """A partial payment: recorded on the timeline; the status does not change."""
    _history(session, notice, "payment", paid_at, actor, {"amount": amount})


def record_reprint(session: Session, notice: Notice, count: int, at: datetime, actor: Actor) -> None:
    """A reprint changes nothing of the notice; it is on the timeline (who, which device, when, how many)."""
    _history(session, notice, "reprinted", at, actor, {"count": count})
    session.flush()


# --- review decisions (DESIGN.md §3 step 1): confirm, correct, cancel (직권취소) ---------------------------------


def confirm_notice(session: Session, notice: Notice, reason: str, actor: Actor, now: datetime) -> Notice:
    """A clerk confirms a flagged notice as issued: it leaves the review queue (a new version devices see)."""
    if notice.status != UNDER_REVIEW:
        raise InvalidTransition(f"a notice that is {notice.status} is not waiting in review", field="notice_no")
    notice.status = ISSUED
    notice.version += 1
    notice.updated_at = now
    _history(session, notice, "review_confirmed", now, actor, {"reason": reason, "flags": list(notice.flags)})
    session.flush()
    _status_changed(session, notice)
    return notice


def _has_payments(session: Session, receivable: ledger.Receivable | None) -> bool:
    if receivable is None:
        return False
    found = session.scalar(
        select(ledger.LedgerEntry.id)
        .where(ledger.LedgerEntry.receivable_id == receivable.id, ledger.LedgerEntry.kind == "payment")
        .limit(1)
    )
    return found is not None


def cancel_notice(session: Session, notice: Notice, reason: str, actor: Actor, now: datetime) -> Notice:
    """직권취소: a clerk cancels a notice with a reason; its receivable is reversed to zero.

    Raises ``InvalidTransition`` unless the notice is issued or under review, and when anything was paid on it
    (that needs a refund decision, not a cancellation).
    """
    if notice.status not in VOIDABLE:
        raise InvalidTransition(f"a notice that is {notice.status} cannot be cancelled", field="notice_no")
    receivable = receivable_of(session, notice.id)
    if _has_payments(session, receivable):
        raise InvalidTransition("something was paid on this notice: refund it instead", field="notice_no")
    notice.status = CANCELLED
    notice.version += 1
    notice.updated_at = now
    if receivable is not None:
        ledger.cancel_receivable(
            session, receivable, seoul_date(now), f"review:{notice.notice_no}", actor, f"직권취소: {reason}"[:200]
        )
    _history(session, notice, "cancelled", now, actor, {"reason": reason})
    session.flush()
    _status_changed(session, notice)
    return notice


@dataclass(frozen=True)
class CorrectNotice:
    """What a clerk corrects on a notice (``None``: unchanged), and why."""

    reason: str
    amount: int | None = None
    plate: str | None = None
    violation_code: str | None = None
    place_address: str | None = None
    # a device's own correction (notice.corrected) also carries these, and keeps the notice's review status
    vehicle_type: str | None = None
    zone: str | None = None
    memo: str | None = None
    qr: str | None = None
    source: str | None = None
    by_device: bool = False


def correct_notice(session: Session, notice: Notice, cmd: CorrectNotice, actor: Actor, now: datetime) -> Notice:
    """A clerk corrects a notice; it is (again) ``issued``. A changed amount posts a ``correction`` ledger entry
    for the difference and recomputes the reduced amount from the schedule in force at ``observed_at``.

    Raises ``InvalidTransition`` (not issued nor under review; an amount change on a notice with payments) and
    ``InvalidInput`` (nothing changes; a code of another kind or revenue item; a plate on a person notice).
    """
    if notice.status not in VOIDABLE:
        raise InvalidTransition(f"a notice that is {notice.status} cannot be corrected", field="notice_no")
    receivable = receivable_of(session, notice.id)
    changes: dict[str, list[Any]] = {}
    if cmd.violation_code is not None and cmd.violation_code != notice.violation_code:
        new_code = session.get(ViolationCode, cmd.violation_code)
        old_code = session.get(ViolationCode, notice.violation_code)
        if new_code is None or old_code is None or new_code.kind != notice.kind:
            raise InvalidInput("no such violation code for this kind of notice", field="fields.violation_code")
        if new_code.revenue_item != old_code.revenue_item:
            raise InvalidInput(
                "that code belongs to another revenue item: cancel and issue anew", field="fields.violation_code"
            )
        changes["violation_code"] = [notice.violation_code, cmd.violation_code]
    if cmd.plate is not None and cmd.plate != notice.vehicle_plate:
        if notice.kind != "parking":
            raise InvalidInput("only a parking notice has a plate", field="fields.vehicle.plate")
        changes["vehicle.plate"] = [notice.vehicle_plate, cmd.plate]
    if cmd.place_address is not None and cmd.place_address != notice.place_address:
        changes["place.address"] = [notice.place_address, cmd.place_address]
    if cmd.vehicle_type is not None and cmd.vehicle_type != notice.vehicle_type:
        if notice.kind != "parking":
            raise InvalidInput("only a parking notice has a vehicle", field="fields.vehicle.type")
        changes["vehicle.type"] = [notice.vehicle_type, cmd.vehicle_type]
    if cmd.zone is not None and cmd.zone != notice.zone:
        changes["place.zone"] = [notice.zone, cmd.zone]
    if cmd.memo is not None and cmd.memo != notice.memo:
        changes["memo"] = [notice.memo, cmd.memo]
    if cmd.qr is not None and cmd.qr != notice.qr:
        changes["qr"] = [notice.qr, cmd.qr]
    new_amount = notice.amount if cmd.amount is None else cmd.amount
    rate_changes = ("violation_code", "vehicle.type", "place.zone")
    if new_amount != notice.amount or any(k in changes for k in rate_changes):
        code = cmd.violation_code or notice.violation_code
        vehicle_type = cmd.vehicle_type or notice.vehicle_type
        zone = cmd.zone if cmd.zone is not None else notice.zone
        rule = select_schedule(schedule_rules(session, code), code, vehicle_type, zone, seoul_date(notice.observed_at))
        if rule is None:
            raise InvalidInput("no fine schedule in force for that code on the day", field="fields.violation_code")
        new_reduced = reduced_amount(new_amount, rule.reduction_rate, rule.rounding_unit)
        if new_amount != notice.amount:
            if _has_payments(session, receivable):
                raise InvalidTransition("something was paid on this notice: its amount cannot change", field="amount")
            changes["amount"] = [notice.amount, new_amount]
        if new_reduced != notice.reduced_amount:
            changes["reduced_amount"] = [notice.reduced_amount, new_reduced]
    if not changes:
        raise InvalidInput("nothing to correct: every field is as it was", field="fields")
    if "violation_code" in changes:
        notice.violation_code = changes["violation_code"][1]
    if "vehicle.plate" in changes:
        notice.vehicle_plate = changes["vehicle.plate"][1]
    if "place.address" in changes:
        notice.place_address = changes["place.address"][1]
    if "vehicle.type" in changes:
        notice.vehicle_type = changes["vehicle.type"][1]
    if "place.zone" in changes:
        notice.zone = changes["place.zone"][1]
    if "memo" in changes:
        notice.memo = changes["memo"][1]
    if "qr" in changes:
        notice.qr = changes["qr"][1]
    if "amount" in changes and receivable is not None:
        old, new = changes["amount"]
        ledger.post(
            session,
            receivable,
            ledger.Post(
                ledger.PRINCIPAL,
                "correction",
                new - old,
                seoul_date(now),
                cmd.source or f"review:{notice.notice_no}",
                cmd.reason[:200],
            ),
            actor,
        )
    if "amount" in changes:
        notice.amount = changes["amount"][1]
    if "reduced_amount" in changes:
        notice.reduced_amount = changes["reduced_amount"][1]
    if not cmd.by_device:
        notice.status = ISSUED  # a clerk's correction settles the review; a device's leaves it to the clerk
    notice.version += 1
    notice.updated_at = now
    _history(session, notice, "corrected", now, actor, {"reason": cmd.reason, "changes": changes})
    session.flush()
    _status_changed(session, notice)
    return notice


def note_possible_duplicate(session: Session, notice: Notice, others: list[Notice], actor: Actor, at: datetime) -> None:
    """Record on both timelines which notice the new one may duplicate (nothing is merged or rejected)."""
    for other in others:
        _history(session, notice, "possible_duplicate", at, actor, {"of": other.notice_no})
        _history(session, other, "possible_duplicate", at, actor, {"by": notice.notice_no})
    session.flush()


def note(session: Session, notice: Notice, what: str, at: datetime, actor: Actor, detail: dict[str, Any]) -> None:
    """A timeline entry that changes nothing of the notice (e.g. a clerk force-processed the event behind it)."""
    _history(session, notice, what, at, actor, detail)
    session.flush()


def photos_complete(session: Session, notice: Notice, at: datetime, actor: Actor) -> bool:
    """The last missing evidence photo of ``notice`` arrived: remove its ``photos_missing`` flag and put
    ``photos_complete`` on its timeline. Status and version stay (a clerk's review decides; see ``models.evidence``).
    Returns whether the flag was there."""
    if "photos_missing" not in notice.flags:
        return False
    notice.flags = [flag for flag in notice.flags if flag != "photos_missing"]
    _history(session, notice, "photos_complete", at, actor)
    session.flush()
    return True


def was_corrected(session: Session, notice_id: int) -> bool:
    """Whether a notice was ever corrected (its earlier printed amounts were then authentic)."""
    found = session.scalar(
        select(NoticeHistory.id).where(NoticeHistory.notice_id == notice_id, NoticeHistory.what == "corrected").limit(1)
    )
    return found is not None


def flag_for_review(session: Session, notice: Notice, flags: Sequence[str], actor: Actor, now: datetime) -> None:
    """Add flags to a notice; an ``issued`` one goes back to the review queue (its version does not change: the
    event that raised the flags already changed it)."""
    merged = list(dict.fromkeys([*notice.flags, *flags]))
    if merged == list(notice.flags) and notice.status != ISSUED:
        return
    notice.flags = merged
    if notice.status == ISSUED:
        notice.status = UNDER_REVIEW
    notice.updated_at = now
    _history(session, notice, "flagged", now, actor, {"flags": flags})
    session.flush()
    _status_changed(session, notice)


def tell_device(session: Session, notice: Notice, status: str) -> None:
    """Tell the issuing device a status of the fine's later life (PROTOCOL.md §3 ``notice_status``: ``noticed``,
    ``imposed``, ``objected``, ``in_court``, ``overdue``, ``closed``), which lives on the fine case and the
    receivable, not on the notice row: its version stays, so what the device last knew still names it."""
    record_change(
        session,
        device_scope(notice.device_id),
        "notice_status",
        notice.notice_no,
        {**notice_status_data(notice), "status": status},
    )
