"""What a bank receipt does, reported by SEN or by the daily file (DESIGN.md §4).

One row per (bank, receipt id): the first report acts, a later one (the other source, or the same again) only
confirms it; an amount the two disagree on is an ``amount_mismatch`` exception holding the difference. By kind:

- a deposit to a virtual account, or a bank payment naming the 전자납부번호, is new money: posted once through
  ``payments.post_payment`` (gateway ``treasury``, txn ``<bank>:<receipt id>``). Naming no known notice it waits in
  suspense (``unmatched``). Posted, it is checked against what was owed: ``short`` (the balance left), ``over``
  (the excess, kept on the receivable as 과오납) or ``duplicate`` / ``not_owed`` (nothing was owed);
- a PG settlement (one lump sum per gateway and day) is split over the gateway payments of that day still paid
  and not covered yet, one ``treasury_splits`` row each; a difference is ``short`` or ``over`` holding it;
- a cancellation (취소) reverses its original (``payments.cancel_posted``); one that cannot is held.

Every exception records its reason, the amount in question, ``held`` (bank money that only the exception accounts
for: neither in the ledger, in suspense nor split; negative when the bank credited less) and the jurisdiction if
known (``exceptions``); a clerk resolves it with a note. Nothing is dropped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from models import ledger, notices, payment_refs, payments
from models.base import Actor
from models.errors import InvalidInput
from models.treasury import daily_file
from models.treasury.exceptions import open_exception
from models.treasury.message import BankReport
from models.treasury.tables import (
    BANK,
    CANCEL,
    HELD,
    POSTED,
    REVERSED,
    SETTLEMENT,
    SPLIT,
    SUSPENSE,
    VIRTUAL_ACCOUNT,
    AggregateSplit,
    BankReceipt,
    TreasuryException,
    TreasuryFile,
)
from protocol import SEOUL, parse_notice_no, seoul_date

GATEWAY = payments.TREASURY
SEN, FILE = "sen", "file"


def txn_of(bank_code: str, receipt_id: str) -> str:
    """The payment's txn id of a bank receipt (``payments`` is unique on (gateway, txn_id))."""
    return f"{bank_code}:{receipt_id}"


def signed(report: BankReport) -> int:
    return -report.amount if report.kind == CANCEL else report.amount


# --- one receipt ----------------------------------------------------------------------------------------------------


def record_receipt(
    session: Session,
    report: BankReport,
    source: str,
    actor: Actor,
    now: datetime,
    *,
    file_id: int | None = None,
) -> str:
    """Act on one reported receipt; returns what happened: ``posted``, ``suspense``, ``split``, ``reversed`` or
    ``held`` (first report), ``confirmed`` (the other source's report agreeing), ``repeated`` (the same source
    again), ``mismatch`` (the other source disagreeing on the amount)."""
    amount = signed(report)
    inserted = session.execute(
        pg_insert(BankReceipt)
        .values(
            bank_code=report.bank_code,
            receipt_id=report.receipt_id,
            kind=report.kind,
            channel=report.channel,
            reference=report.reference,
            original_receipt_id=report.original_receipt_id,
            amount=amount,
            sen_amount=amount if source == SEN else None,
            file_amount=amount if source == FILE else None,
            received_at=report.received_at,
            business_date=seoul_date(report.received_at),
            outcome=HELD,
            file_id=file_id,
            sen_at=now if source == SEN else None,
            raw={source: report.as_dict()},
        )
        .on_conflict_do_nothing(constraint="uq_treasury_receipts_bank_receipt")
        .returning(BankReceipt.id)
    ).scalar()
    if inserted is None:
        existing = session.scalar(
            select(BankReceipt)
            .where(BankReceipt.bank_code == report.bank_code, BankReceipt.receipt_id == report.receipt_id)
            .with_for_update()
        )
        assert existing is not None
        return _confirm(session, existing, report, source, file_id, now)
    row = session.get(BankReceipt, inserted)
    assert row is not None
    if report.kind == CANCEL:
        row.outcome = _cancel(session, row, report, actor, now)
    elif report.channel == SETTLEMENT:
        row.outcome = _settlement(session, row, report)
    else:
        row.outcome = _deposit(session, row, report, actor, now)
    session.flush()
    return row.outcome


