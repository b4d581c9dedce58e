"""The daily reconciliation report (일일 수납 대사): per jurisdiction and revenue item, what the bank credited on a
day beside where that money is now, recomputed from the ledger entries, suspense rows, splits and exceptions:

    bank = ledger + gateway + suspense + held      (``difference`` is the left side minus the right: 0 when every
                                                    won is accounted for)

- ``bank``: the receipts of the day as the bank reports them (the daily file's amount when it has come); a
  cancellation counts negative; an aggregate credit counts under the jurisdiction and item of each gateway payment
  it covers, its unexplained remainder under no jurisdiction;
- ``ledger``: the payment entries posted from those receipts (``payment:treasury:<bank>:<receipt>``), a
  cancellation's the reversal of its original's;
- ``gateway``: the gateway payments an aggregate credit was split over (posted when their callbacks came);
- ``suspense``: money of those receipts in suspense (미확인 수납: open, refunded, or cancelled by the bank);
- ``held``: what only an exception accounts for (``TreasuryException.held``); ``open_exceptions`` counts the
  day's exceptions still open (a short or over payment is in the ledger, yet still a clerk's case).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, fields
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import ledger, payments
from models.base import Scope
from models.treasury.matching import GATEWAY, txn_of
from models.treasury.tables import CANCEL, OPEN, REVERSED, SETTLEMENT, AggregateSplit, BankReceipt, TreasuryException

Key = tuple[str | None, str | None]  # (jurisdiction, revenue item)


@dataclass
class ReportRow:
    jurisdiction: str | None
    revenue_item: str | None
    receipts: int = 0
    bank: int = 0
    ledger: int = 0
    gateway: int = 0
    suspense: int = 0
    held: int = 0
    open_exceptions: int = 0

    @property
    def difference(self) -> int:
        return self.bank - self.ledger - self.gateway - self.suspense - self.held

    def add(self, other: ReportRow) -> None:
        for f in ("receipts", "bank", "ledger", "gateway", "suspense", "held", "open_exceptions"):
            setattr(self, f, getattr(self, f) + getattr(other, f))

    def as_dict(self) -> dict[str, Any]:
        return {**{f.name: getattr(self, f.name) for f in fields(self)}, "difference": self.difference}


@dataclass(frozen=True)
class Reconciliation:
    business_date: date
    rows: list[ReportRow]
    total: ReportRow


def _source(receipt: BankReceipt | tuple[str, str]) -> str:
    bank, rid = (receipt.bank_code, receipt.receipt_id) if isinstance(receipt, BankReceipt) else receipt
    return f"payment:{GATEWAY}:{txn_of(bank, rid)}"


def daily_report(session: Session, on: date, scope: Scope) -> Reconciliation:
    """The reconciliation of ``on`` (a Seoul date) within ``scope`` (rows with no jurisdiction: city roles only)."""
    receipts = list(
        session.scalars(select(BankReceipt).where(BankReceipt.business_date == on).order_by(BankReceipt.id))
    )
    rows: dict[Key, ReportRow] = {}

    def row(key: Key) -> ReportRow:
        if key not in rows:
            rows[key] = ReportRow(*key)
        return rows[key]

    # the receipts a deposit's or a cancellation's money is measured by: its own, or its original's
    originals: dict[str, BankReceipt] = {}
    cancelled_ids = {(r.bank_code, r.original_receipt_id) for r in receipts if r.kind == CANCEL}
    if cancelled_ids:
        for original in session.scalars(
            select(BankReceipt).where(
                func.concat(BankReceipt.bank_code, ":", BankReceipt.receipt_id).in_(
                    sorted(f"{b}:{o}" for b, o in cancelled_ids)
                )
            )
        ):
            originals[f"{original.bank_code}:{original.receipt_id}"] = original
    sources = {_source(r) for r in receipts if r.channel != SETTLEMENT}
    sources |= {_source(o) for o in originals.values()}
    posted: dict[str, tuple[int, Key]] = {}
    if sources:
        for source, total, jur, item in session.execute(
            select(
                ledger.LedgerEntry.source,
                func.sum(ledger.LedgerEntry.amount),
                ledger.Receivable.jurisdiction,
                ledger.Receivable.revenue_item,
            )
            .join(ledger.Receivable, ledger.Receivable.id == ledger.LedgerEntry.receivable_id)
            .where(ledger.LedgerEntry.kind == "payment", ledger.LedgerEntry.source.in_(sorted(sources)))
            .group_by(ledger.LedgerEntry.source, ledger.Receivable.jurisdiction, ledger.Receivable.revenue_item)
        ):
            posted[str(source)] = (-int(total), (jur, item))
    payment_ids = {r.payment_id for r in receipts if r.payment_id} | {
        o.payment_id for o in originals.values() if o.payment_id
    }
    in_suspense: dict[int, int] = {}
    if payment_ids:
        for pid, amount in session.execute(
            select(payments.SuspensePayment.payment_id, payments.SuspensePayment.amount).where(
                payments.SuspensePayment.payment_id.in_(sorted(payment_ids)),
                payments.SuspensePayment.status != payments.SUSPENSE_MATCHED,
            )
        ):
            in_suspense[int(pid)] = int(amount)
    splits: dict[int, list[tuple[int, Key]]] = defaultdict(list)
    settlement_ids = [r.id for r in receipts if r.channel == SETTLEMENT]
    if settlement_ids:
        for receipt_id, amount, jur, item in session.execute(
            select(
                AggregateSplit.receipt_id,
                AggregateSplit.amount,
                ledger.Receivable.jurisdiction,
                ledger.Receivable.revenue_item,
            )
            .join(payments.Payment, payments.Payment.id == AggregateSplit.payment_id)
            .outerjoin(ledger.Receivable, ledger.Receivable.id == payments.Payment.receivable_id)
            .where(AggregateSplit.receipt_id.in_(settlement_ids))
        ):
            splits[int(receipt_id)].append((int(amount), (jur, item)))
    held: dict[int, int] = defaultdict(int)
    open_count: dict[int, int] = defaultdict(int)
    if receipts:
        for receipt_id, total, still_open in session.execute(
            select(
                TreasuryException.receipt_id,
                func.sum(TreasuryException.held),
                func.count().filter(TreasuryException.status == OPEN),
            )
            .join(BankReceipt, BankReceipt.id == TreasuryException.receipt_id)
            .where(BankReceipt.business_date == on)
            .group_by(TreasuryException.receipt_id)
        ):
            held[int(receipt_id)] = int(total or 0)
            open_count[int(receipt_id)] = int(still_open or 0)

    for r in receipts:
        home: Key = (r.jurisdiction, r.revenue_item)
        if r.channel == SETTLEMENT:
            covered = 0
            for amount, key in splits.get(r.id, []):
                line = row(key)
                line.bank += amount
                line.gateway += amount
                covered += amount
            home = (None, None)
            line = row(home)
            line.bank += r.bank_amount - covered
        else:
            measured = originals.get(f"{r.bank_code}:{r.original_receipt_id}") if r.kind == CANCEL else r
            sign = -1 if r.kind == CANCEL else 1
            ledger_part = 0
            if measured is not None and (r.kind != CANCEL or r.outcome == REVERSED):
                found = posted.get(_source(measured))
                if found is not None:
                    ledger_part, home = sign * found[0], found[1]
            line = row(home)
            line.bank += r.bank_amount
            line.ledger += ledger_part
            if (
                measured is not None
                and measured.payment_id in in_suspense
                and (r.kind != CANCEL or r.outcome == REVERSED)
            ):
                line.suspense += sign * in_suspense[measured.payment_id]
        line.receipts += 1
        line.held += held.get(r.id, 0)
        line.open_exceptions += open_count.get(r.id, 0)

    visible = [
        x
        for x in rows.values()
        if scope.jurisdictions is None or (x.jurisdiction is not None and x.jurisdiction in scope.jurisdictions)
    ]
    visible.sort(key=lambda x: (x.jurisdiction or "", x.revenue_item or ""))
    grand = ReportRow(None, None)
    for x in visible:
        grand.add(x)
    return Reconciliation(on, visible, grand)


def table(report: Reconciliation) -> list[str]:
    """The report as a readable text table (the CLI prints it)."""
    head = (
        f"{'jurisdiction':<12} {'item':<5} {'receipts':>8} {'bank':>14} {'ledger':>14} {'gateway':>14} "
        f"{'suspense':>12} {'held':>12} {'open exc':>8} {'difference':>11}"
    )
    out = [f"reconciliation {report.business_date:%Y-%m-%d} (Asia/Seoul)", head, "-" * len(head)]
    for x in [*report.rows, report.total]:
        if x is report.total:
            out.append("-" * len(head))
        label = ("total", "") if x is report.total else (x.jurisdiction or "(none)", x.revenue_item or "-")
        out.append(
            f"{label[0]:<12} {label[1]:<5} {x.receipts:>8,} {x.bank:>14,} {x.ledger:>14,} {x.gateway:>14,} "
            f"{x.suspense:>12,} {x.held:>12,} {x.open_exceptions:>8,} {x.difference:>11,}"
        )
    return out
