"""The ledger (DESIGN.md §4): receivables split into charge heads, with a balance that is the sum of immutable
ledger entries. Nothing here is updated or deleted (the database refuses it); a mistake is reversed.

This module is the one writer of ``ledger_entries``: one entry at a time through ``post`` (and ``allocate_payment``,
``cancel_receivable``), many at once through ``post_many`` (a sync batch's principals, the month step's 중가산금).

Money is integer won. Entry amounts are signed: charges and surcharges positive; reductions, payments,
write-offs and reversals of charges negative.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import BigInteger, Date, DateTime, ForeignKey, Integer, String, UniqueConstraint, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from models import bulk
from models.base import Actor, Base

# charge heads and their default allocation order (체납처분비 → principal → 가산금 → 중가산금), policy "v1"
PRINCIPAL, SURCHARGE, MONTHLY_SURCHARGE, ENFORCEMENT_COST = (
    "principal",
    "surcharge",
    "monthly_surcharge",
    "enforcement_cost",
)
ALLOCATION_ORDER_V1 = {ENFORCEMENT_COST: 1, PRINCIPAL: 2, SURCHARGE: 3, MONTHLY_SURCHARGE: 4}

ENTRY_KINDS = (
    "charge",
    "reduction",
    "surcharge",
    "payment",
    "reversal",
    "refund",
    "write_off",
    "write_off_reversal",
    "correction",
)

OPEN, SETTLED, CANCELLED = "open", "settled", "cancelled"


class Receivable(Base):
    """부과건: one payer, one jurisdiction, one revenue item."""

    __tablename__ = "receivables"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    jurisdiction: Mapped[str] = mapped_column(ForeignKey("jurisdictions.code"), index=True)
    revenue_item: Mapped[str] = mapped_column(ForeignKey("revenue_items.code"))
    notice_id: Mapped[int | None] = mapped_column(ForeignKey("notices.id"), unique=True)
    payer_ref: Mapped[str | None] = mapped_column(String(64))
    allocation_policy: Mapped[str] = mapped_column(String(10), default="v1")
    status: Mapped[str] = mapped_column(String(12), default=OPEN)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ChargeHead(Base):
    __tablename__ = "charge_heads"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    receivable_id: Mapped[int] = mapped_column(ForeignKey("receivables.id"))
    kind: Mapped[str] = mapped_column(String(20))
    allocation_order: Mapped[int] = mapped_column(Integer)

    __table_args__ = (UniqueConstraint("receivable_id", "kind"),)


class LedgerEntry(Base):
    """One immutable movement on a charge head; who, when and from which device are part of it."""

    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    receivable_id: Mapped[int] = mapped_column(ForeignKey("receivables.id"), index=True)
    charge_head_id: Mapped[int] = mapped_column(ForeignKey("charge_heads.id"))
    kind: Mapped[str] = mapped_column(String(20))
    amount: Mapped[int] = mapped_column(BigInteger)
    business_date: Mapped[date] = mapped_column(Date)
    posted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_device_id: Mapped[str | None] = mapped_column(ForeignKey("devices.id"))
    actor_address: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str | None] = mapped_column(String(80))
    memo: Mapped[str | None] = mapped_column(String(200))


@dataclass(frozen=True)
class Post:
    """One entry to post on a receivable's charge head."""

    head: str
    kind: str
    amount: int
    business_date: date
    source: str | None = None
    memo: str | None = None


def open_receivable(
    session: Session,
    *,
    jurisdiction: str,
    revenue_item: str,
    notice_id: int | None,
    actor: Actor,
    principal: Post | None = None,
) -> Receivable:
    """Open a receivable; with ``principal``, its principal charge head and first entry too (no read-back: the
    head is new)."""
    receivable = Receivable(
        jurisdiction=jurisdiction,
        revenue_item=revenue_item,
        notice_id=notice_id,
        allocation_policy="v1",
        status=OPEN,
    )
    session.add(receivable)
    session.flush()
    if principal is not None:
        head = ChargeHead(receivable_id=receivable.id, kind=PRINCIPAL, allocation_order=ALLOCATION_ORDER_V1[PRINCIPAL])
        session.add(head)
        session.flush()
        session.add(_entry(receivable, head, principal, actor))
    return receivable