def _confirm(
    session: Session, row: BankReceipt, report: BankReport, source: str, file_id: int | None, now: datetime
) -> str:
    amount = signed(report)
    if (report.kind, report.channel, report.reference) != (row.kind, row.channel, row.reference):
        open_exception(
            session,
            row,
            "conflicting_report",
            abs(amount),
            f"{source} reports {report.kind}/{report.channel}/{report.reference}, first reported as "
            f"{row.kind}/{row.channel}/{row.reference}",
        )
    earlier = row.sen_amount if source == SEN else row.file_amount
    if earlier is not None:
        if earlier != amount:
            open_exception(
                session,
                row,
                "conflicting_report",
                abs(amount - earlier),
                f"{source} reported {earlier} before and {amount} now; the first stands",
            )
        session.flush()
        return "repeated"
    if source == SEN:
        row.sen_amount, row.sen_at = amount, now
    else:
        row.file_amount, row.file_id = amount, file_id
    row.raw = {**(row.raw or {}), source: report.as_dict()}
    # the mismatch exceptions together hold what the bank says beyond what was acted on
    held_so_far = session.scalar(
        select(func.coalesce(func.sum(TreasuryException.held), 0)).where(
            TreasuryException.receipt_id == row.id, TreasuryException.reason == "amount_mismatch"
        )
    )
    delta = row.bank_amount - row.amount - int(held_so_far or 0)
    session.flush()
    if delta == 0:
        return "confirmed"
    open_exception(
        session,
        row,
        "amount_mismatch",
        abs(delta),
        f"{source} says {amount} won, {row.amount} won was acted on: the difference is held",
        held=delta,
    )
    session.flush()
    return "mismatch"


def _deposit(session: Session, row: BankReceipt, report: BankReport, actor: Actor, now: datetime) -> str:
    notice_no: str | None = None
    notice: notices.Notice | None = None
    receivable: ledger.Receivable | None = None
    if report.channel == VIRTUAL_ACCOUNT:
        account = payment_refs.find_account(session, report.reference)
        if account is not None:
            receivable = session.get(ledger.Receivable, account.receivable_id)
            if receivable is not None and receivable.notice_id is not None:
                # locked before the balance is read: a concurrent payment of the same notice waits
                notice = session.get(notices.Notice, receivable.notice_id, with_for_update=True)
            notice_no = notice.notice_no if notice is not None else None
    elif report.channel == BANK:
        notice_no = payment_refs.notice_no_of_payment_no(report.reference)
        notice = notices.find_notice(session, notice_no, for_update=True) if notice_no else None
        receivable = notices.receivable_of(session, notice.id) if notice is not None else None
    parsed = parse_notice_no(notice_no)
    row.notice_no = notice_no
    row.jurisdiction = receivable.jurisdiction if receivable else (parsed.jurisdiction if parsed else None)
    row.revenue_item = receivable.revenue_item if receivable else None
    before = ledger.balance(session, receivable.id) if receivable is not None and notice is not None else None
    was_paid = notice is not None and notice.status == notices.PAID
    received = payments.ReceivedPayment(
        gateway=GATEWAY,
        txn_id=txn_of(report.bank_code, report.receipt_id),
        channel=report.channel,
        notice_no=notice_no if notice is not None or parsed is not None else None,
        amount=report.amount,
        approved_at=report.received_at,
        raw=report.as_dict(),
    )
    result = payments.post_payment(session, received, actor, now)
    row.payment_id = result.payment.id
    if result.notice is None:
        what = f"notice {notice_no} is not in the ledger (yet)" if notice_no else "names no virtual account or notice"
        open_exception(
            session, row, "unmatched", report.amount, f"{report.channel} {report.reference}: {what}; in suspense"
        )
        return SUSPENSE
    assert notice is not None and receivable is not None and before is not None
    after = ledger.balance(session, receivable.id)
    if before <= 0:
        reason = "duplicate" if was_paid else "not_owed"
        open_exception(
            session,
            row,
            reason,
            report.amount,
            f"notice {notice_no} owed nothing ({'already paid' if was_paid else notice.status}): "
            "kept on the receivable as 과오납, to refund",
        )
    elif after > 0:
        open_exception(
            session, row, "short", after, f"notice {notice_no}: {after} won still owed after {report.amount}"
        )
    elif after < 0:
        open_exception(
            session, row, "over", -after, f"notice {notice_no}: {-after} won paid beyond what was owed (과오납)"
        )
    return POSTED


