"""체납 reads other layers use: a receivable's holds, its balance per charge head, the clerk's arrears view, a
district's hotlist. They decide nothing (``arrears_view`` with an actor catches the receivable up first, through
``clock``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import ledger
from models.arrears.clock import business_date, catch_up_receivable, holds_for, scoped_receivable, terms_of
from models.arrears.tables import ArrearsPosting, CollectionHold, HoldInstallment, HotlistEntry, ReceivableTerms
from models.base import Actor, Scope
from models.jurisdictions import Jurisdiction


def holds_of(session: Session, scope: Scope, receivable_id: int) -> list[tuple[CollectionHold, list[HoldInstallment]]]:
    scoped_receivable(session, scope, receivable_id)
    out = []
    for hold in holds_for(session, receivable_id):
        installments = list(
            session.scalars(
                select(HoldInstallment).where(HoldInstallment.hold_id == hold.id).order_by(HoldInstallment.seq)
            )
        )
        out.append((hold, installments))
    return out


@dataclass
class ArrearsView:
    """A receivable's arrears: its clock, the balance per charge head, its entries, surcharge decisions and holds."""

    receivable: ledger.Receivable
    terms: ReceivableTerms | None
    heads: dict[str, int]
    balance: int
    entries: list[ledger.LedgerEntry]
    postings: list[ArrearsPosting]
    holds: list[tuple[CollectionHold, list[HoldInstallment]]] = field(default_factory=list)
    business_date: date | None = None
    head_kinds: dict[int, str] = field(default_factory=dict)  # charge head id → kind, to label the entries


def heads_of(session: Session, receivable_id: int) -> dict[str, int]:
    """Balance per charge head (every head the receivable has, zero included)."""
    rows = session.execute(
        select(ledger.ChargeHead.kind, func.coalesce(func.sum(ledger.LedgerEntry.amount), 0))
        .outerjoin(ledger.LedgerEntry, ledger.LedgerEntry.charge_head_id == ledger.ChargeHead.id)
        .where(ledger.ChargeHead.receivable_id == receivable_id)
        .group_by(ledger.ChargeHead.kind)
    )
    return {kind: int(total) for kind, total in rows}


def arrears_view(session: Session, scope: Scope, receivable_id: int, actor: Actor | None = None) -> ArrearsView:
    """What a clerk sees of a receivable; with ``actor``, it is caught up to the business date first."""
    receivable = scoped_receivable(session, scope, receivable_id)
    today = business_date(session)
    if actor is not None:
        catch_up_receivable(session, receivable_id, today, actor)
    postings = list(
        session.scalars(
            select(ArrearsPosting)
            .where(ArrearsPosting.receivable_id == receivable_id)
            .order_by(ArrearsPosting.head, ArrearsPosting.month_no)
        )
    )
    return ArrearsView(
        receivable=receivable,
        terms=terms_of(session, receivable_id),
        heads=heads_of(session, receivable_id),
        balance=ledger.balance(session, receivable_id),
        entries=ledger.entries(session, receivable_id),
        postings=postings,
        holds=holds_of(session, scope, receivable_id),
        business_date=today,
        head_kinds={
            head_id: kind
            for head_id, kind in session.execute(
                select(ledger.ChargeHead.id, ledger.ChargeHead.kind).where(
                    ledger.ChargeHead.receivable_id == receivable_id
                )
            )
        },
    )


def jurisdiction_exists(session: Session, code: str) -> bool:
    return session.get(Jurisdiction, code) is not None


def listed(session: Session, jurisdiction: str) -> list[HotlistEntry]:
    """A district's hotlist, by plate."""
    return list(
        session.scalars(
            select(HotlistEntry).where(HotlistEntry.jurisdiction == jurisdiction).order_by(HotlistEntry.plate)
        )
    )


# --- the arrears as the back office reads them -----------------------------------------------------------------------


@dataclass(frozen=True)
class HoldDetails:
    hold: CollectionHold
    installments: list[HoldInstallment]


@dataclass(frozen=True)
class HeadBalance:
    head: str
    balance: int


@dataclass(frozen=True)
class ArrearsEntry:
    entry: ledger.LedgerEntry
    head: str  # the charge head's kind
    rule_key: str | None  # a surcharge's rule row


@dataclass(frozen=True)
class ArrearsDetails:
    """``ArrearsView`` with its heads in order, each entry labelled with its head, and each hold's installments."""

    view: ArrearsView
    heads: list[HeadBalance]
    entries: list[ArrearsEntry]
    holds: list[HoldDetails]


def arrears_details(session: Session, scope: Scope, receivable_id: int) -> ArrearsDetails:
    view = arrears_view(session, scope, receivable_id)
    return ArrearsDetails(
        view,
        [HeadBalance(kind, total) for kind, total in sorted(view.heads.items())],
        [
            ArrearsEntry(e, view.head_kinds.get(e.charge_head_id, ""), e.source if e.kind == "surcharge" else None)
            for e in view.entries
        ],
        [HoldDetails(hold, installments) for hold, installments in view.holds],
    )


def hold_details(session: Session, scope: Scope, receivable_id: int) -> list[HoldDetails]:
    """The receivable's holds with their installments."""
    return [HoldDetails(hold, installments) for hold, installments in holds_of(session, scope, receivable_id)]


def hold_of(session: Session, scope: Scope, hold: CollectionHold) -> HoldDetails:
    """One hold with its installments."""
    return next(found for found in hold_details(session, scope, hold.receivable_id) if found.hold.id == hold.id)