@dataclass(frozen=True)
class NewReceivable:
    """A receivable to open in bulk, with its principal charge (``open_receivables``)."""

    jurisdiction: str
    revenue_item: str
    notice_id: int
    principal: Post
    actor: Actor


def open_receivables(session: Session, items: list[NewReceivable]) -> list[int]:
    """``open_receivable`` with a principal for many at once (a sync batch): ids drawn first, rows copied in, one
    round trip per table. Returns the new receivable ids in the order of ``items``."""
    if not items:
        return []
    for item in items:
        _known_kind(item.principal.kind)
    receivable_ids = bulk.next_ids(session, "receivables", len(items))
    head_ids = bulk.next_ids(session, "charge_heads", len(items))
    bulk.copy_rows(
        session,
        "receivables",
        ("id", "jurisdiction", "revenue_item", "notice_id", "allocation_policy", "status"),
        ((rid, i.jurisdiction, i.revenue_item, i.notice_id, "v1", OPEN) for rid, i in zip(receivable_ids, items)),
    )
    order = ALLOCATION_ORDER_V1[PRINCIPAL]
    bulk.copy_rows(
        session,
        "charge_heads",
        ("id", "receivable_id", "kind", "allocation_order"),
        ((hid, rid, PRINCIPAL, order) for hid, rid in zip(head_ids, receivable_ids)),
    )
    post_many(
        session,
        [
            (
                rid,
                hid,
                i.principal.kind,
                i.principal.amount,
                i.principal.business_date,
                i.actor,
                i.principal.source,
                i.principal.memo,
            )
            for rid, hid, i in zip(receivable_ids, head_ids, items)
        ],
        draw_ids=False,
    )
    return receivable_ids


# One entry to post in bulk (``post_many``) on a charge head whose id the caller knows: (receivable id, charge head
# id, kind, amount, business date, actor, source, memo). A plain tuple, not a class: the month step builds a million.
NewEntry = tuple[int, int, str, int, date, Actor, str | None, str | None]


# ledger_entries columns as post_many copies them (posted_at: the database's now(); id: drawn or the default)
_ENTRY_COLUMNS = (
    "id",
    "receivable_id",
    "charge_head_id",
    "kind",
    "amount",
    "business_date",
    "actor_user_id",
    "actor_device_id",
    "actor_address",
    "source",
    "memo",
)


def post_many(session: Session, entries: Sequence[NewEntry], *, draw_ids: bool = True) -> list[int]:
    """Append many entries at once on existing charge heads, the rows copied in (one round trip). With ``draw_ids``
    their ids are drawn from the sequence first and returned in the order of ``entries`` (for rows that refer to
    them); without, the table's default numbers them and nothing is returned (one round trip fewer). Raises
    ``ValueError`` for an unknown entry kind, before anything is written."""
    for kind in {entry[2] for entry in entries}:
        _known_kind(kind)
    if not draw_ids:
        bulk.copy_rows(
            session,
            "ledger_entries",
            _ENTRY_COLUMNS[1:],
            (
                (rid, hid, kind, amount, on, actor.user_id, actor.device_id, actor.address, source, memo)
                for rid, hid, kind, amount, on, actor, source, memo in entries
            ),
        )
        return []
    ids = bulk.next_ids(session, "ledger_entries", len(entries))
    bulk.copy_rows(
        session,
        "ledger_entries",
        _ENTRY_COLUMNS,
        (
            (eid, rid, hid, kind, amount, on, actor.user_id, actor.device_id, actor.address, source, memo)
            for eid, (rid, hid, kind, amount, on, actor, source, memo) in zip(ids, entries)
        ),
    )
    return ids


def _known_kind(kind: str) -> None:
    if kind not in ENTRY_KINDS:
        raise ValueError(f"unknown entry kind {kind}")


def _entry(receivable: Receivable, head: ChargeHead, entry: Post, actor: Actor) -> LedgerEntry:
    _known_kind(entry.kind)
    return LedgerEntry(
        receivable_id=receivable.id,
        charge_head_id=head.id,
        kind=entry.kind,
        amount=entry.amount,
        business_date=entry.business_date,
        actor_user_id=actor.user_id,
        actor_device_id=actor.device_id,
        actor_address=actor.address,
        source=entry.source,
        memo=entry.memo,
    )