def settlement_day(reference: str) -> tuple[str, date] | None:
    """``<gateway>:<YYYYMMDD>`` → (gateway, day), or None."""
    gateway, sep, day = reference.rpartition(":")
    if not sep or not gateway:
        return None
    try:
        return gateway, datetime.strptime(day, "%Y%m%d").date()
    except ValueError:
        return None


def _settlement(session: Session, row: BankReceipt, report: BankReport) -> str:
    parsed = settlement_day(report.reference)
    if parsed is None:
        open_exception(
            session,
            row,
            "unmatched",
            report.amount,
            f"settlement reference {report.reference!r} is not <gateway>:<YYYYMMDD>",
            held=report.amount,
        )
        return HELD
    gateway, day = parsed
    start = datetime.combine(day, time(), SEOUL)
    covered = session.execute(
        select(payments.Payment.id, payments.Payment.amount)
        .where(
            payments.Payment.gateway == gateway,
            payments.Payment.status == payments.PAID,
            payments.Payment.approved_at >= start,
            payments.Payment.approved_at < start + timedelta(days=1),
            ~exists().where(AggregateSplit.payment_id == payments.Payment.id),
        )
        .order_by(payments.Payment.id)
        .with_for_update(of=payments.Payment)
    ).all()
    if covered:
        session.execute(
            pg_insert(AggregateSplit),
            [{"receipt_id": row.id, "payment_id": pid, "amount": amount} for pid, amount in covered],
        )
    total = sum(int(amount) for _, amount in covered)
    diff = report.amount - total
    if not covered:
        before = session.scalar(
            select(func.count()).where(
                BankReceipt.reference == report.reference, BankReceipt.id != row.id, BankReceipt.channel == SETTLEMENT
            )
        )
        reason = "duplicate" if before else "unmatched"
        open_exception(
            session,
            row,
            reason,
            report.amount,
            f"{report.reference}: no {gateway} payment of {day} left to cover",
            held=report.amount,
        )
        return HELD
    if diff:
        open_exception(
            session,
            row,
            "over" if diff > 0 else "short",
            abs(diff),
            f"{report.reference}: credited {report.amount} won for {len(covered)} payments of {total} won",
            held=diff,
        )
    return SPLIT


def _cancel(session: Session, row: BankReceipt, report: BankReport, actor: Actor, now: datetime) -> str:
    original = session.scalar(
        select(BankReceipt)
        .where(BankReceipt.bank_code == report.bank_code, BankReceipt.receipt_id == report.original_receipt_id)
        .with_for_update()
    )
    if original is not None:
        row.jurisdiction, row.revenue_item, row.notice_no = (
            original.jurisdiction,
            original.revenue_item,
            original.notice_no,
        )
    if original is None or original.kind != "deposit":
        open_exception(
            session,
            row,
            "cancel_unknown",
            report.amount,
            f"cancels {report.original_receipt_id}, which is no deposit we know",
            held=-report.amount,
        )
        return HELD
    if original.payment_id is None or original.amount != report.amount:
        open_exception(
            session,
            row,
            "cancel_failed",
            report.amount,
            f"cancels {original.receipt_id} ({original.outcome}, {original.amount} won): reverse it by hand",
            held=-report.amount,
        )
        return HELD
    done = payments.cancel_posted(
        session, GATEWAY, txn_of(original.bank_code, original.receipt_id), report.received_at, actor, now
    )
    if not done:
        open_exception(
            session,
            row,
            "cancel_failed" if not _reversed_before(session, original) else "duplicate",
            report.amount,
            f"cancels {original.receipt_id}, which was cancelled or refunded already",
            held=-report.amount,
        )
        return HELD
    row.payment_id = original.payment_id
    return REVERSED


def _reversed_before(session: Session, original: BankReceipt) -> bool:
    return bool(
        session.scalar(
            select(func.count()).where(
                BankReceipt.original_receipt_id == original.receipt_id,
                BankReceipt.bank_code == original.bank_code,
                BankReceipt.outcome == REVERSED,
            )
        )
    )


