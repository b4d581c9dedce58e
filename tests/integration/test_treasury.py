"""Treasury (금고) receipts against the real ledger on PostgreSQL: SEN and the daily file report the same receipts,
each posts once; an aggregate PG credit is split over the gateway payments it covers; short, over, duplicate,
unknown, reversed and mismatched receipts land in the exception queue; and a day of 1,000 mixed payments
reconciles with every won accounted for."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from models import ledger, notices, payment_refs, payments
from models.base import Actor, Scope
from models.crypto import PiiCipher
from models.devices import RegisterDevice, register_device
from models.errors import InvalidInput, InvalidTransition, NotFound
from models.treasury import daily_file, exceptions, matching, queries, report
from models.treasury.message import BankReport
from models.treasury.tables import AggregateSplit, BankReceipt, TreasuryException
from models.users import User
from protocol import SEOUL, format_notice_no
from tests.conftest import TEST_LOOKUP_KEY, TEST_PII_KEY
from tests.factories import parking_command

CIPHER = PiiCipher(TEST_PII_KEY, TEST_LOOKUP_KEY)
OBSERVED = datetime(2026, 11, 20, 5, 0, tzinfo=UTC)
DEADLINE = date(2026, 12, 9)
DAY = date(2026, 11, 25)
BANK = payment_refs.Bank(code="088", name="신한은행", prefix="5620")
SYSTEM = Actor.system()
NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


def at(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 11, 25, hour, minute, second, tzinfo=SEOUL)


@pytest.fixture
def make_notices(db_session):
    """``make_notices(count, jurisdiction, item, first_serial)``: parking notices of 40,000 won (32,000 reduced
    until 12-09) issued in one batch, as a sync push records them."""
    device, _ = register_device(
        db_session, RegisterDevice("11110", "금고 시험 단말"), SYSTEM, OBSERVED, timedelta(hours=1)
    )
    officer = db_session.scalar(select(User).where(User.login == "officer.11110.1"))

    def make(count: int, jurisdiction: str = "11110", item: str = "41", first_serial: int = 5_000_000):
        cmds = []
        for k in range(count):
            notice_no = format_notice_no(jurisdiction, "26", first_serial + k)
            cmd = parking_command(
                notice_no,
                device.id,
                officer.id,
                plate=f"{10 + k // 9000}가{1000 + k % 9000:04d}",
                jurisdiction=jurisdiction,
                revenue_item=item,
            )
            cmds.append((cmd, Actor(device_id=device.id)))
        ids = notices.issue_notices(db_session, cmds, OBSERVED, CIPHER)
        assert len(ids) == count
        found = db_session.scalars(select(notices.Notice).where(notices.Notice.id.in_(ids.values()))).all()
        return sorted(found, key=lambda n: n.notice_no)

    return make


def account(db_session, notice: notices.Notice) -> str:
    receivable = notices.receivable_of(db_session, notice.id)
    assert receivable is not None
    return payment_refs.account_for(db_session, receivable, BANK).account_no


def va(rid: str, account_no: str, amount: int, when: datetime) -> BankReport:
    return BankReport("088", rid, "deposit", "virtual_account", account_no, amount, when)


def by_number(rid: str, notice: notices.Notice | str, amount: int, when: datetime, item: str = "41") -> BankReport:
    notice_no = notice if isinstance(notice, str) else notice.notice_no
    return BankReport("088", rid, "deposit", "bank", payment_refs.payment_no_of(notice_no, item), amount, when)


def cancel(rid: str, original: BankReport, when: datetime) -> BankReport:
    return BankReport(
        "088", rid, "cancel", original.channel, original.reference, original.amount, when, original.receipt_id
    )


def sen(db_session, report_: BankReport) -> str:
    return matching.record_receipt(db_session, report_, matching.SEN, SYSTEM, NOW)


def import_file(db_session, records: list[BankReport], on: date = DAY) -> matching.FileImport:
    text = daily_file.write_daily_file("088", on, records)
    return matching.import_file(db_session, text.encode(), f"088_{on:%Y%m%d}.txt", SYSTEM, NOW, bank_code="088")


def reasons(db_session) -> Counter[str]:
    return Counter(
        dict(
            db_session.execute(select(TreasuryException.reason, func.count()).group_by(TreasuryException.reason)).all()
        )
    )


def balance(db_session, notice: notices.Notice) -> int:
    receivable = notices.receivable_of(db_session, notice.id)
    assert receivable is not None
    return ledger.balance(db_session, receivable.id)


# --- one receipt at a time ------------------------------------------------------------------------------------------


def test_a_virtual_account_deposit_posts_once_and_the_daily_file_only_confirms_it(db_session, make_notices) -> None:
    (notice,) = make_notices(1)
    deposit = va("R1", account(db_session, notice), 32000, at(14))
    assert sen(db_session, deposit) == "posted"
    assert sen(db_session, deposit) == "repeated"
    done = import_file(db_session, [deposit])
    assert done.outcomes == {"confirmed": 1} and not done.exceptions
    assert balance(db_session, notice) == 0 and notice.status == "paid"
    payment = payments.find_payment(db_session, "treasury", "088:R1")
    assert payment is not None and (payment.status, payment.channel, payment.amount) == (
        "paid",
        "virtual_account",
        32000,
    )
    row = db_session.scalar(select(BankReceipt).where(BankReceipt.receipt_id == "R1"))
    assert (row.sen_amount, row.file_amount, row.outcome, row.jurisdiction, row.revenue_item) == (
        32000,
        32000,
        "posted",
        "11110",
        "41",
    )
    assert reasons(db_session) == {}


def test_the_amount_the_daily_file_disagrees_on_is_held_in_an_amount_mismatch(db_session, make_notices) -> None:
    (notice,) = make_notices(1)
    deposit = va("R2", account(db_session, notice), 32000, at(14))
    sen(db_session, deposit)
    done = import_file(db_session, [va("R2", deposit.reference, 32500, at(14))])
    assert done.outcomes == {"mismatch": 1} and done.exceptions == {"amount_mismatch": 1}
    exc = db_session.scalar(select(TreasuryException))
    assert (exc.reason, exc.amount, exc.held, exc.jurisdiction, exc.status) == (
        "amount_mismatch",
        500,
        500,
        "11110",
        "open",
    )
    rec = report.daily_report(db_session, DAY, Scope.everything())
    assert (rec.total.bank, rec.total.ledger, rec.total.held, rec.total.difference) == (32500, 32000, 500, 0)


def test_short_over_and_a_second_payment_of_a_paid_notice_post_and_raise_exceptions(db_session, make_notices) -> None:
    short, over, twice = make_notices(3)
    assert sen(db_session, va("S1", account(db_session, short), 20000, at(9))) == "posted"
    assert sen(db_session, va("O1", account(db_session, over), 45000, at(9))) == "posted"
    assert sen(db_session, by_number("D1", twice, 32000, at(9))) == "posted"
    assert sen(db_session, by_number("D2", twice, 32000, at(10))) == "posted"
    found = {e.reason: (e.amount, e.held) for e in db_session.scalars(select(TreasuryException))}
    assert found == {"short": (20000, 0), "over": (5000, 0), "duplicate": (32000, 0)}
    assert (balance(db_session, short), balance(db_session, over), balance(db_session, twice)) == (20000, -5000, -32000)
    rec = report.daily_report(db_session, DAY, Scope.everything())
    assert [(r.jurisdiction, r.revenue_item, r.bank, r.ledger, r.open_exceptions) for r in rec.rows] == [
        ("11110", "41", 129000, 129000, 3)
    ]


def test_an_unknown_reference_waits_in_suspense_and_is_matched_when_its_notice_arrives(db_session, make_notices):
    future = format_notice_no("11110", "26", 5_100_000)
    assert sen(db_session, by_number("U1", future, 32000, at(11))) == "suspense"
    assert sen(db_session, va("U2", "56209999999990", 10000, at(11))) == "suspense"
    assert sen(db_session, BankReport("088", "U3", "deposit", "bank", "0000", 5000, at(11))) == "suspense"
    excs = db_session.scalars(select(TreasuryException).order_by(TreasuryException.id)).all()
    assert [(e.reason, e.amount, e.held, e.jurisdiction) for e in excs] == [
        ("unmatched", 32000, 0, "11110"),
        ("unmatched", 10000, 0, None),
        ("unmatched", 5000, 0, None),
    ]
    assert payments.suspense_total(db_session, future) == 32000
    rec = report.daily_report(db_session, DAY, Scope.everything())
    assert (rec.total.bank, rec.total.suspense, rec.total.difference) == (47000, 47000, 0)
    (notice,) = make_notices(1, first_serial=5_100_000)
    assert payments.match_suspense(db_session, notice, SYSTEM, NOW) == 1
    rec = report.daily_report(db_session, DAY, Scope.everything())
    assert (rec.total.ledger, rec.total.suspense, rec.total.difference) == (32000, 15000, 0)
    # the matched receipt's exception is settled with it; the others wait for a clerk
    assert [(e.status, e.resolution) for e in excs] == [
        ("resolved", f"고지 {future} 전송으로 자동 충당"),
        ("open", None),
        ("open", None),
    ]
    # a clerk refunds one through the suspense API's domain operation: its exception is settled too
    from models import suspense
    from models.crypto import PiiCipher
    from tests.conftest import TEST_LOOKUP_KEY, TEST_PII_KEY

    waiting = [i for i in suspense.list_suspense(db_session, Scope.everything(), NOW, timedelta(days=30))]
    target = next(i for i in waiting if i.row.amount == 10000)
    cipher = PiiCipher(TEST_PII_KEY, TEST_LOOKUP_KEY)
    account_ = suspense.RefundAccount("신한은행", "110-123-456789", "홍길동")
    suspense.refund(db_session, target.row.id, "입금자 확인 불가", account_, cipher, Scope.everything(), SYSTEM, NOW)
    assert [e.status for e in excs] == ["resolved", "resolved", "open"]
    assert excs[1].resolution == f"미확인 수납 {target.row.id}: 환불 (입금자 확인 불가)"
    assert report.daily_report(db_session, DAY, Scope.only("11110")).total.bank == 32000  # city-wide rows hidden


def test_a_bank_cancellation_reverses_its_deposit_and_reopens_the_notice(db_session, make_notices) -> None:
    (notice,) = make_notices(1)
    deposit = va("R3", account(db_session, notice), 32000, at(9))
    sen(db_session, deposit)
    assert notice.status == "paid"
    assert sen(db_session, cancel("C3", deposit, at(10))) == "reversed"
    assert balance(db_session, notice) == 40000 and notice.status != "paid"
    assert sen(db_session, cancel("C4", deposit, at(11))) == "held"  # the same deposit cancelled twice
    assert sen(db_session, cancel("C5", va("NOPE", "x", 700, at(9)), at(11))) == "held"
    assert {(e.reason, e.held) for e in db_session.scalars(select(TreasuryException))} == {
        ("duplicate", -32000),
        ("cancel_unknown", -700),
    }
    rec = report.daily_report(db_session, DAY, Scope.everything())
    assert (rec.total.bank, rec.total.ledger, rec.total.held, rec.total.difference) == (-32700, 0, -32700, 0)


def test_an_aggregate_credit_is_split_over_the_gateway_payments_it_covers(db_session, make_notices) -> None:
    made = make_notices(4)
    for k, notice in enumerate(made):
        pg = payments.ReceivedPayment("sandbox", f"pg-a{k}", "qr", notice.notice_no, 32000, at(9 + k))
        payments.post_payment(db_session, pg, SYSTEM, NOW)
    payments.cancel_posted(db_session, "sandbox", "pg-a3", at(13), SYSTEM, NOW)  # the PG leaves it out
    credit = BankReport("088", "AG1", "deposit", "settlement", "sandbox:20261125", 96000, at(18))
    assert sen(db_session, credit) == "split"
    splits = db_session.scalars(select(AggregateSplit)).all()
    assert sorted(s.amount for s in splits) == [32000, 32000, 32000]
    again = BankReport("088", "AG2", "deposit", "settlement", "sandbox:20261125", 96000, at(19))
    assert sen(db_session, again) == "held"
    short = BankReport("088", "AG3", "deposit", "settlement", "sandbox:20261124", 1000, at(19))
    assert sen(db_session, short) == "held"
    assert reasons(db_session) == {"duplicate": 1, "unmatched": 1}
    rec = report.daily_report(db_session, DAY, Scope.everything())
    assert (rec.total.bank, rec.total.gateway, rec.total.held, rec.total.difference) == (193000, 96000, 97000, 0)
    assert [(r.jurisdiction, r.bank, r.gateway) for r in rec.rows] == [(None, 97000, 0), ("11110", 96000, 96000)]


def test_a_credit_short_of_the_payments_it_covers_holds_the_difference(db_session, make_notices) -> None:
    made = make_notices(2)
    for k, notice in enumerate(made):
        payments.post_payment(
            db_session,
            payments.ReceivedPayment("sandbox", f"pg-s{k}", "qr", notice.notice_no, 32000, at(9)),
            SYSTEM,
            NOW,
        )
    credit = BankReport("088", "AG9", "deposit", "settlement", "sandbox:20261125", 63000, at(18))
    assert sen(db_session, credit) == "split"
    exc = db_session.scalar(select(TreasuryException))
    assert (exc.reason, exc.amount, exc.held) == ("short", 1000, -1000)


def test_a_clerk_resolves_an_exception_once_within_scope(db_session, make_notices) -> None:
    (notice,) = make_notices(1)
    sen(db_session, va("S9", account(db_session, notice), 1000, at(9)))
    exc = db_session.scalar(select(TreasuryException))
    clerk = db_session.scalar(select(User).where(User.login == "clerk.11110"))
    actor = Actor(user_id=clerk.id, label="clerk.11110")
    with pytest.raises(NotFound):
        exceptions.resolve_exception(db_session, exc.id, "x", Scope.only("11140"), actor, NOW)
    done = exceptions.resolve_exception(db_session, exc.id, "납부자에게 잔액 안내", Scope.only("11110"), actor, NOW)
    assert (done.status, done.resolved_by, done.resolution) == ("resolved", clerk.id, "납부자에게 잔액 안내")
    with pytest.raises(InvalidTransition):
        exceptions.resolve_exception(db_session, exc.id, "again", Scope.only("11110"), actor, NOW)
    assert queries.list_exceptions(db_session, Scope.only("11110")) == []
    assert len(queries.list_exceptions(db_session, Scope.only("11110"), status="resolved")) == 1


def test_a_file_with_a_bad_line_imports_nothing(db_session, make_notices) -> None:
    (notice,) = make_notices(1)
    good = va("F1", account(db_session, notice), 32000, at(9))
    lines = daily_file.write_daily_file("088", DAY, [good, va("F2", good.reference, 1, at(9))]).splitlines()
    lines[2] = lines[2][:59] + "00000000000x1" + lines[2][72:]
    with pytest.raises(daily_file.DailyFileError) as caught:
        matching.import_file(db_session, "\n".join(lines).encode(), "bad.txt", SYSTEM, NOW)
    assert [(e.line, e.field) for e in caught.value.errors] == [(3, "amount")]
    assert db_session.scalar(select(func.count()).select_from(BankReceipt)) == 0
    with pytest.raises(InvalidInput):  # another bank's file
        import_file_of_bank(db_session, good)


def import_file_of_bank(db_session, good: BankReport) -> None:
    text = daily_file.write_daily_file("004", DAY, [good])
    matching.import_file(db_session, text.encode(), "other.txt", SYSTEM, NOW, bank_code="088")


# --- a day of 1,000 mixed payments ----------------------------------------------------------------------------------


def test_a_day_of_a_thousand_mixed_payments_reconciles_to_the_won(db_session, make_notices) -> None:
    jongno = make_notices(560, "11110", "41", 5_200_000)
    junggu = make_notices(360, "11140", "71", 5_300_000)
    gateway_notices, va_notices, number_notices = (
        jongno[:250] + junggu[:150],
        jongno[250:450] + junggu[150:270],
        jongno[450:] + junggu[270:],
    )
    assert (len(gateway_notices), len(va_notices), len(number_notices)) == (400, 320, 200)
    events = 0

    # 400 card/QR payments through the PG, posted by its callbacks; 10 cancelled at the PG the same day
    for k, notice in enumerate(gateway_notices):
        pg = payments.ReceivedPayment("sandbox", f"pg-{k}", "qr", notice.notice_no, 32000, at(9, k // 60, k % 60))
        assert payments.post_payment(db_session, pg, SYSTEM, NOW).newly_posted
    for k in range(10):
        assert payments.cancel_posted(db_session, "sandbox", f"pg-{k}", at(17), SYSTEM, NOW)
    events += 410

    sen_reports: list[BankReport] = []
    file_only: list[BankReport] = []
    # 320 virtual-account deposits by SEN: 20 short, 20 over, the rest the reduced amount
    deposits = []
    for k, notice in enumerate(va_notices):
        amount = 20000 if k < 20 else 45000 if k < 40 else 32000
        deposits.append(va(f"V{k:05d}", account(db_session, notice), amount, at(10, k // 60, k % 60)))
    sen_reports += deposits
    # 30 second payments of notices already paid (the citizen paid twice)
    sen_reports += [va(f"W{k:05d}", d.reference, 32000, at(12, k)) for k, d in enumerate(deposits[40:70])]
    # 15 deposits the bank cancels (취소) later in the day
    sen_reports += [cancel(f"X{k:05d}", d, at(15, k)) for k, d in enumerate(deposits[70:85])]
    # 10 deposits to virtual accounts nobody was given
    sen_reports += [
        va(f"Y{k:05d}", payment_refs.account_no_of(BANK, 900_000_000 + k), 15000, at(13, k)) for k in range(10)
    ]
    # the PG's aggregate credit for the day: 390 payments still paid
    sen_reports.append(BankReport("088", "AGG0001", "deposit", "settlement", "sandbox:20261125", 390 * 32000, at(18)))
    events += 320 + 30 + 15 + 10 + 1
    # 200 bank payments naming the 전자납부번호, only in the daily file (SEN missed them)
    file_only += [
        by_number(f"B{k:05d}", n, 40000, at(11, k // 60, k % 60), n.notice_no[:5] == "11110" and "41" or "71")
        for k, n in enumerate(number_notices)
    ]
    # 10 numbers of notices the ledger does not know (5 not yet synced, 5 mistyped)
    file_only += [
        by_number(f"Z{k:05d}", format_notice_no("11110", "26", 5_900_000 + k), 32000, at(14, k)) for k in range(5)
    ]
    file_only += [
        BankReport("088", f"Z{k:05d}", "deposit", "bank", "1111026000000" + str(k), 7000, at(14, k))
        for k in range(5, 10)
    ]
    # 3 cancellations of receipts nobody reported, and the PG's credit sent twice
    file_only += [cancel(f"Q{k:05d}", va(f"GONE{k}", "x", 3000, at(9)), at(16, k)) for k in range(3)]
    file_only.append(BankReport("088", "AGG0002", "deposit", "settlement", "sandbox:20261125", 390 * 32000, at(19)))
    events += 200 + 10 + 3 + 1
    assert events == 1000

    outcomes = Counter(sen(db_session, r) for r in sen_reports)
    assert sen(db_session, sen_reports[0]) == "repeated"  # SEN retransmits
    # the daily file reports every receipt of the day; 5 amounts differ from what SEN said
    in_file = [*sen_reports, *file_only]
    for k in range(100, 105):
        d = in_file[k]
        in_file[k] = BankReport(
            d.bank_code, d.receipt_id, d.kind, d.channel, d.reference, d.amount + 100, d.received_at
        )
    done = import_file(db_session, in_file)
    assert outcomes == {"posted": 320 + 30, "reversed": 15, "suspense": 10, "split": 1}
    assert done.outcomes == {"confirmed": len(sen_reports) - 5, "mismatch": 5, "posted": 200, "suspense": 10, "held": 4}
    assert reasons(db_session) == {
        "short": 20,
        "over": 20,
        "duplicate": 31,
        "unmatched": 20,
        "cancel_unknown": 3,
        "amount_mismatch": 5,
    }

    # every won: what the bank credited = posted to the ledger + split over gateway payments + in suspense + held
    parsed = daily_file.parse_daily_file(daily_file.write_daily_file("088", DAY, in_file))
    bank_total = parsed.total
    posted = -db_session.scalar(
        select(func.sum(ledger.LedgerEntry.amount)).where(
            ledger.LedgerEntry.kind == "payment",
            ledger.LedgerEntry.source.like("payment:treasury:%"),
            ledger.LedgerEntry.business_date == DAY,
        )
    )
    reversed_sources = [f"payment:treasury:088:{r.original_receipt_id}" for r in sen_reports if r.kind == "cancel"]
    reversed_ = -db_session.scalar(
        select(func.sum(ledger.LedgerEntry.amount)).where(
            ledger.LedgerEntry.kind == "payment", ledger.LedgerEntry.source.in_(reversed_sources)
        )
    )
    reversal_entries = db_session.scalar(
        select(func.count()).where(
            ledger.LedgerEntry.source.in_([f"reversal-of:{s}" for s in reversed_sources]),
            ledger.LedgerEntry.kind == "reversal",
        )
    )
    assert reversal_entries >= 15
    split = db_session.scalar(select(func.sum(AggregateSplit.amount)))
    suspense = db_session.scalar(
        select(func.sum(payments.SuspensePayment.amount))
        .join(payments.Payment, payments.Payment.id == payments.SuspensePayment.payment_id)
        .where(payments.Payment.gateway == "treasury", payments.SuspensePayment.status == "open")
    )
    held = db_session.scalar(select(func.sum(TreasuryException.held)))
    assert (
        split
        == 390 * 32000
        == db_session.scalar(
            select(func.sum(payments.Payment.amount)).where(
                payments.Payment.gateway == "sandbox",
                payments.Payment.status == "paid",
                payments.Payment.txn_id.like("pg-%"),
            )
        )
    )
    assert suspense == 10 * 15000 + 5 * 32000 + 5 * 7000
    assert held == 5 * 100 - 3 * 3000 + 390 * 32000  # mismatches, unknown cancellations, the credit sent twice
    assert bank_total == posted - reversed_ + split + suspense + held

    # the report says the same, per jurisdiction and revenue item
    rec = report.daily_report(db_session, DAY, Scope.everything())
    assert rec.total.bank == bank_total and rec.total.difference == 0
    assert (rec.total.ledger, rec.total.gateway, rec.total.suspense, rec.total.held) == (
        posted - reversed_,
        split,
        suspense,
        held,
    )
    assert all(r.difference == 0 for r in rec.rows), report.table(rec)
    keyed = {(r.jurisdiction, r.revenue_item): r for r in rec.rows}
    assert set(keyed) == {("11110", "41"), ("11140", "71"), ("11110", None), (None, None)}
    for r in rec.rows:  # where the bank and the ledger disagree, exceptions explain it
        if r.bank != r.ledger + r.gateway:
            assert r.suspense + r.held == r.bank - r.ledger - r.gateway and r.open_exceptions > 0
    assert rec.total.receipts == len(in_file)
    assert rec.total.open_exceptions == 99
    junggu_only = report.daily_report(db_session, DAY, Scope.only("11140"))
    assert [(r.jurisdiction, r.revenue_item) for r in junggu_only.rows] == [("11140", "71")]
    assert any("total" in line for line in report.table(rec))