def _head(session: Session, receivable: Receivable, kind: str) -> ChargeHead:
    head = session.scalar(select(ChargeHead).where(ChargeHead.receivable_id == receivable.id, ChargeHead.kind == kind))
    if head is None:
        head = ChargeHead(receivable_id=receivable.id, kind=kind, allocation_order=ALLOCATION_ORDER_V1[kind])
        session.add(head)
        session.flush()
    return head


def post(session: Session, receivable: Receivable, entry: Post, actor: Actor) -> LedgerEntry:
    """Append one ledger entry (never updated afterwards)."""
    row = _entry(receivable, _head(session, receivable, entry.head), entry, actor)
    session.add(row)
    session.flush()
    return row


def balance(session: Session, receivable_id: int) -> int:
    """What is still owed: the sum of the receivable's entries."""
    total = session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(LedgerEntry.receivable_id == receivable_id)
    )
    return int(total or 0)


def entries(session: Session, receivable_id: int) -> list[LedgerEntry]:
    return list(
        session.scalars(select(LedgerEntry).where(LedgerEntry.receivable_id == receivable_id).order_by(LedgerEntry.id))
    )


def cancel_receivable(
    session: Session, receivable: Receivable, business_date: date, source: str, actor: Actor, memo: str
) -> None:
    """Reverse every charge head's balance to zero and mark the receivable cancelled."""
    by_head = session.execute(
        select(ChargeHead.kind, func.sum(LedgerEntry.amount))
        .join(LedgerEntry, LedgerEntry.charge_head_id == ChargeHead.id)
        .where(ChargeHead.receivable_id == receivable.id)
        .group_by(ChargeHead.kind)
    ).all()
    for kind, amount in by_head:
        if amount:
            post(session, receivable, Post(kind, "reversal", -int(amount), business_date, source, memo), actor)
    receivable.status = CANCELLED
    session.flush()


def allocate_payment(
    session: Session, receivable: Receivable, amount: int, business_date: date, source: str, actor: Actor
) -> list[LedgerEntry]:
    """Post a payment across the charge heads in the receivable's allocation order (policy v1: 체납처분비 →
    principal → 가산금 → 중가산금); anything beyond the balance stays on the principal as an overpayment."""
    owed = session.execute(
        select(ChargeHead.kind, ChargeHead.allocation_order, func.coalesce(func.sum(LedgerEntry.amount), 0))
        .outerjoin(LedgerEntry, LedgerEntry.charge_head_id == ChargeHead.id)
        .where(ChargeHead.receivable_id == receivable.id)
        .group_by(ChargeHead.kind, ChargeHead.allocation_order)
        .order_by(ChargeHead.allocation_order)
    ).all()
    posted = []
    remaining = amount
    for kind, _order, balance in owed:
        if remaining <= 0:
            break
        share = min(remaining, int(balance))
        if share > 0:
            posted.append(post(session, receivable, Post(kind, "payment", -share, business_date, source), actor))
            remaining -= share
    if remaining > 0:
        overpaid = Post(PRINCIPAL, "payment", -remaining, business_date, source, "과오납")
        posted.append(post(session, receivable, overpaid, actor))
    if balance_of_heads(session, receivable.id) <= 0:
        receivable.status = SETTLED
    session.flush()
    return posted


def balance_of_heads(session: Session, receivable_id: int) -> int:
    return balance(session, receivable_id)


def totals_by_head(session: Session, receivable_id: int) -> dict[tuple[str, str], int]:
    """The sum of a receivable's entries per (charge head, entry kind), e.g. ``("surcharge", "surcharge")``: what
    the citizen page breaks the balance into (their grand total is ``balance``)."""
    rows = session.execute(
        select(ChargeHead.kind, LedgerEntry.kind, func.sum(LedgerEntry.amount))
        .join(LedgerEntry, LedgerEntry.charge_head_id == ChargeHead.id)
        .where(LedgerEntry.receivable_id == receivable_id)
        .group_by(ChargeHead.kind, LedgerEntry.kind)
    ).all()
    return {(head, kind): int(total or 0) for head, kind, total in rows}


def entries_from(session: Session, receivable_id: int, source: str) -> list[LedgerEntry]:
    """The receivable's entries posted by ``source`` (e.g. one payment's ``payment:<gateway>:<txn_id>``), in order."""
    return list(
        session.scalars(
            select(LedgerEntry)
            .where(LedgerEntry.receivable_id == receivable_id, LedgerEntry.source == source)
            .order_by(LedgerEntry.id)
        )
    )
