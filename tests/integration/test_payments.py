"""Posting payments to the ledger (DESIGN.md §3–§4): 자진납부 감경, once per transaction, suspense and matching."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from models import ledger, notices, payments
from models.base import Actor
from models.devices import RegisterDevice, register_device
from models.feed import ChangeLog, register_writer
from models.users import User
from tests.factories import CIPHER, OBSERVED, paid, parking_command


def entries(db_session, notice: notices.Notice) -> list[tuple[str, int]]:
    receivable = notices.receivable_of(db_session, notice.id)
    assert receivable is not None
    return [(e.kind, e.amount) for e in ledger.entries(db_session, receivable.id)]


def test_the_reduced_amount_paid_within_the_opinion_period_posts_the_reduction_and_ends_the_case(db_session, issue):
    notice = issue("111102600000012")
    on = datetime(2026, 12, 9, 14, 59, tzinfo=UTC)  # 23:59 on the deadline, in Seoul
    result = payments.post_payment(db_session, paid(notice.notice_no, 32000, on), Actor.system(), on)
    assert result.newly_posted
    assert entries(db_session, notice) == [("charge", 40000), ("reduction", -8000), ("payment", -32000)]
    assert (notice.status, notice.version, notice.paid_at) == ("paid", 2, on)
    feed = db_session.scalars(select(ChangeLog).where(ChangeLog.key == notice.notice_no).order_by(ChangeLog.id)).all()
    assert feed[-1].data == {"notice_no": notice.notice_no, "status": "paid", "version": 2, "paid_at": on.isoformat()}


def test_the_reduced_amount_paid_the_day_after_the_deadline_is_only_a_partial_payment(db_session, issue):
    notice = issue("111102600000012")
    on = datetime(2026, 12, 9, 15, 0, tzinfo=UTC)  # 00:00 on 12-10 in Seoul: the period is over
    payments.post_payment(db_session, paid(notice.notice_no, 32000, on), Actor.system(), on)
    assert entries(db_session, notice) == [("charge", 40000), ("payment", -32000)]
    assert (notice.status, notice.version) == ("issued", 1)


def test_the_full_amount_after_the_deadline_settles_without_a_reduction(db_session, issue):
    notice = issue("111102600000012")
    on = datetime(2026, 12, 20, 3, 0, tzinfo=UTC)
    payments.post_payment(db_session, paid(notice.notice_no, 40000, on), Actor.system(), on)
    assert entries(db_session, notice) == [("charge", 40000), ("payment", -40000)]
    assert notice.status == "paid"


def test_the_same_transaction_reported_twice_posts_once(db_session, issue):
    notice = issue("111102600000012")
    on = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
    first = payments.post_payment(db_session, paid(notice.notice_no, 32000, on), Actor.system(), on)
    second = payments.post_payment(db_session, paid(notice.notice_no, 32000, on), Actor.system(), on)
    assert (first.newly_posted, second.newly_posted) == (True, False)
    assert entries(db_session, notice) == [("charge", 40000), ("reduction", -8000), ("payment", -32000)]


def test_a_payment_for_an_unknown_notice_waits_in_suspense_and_is_matched_when_the_notice_arrives(db_session, issue):
    on = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
    result = payments.post_payment(db_session, paid("111102600000012", 32000, on), Actor.system(), on)
    assert (result.payment.status, result.payment.receivable_id, result.notice) == ("paid", None, None)
    assert payments.suspense_total(db_session, "111102600000012") == 32000

    notice = issue("111102600000012")
    assert payments.match_suspense(db_session, notice, Actor.system(), on) == 1
    assert result.payment.receivable_id is not None
    assert entries(db_session, notice) == [("charge", 40000), ("reduction", -8000), ("payment", -32000)]
    assert notice.status == "paid"
    assert payments.suspense_total(db_session, "111102600000012") == 0
    assert payments.match_suspense(db_session, notice, Actor.system(), on) == 0


def test_money_for_a_voided_notice_is_kept_as_an_overpayment_and_the_notice_stays_voided(db_session, issue):
    notice = issue("111102600000012")
    notices.void_notice(db_session, notice, "wrong_vehicle", None, Actor.system(), OBSERVED, OBSERVED, "test")
    on = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
    payments.post_payment(db_session, paid(notice.notice_no, 32000, on), Actor.system(), on)
    assert entries(db_session, notice) == [("charge", 40000), ("reversal", -40000), ("payment", -32000)]
    assert notice.status == "voided"


def test_a_payment_read_before_another_transaction_posted_it_is_not_posted_twice(clone_db) -> None:
    """Two callbacks of one payment: the second read the payment before the first posted it, then waited for its
    lock. Under the lock it must see ``paid`` (the session's earlier copy is refreshed), and post nothing."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    engine = create_engine(clone_db())
    try:
        with Session(engine) as setup:
            register_writer(setup)  # a test's setup transaction writes changes after other rows
            device, _ = register_device(setup, RegisterDevice("11110", "경합 시험 단말"), Actor.system(), OBSERVED,
                                        timedelta(hours=1))  # fmt: skip
            officer = setup.scalar(select(User).where(User.login == "officer.11110.1"))
            cmd = parking_command("111102600000012", device.id, officer.id)
            notices.issue_notice(setup, cmd, Actor(device_id=device.id), OBSERVED, CIPHER)
            payments.open_payment(setup, gateway="sandbox", txn_id="t-race", channel="qr",
                                  notice_no="111102600000012", amount=32000)  # fmt: skip
            setup.commit()
        on = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
        late, first = Session(engine), Session(engine)
        try:
            for writer in (late, first):
                register_writer(writer)  # as the server's units of work do
            seen = payments.find_payment(late, "sandbox", "t-race")
            assert seen is not None and seen.status == "initiated"  # the late one's earlier, unlocked read
            assert payments.post_payment(first, paid("111102600000012", 32000, on, "t-race"), Actor.system(), on)
            first.commit()
            again = payments.post_payment(late, paid("111102600000012", 32000, on, "t-race"), Actor.system(), on)
            assert not again.newly_posted and again.payment.status == "paid"
            late.commit()
        finally:
            late.close()
            first.close()
        with Session(engine) as check:
            notice = notices.find_notice(check, "111102600000012")
            assert notice is not None
            assert entries(check, notice) == [("charge", 40000), ("reduction", -8000), ("payment", -32000)]
    finally:
        engine.dispose()
