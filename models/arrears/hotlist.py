"""번호판 영치 hotlist (질서위반행위규제법 §55, 시행령 §14): vehicles whose unpaid vehicle fines meet the thresholds,
pushed to the PDAs of the district through the change feed (entity ``hotlist``, key = plate; PROTOCOL.md §3:
data ``plate``, ``reason``, ``amount_due``, no personal data).

Which fines count: parking receivables (``receivables.notice_id`` → a ``parking`` notice with a plate) of the
jurisdiction, overdue, open, under no hold on the day (분납, 징수유예 and 이의제기 stop enforcement), each caught up to
the day first. ``plate_seizure_eligible`` decides on them (more than 60 days overdue, at least 300,000 won with
surcharges, from the rules). The plate stands for the debtor's vehicle: the owner check (the vehicle must be the
debtor's own) waits for the registry lookup [U]. ``amount_due`` is what the plate owes in all (every overdue,
unpaid fine of that plate), which is what must be paid to get the plates back.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, select, union
from sqlalchemy.orm import Session

from models import ledger
from models.arrears.clock import catch_up, holds_for
from models.arrears.queries import heads_of
from models.arrears.tables import OVERDUE, HotlistEntry, ReceivableTerms
from models.base import Actor
from models.feed import jurisdiction_scope, record_change
from models.notices import Notice
from models.rules import RuleBook, load_rulebook, plate_seizure_eligible

ENTITY = "hotlist"
VEHICLE_NOTICE_KIND = "parking"


@dataclass
class HotlistReport:
    jurisdiction: str
    business_date: date
    listed: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def _data(entry: HotlistEntry) -> dict[str, Any]:
    return {
        "plate": entry.plate,
        "reason": f"과태료 체납 {entry.receivables}건 (번호판 영치 대상)",
        "amount_due": entry.amount_due,
    }


def jurisdictions_to_refresh(session: Session) -> list[str]:
    """Jurisdictions with overdue receivables or a non-empty hotlist."""
    overdue = (
        select(ledger.Receivable.jurisdiction)
        .join(ReceivableTerms, ReceivableTerms.receivable_id == ledger.Receivable.id)
        .where(ReceivableTerms.state == OVERDUE)
    )
    listed = select(HotlistEntry.jurisdiction)
    return sorted(set(session.scalars(union(overdue, listed))))


def _overdue_parking(jurisdiction: str, business_date: date) -> tuple[ColumnElement[bool], ...]:
    """Open, overdue parking receivables of ``jurisdiction`` with a plate (joined to their notices)."""
    return (
        ledger.Receivable.jurisdiction == jurisdiction,
        ledger.Receivable.status == ledger.OPEN,
        ReceivableTerms.state == OVERDUE,
        ReceivableTerms.due_date < business_date,
        Notice.kind == VEHICLE_NOTICE_KIND,
        Notice.vehicle_plate.is_not(None),
    )


def plates_to_refresh(session: Session, jurisdiction: str, business_date: date) -> list[str]:
    """Every plate a refresh of ``jurisdiction`` may list or remove, sorted: the plates of its overdue parking
    receivables and the plates it lists now (so a chunked refresh can take them a slice at a time)."""
    overdue = (
        select(Notice.vehicle_plate.label("plate"))
        .join(ledger.Receivable, ledger.Receivable.notice_id == Notice.id)
        .join(ReceivableTerms, ReceivableTerms.receivable_id == ledger.Receivable.id)
        .where(*_overdue_parking(jurisdiction, business_date))
    )
    listed = select(HotlistEntry.plate.label("plate")).where(HotlistEntry.jurisdiction == jurisdiction)
    plates = union(overdue, listed).subquery()
    return [plate for plate in session.scalars(select(plates.c.plate).order_by(plates.c.plate)) if plate]


def refresh_hotlist(
    session: Session, jurisdiction: str, business_date: date, actor: Actor, *, plates: Iterable[str] | None = None
) -> HotlistReport:
    """Rebuild the jurisdiction's hotlist for ``business_date`` (only ``plates``, if given): a plate newly eligible
    or owing another amount is an ``upsert`` on the feed, a plate no longer eligible (paid, under a hold) a
    ``delete``. Unchanged plates record nothing, so running it twice records nothing the second time."""
    book: RuleBook | None = None  # loaded on first need: a paid plate that was never overdue needs no rule

    def rulebook() -> RuleBook:
        nonlocal book
        if book is None:
            book = load_rulebook(session)
        return book

    only = set(plates) if plates is not None else None
    stmt = (
        select(ReceivableTerms, Notice.vehicle_plate)
        .join(ledger.Receivable, ledger.Receivable.id == ReceivableTerms.receivable_id)
        .join(Notice, Notice.id == ledger.Receivable.notice_id)
        .where(*_overdue_parking(jurisdiction, business_date))
        .order_by(ReceivableTerms.receivable_id)
        .with_for_update(of=ReceivableTerms)
    )
    if only is not None:
        stmt = stmt.where(Notice.vehicle_plate.in_(sorted(only)))
    owed: dict[str, list[tuple[date, int]]] = defaultdict(list)
    for terms, plate in session.execute(stmt).all():
        if terms.caught_up_to is None or terms.caught_up_to < business_date:
            catch_up(session, terms, business_date, actor, rules=rulebook())
        if terms.state != OVERDUE or any(h.in_force_on(business_date) for h in holds_for(session, terms.receivable_id)):
            continue
        balance = sum(heads_of(session, terms.receivable_id).values())
        if balance > 0 and plate is not None:
            owed[plate].append((terms.due_date, balance))

    wanted: dict[str, HotlistEntry] = {}
    for plate, items in owed.items():
        verdict = plate_seizure_eligible(items, business_date, rulebook())
        if verdict.allowed:
            wanted[plate] = HotlistEntry(
                jurisdiction=jurisdiction,
                plate=plate,
                amount_due=sum(amount for _due, amount in items),
                receivables=len(items),
                oldest_due_date=min(due for due, _amount in items),
                rule_key=verdict.rule_key,
                rule_id=verdict.rule_id,
                listed_on=business_date,
                refreshed_on=business_date,
            )

    report = HotlistReport(jurisdiction, business_date)
    scope = jurisdiction_scope(jurisdiction)
    current_stmt = select(HotlistEntry).where(HotlistEntry.jurisdiction == jurisdiction)
    if only is not None:
        current_stmt = current_stmt.where(HotlistEntry.plate.in_(sorted(only)))
    current = {entry.plate: entry for entry in session.scalars(current_stmt.with_for_update())}
    for plate, entry in sorted(current.items()):
        if plate not in wanted:
            session.delete(entry)
            record_change(session, scope, ENTITY, plate, None, op="delete")
            report.removed.append(plate)
    for plate, new in sorted(wanted.items()):
        old = current.get(plate)
        if old is None:
            session.add(new)
            record_change(session, scope, ENTITY, plate, _data(new))
            report.listed.append(plate)
            continue
        changed = (old.amount_due, old.receivables) != (new.amount_due, new.receivables)
        old.amount_due, old.receivables, old.oldest_due_date = new.amount_due, new.receivables, new.oldest_due_date
        old.rule_key, old.rule_id, old.refreshed_on = new.rule_key, new.rule_id, business_date
        if changed:
            record_change(session, scope, ENTITY, plate, _data(old))
            report.updated.append(plate)
    session.flush()
    return report


def plate_of(session: Session, receivable: ledger.Receivable) -> str | None:
    """The plate of a parking receivable's notice, if any."""
    if receivable.notice_id is None:
        return None
    notice = session.get(Notice, receivable.notice_id)
    if notice is None or notice.kind != VEHICLE_NOTICE_KIND:
        return None
    return notice.vehicle_plate