# --- the daily file -------------------------------------------------------------------------------------------------


@dataclass
class FileImport:
    file: TreasuryFile
    outcomes: Counter[str] = field(default_factory=Counter)
    exceptions: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {"outcomes": dict(self.outcomes), "exceptions": dict(self.exceptions)}

    def add(self, other: FileImport) -> None:
        self.outcomes.update(other.outcomes)
        self.exceptions.update(other.exceptions)


def import_file(
    session: Session,
    data: bytes,
    name: str,
    actor: Actor,
    now: datetime,
    *,
    bank_code: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> FileImport:
    """Import a daily file in the caller's transaction: every line acts or confirms (``record_receipt``).
    Raises ``daily_file.DailyFileError`` (every bad line; nothing imported) or ``InvalidInput`` for another bank's
    file. ``services.treasury.import_daily_file`` does the same a chunk of lines per transaction."""
    tfile, parsed = start_import(session, data, name, actor, now, bank_code=bank_code)
    return import_lines(session, tfile.id, parsed, actor, now, progress=progress)


def start_import(
    session: Session, data: bytes, name: str, actor: Actor, now: datetime, *, bank_code: str | None = None
) -> tuple[TreasuryFile, daily_file.DailyFile]:
    """Check the whole file (every bad line is reported, nothing imported) and record it, or find the unfinished
    import of the same file (same bytes) to resume. Raises ``DailyFileError`` or ``InvalidInput``."""
    import hashlib

    parsed = daily_file.parse_daily_file(data)
    if bank_code is not None and parsed.bank_code != bank_code:
        raise InvalidInput(f"the file is bank {parsed.bank_code}'s, ours is {bank_code}", field="bank_code")
    digest = hashlib.sha256(data).hexdigest()
    unfinished = session.scalar(
        select(TreasuryFile)
        .where(TreasuryFile.sha256 == digest, TreasuryFile.lines_done < TreasuryFile.lines)
        .order_by(TreasuryFile.id)
        .limit(1)
        .with_for_update()
    )
    if unfinished is not None:
        return unfinished, parsed
    tfile = TreasuryFile(
        bank_code=parsed.bank_code,
        file_date=parsed.file_date,
        name=name[:200],
        sha256=digest,
        lines=len(parsed.records),
        lines_done=0,
        total=parsed.total,
        summary={"outcomes": {}, "exceptions": {}},
        imported_by=actor.user_id,
        actor_label=actor.label[:80],
        imported_at=now,
    )
    session.add(tfile)
    session.flush()
    return tfile, parsed


def import_lines(
    session: Session,
    file_id: int,
    parsed: daily_file.DailyFile,
    actor: Actor,
    now: datetime,
    *,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> FileImport:
    """Import the next ``limit`` lines (all that are left, without) of a started import, after its cursor
    ``lines_done``, and move the cursor; the file's summary adds this chunk's outcomes and exceptions. Returns
    the whole file's outcomes so far (``file.lines_done == file.lines``: done)."""
    tfile = session.get(TreasuryFile, file_id, with_for_update=True)
    assert tfile is not None
    total = len(parsed.records)
    end = total if limit is None else min(total, tfile.lines_done + limit)
    chunk = FileImport(tfile)
    first_exception = session.scalar(select(func.coalesce(func.max(TreasuryException.id), 0))) or 0
    for n in range(tfile.lines_done, end):
        chunk.outcomes[record_receipt(session, parsed.records[n][1], FILE, actor, now, file_id=tfile.id)] += 1
        if progress is not None:
            progress(n + 1, total)
    for reason, count in session.execute(
        select(TreasuryException.reason, func.count())
        .where(TreasuryException.id > first_exception)
        .group_by(TreasuryException.reason)
    ):
        chunk.exceptions[reason] = int(count)
    result = FileImport(tfile, Counter((tfile.summary or {}).get("outcomes", {})),
                        Counter((tfile.summary or {}).get("exceptions", {})))  # fmt: skip
    result.add(chunk)
    tfile.summary = result.as_dict()
    tfile.lines_done = end
    session.flush()
    return result
