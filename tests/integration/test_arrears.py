"""체납 (DESIGN.md §3 step 5–6, §4; LAW.md §1.2, §1.4, §1.5): the statute's numbers, the steps' idempotence and
catch-up, holds, the payment order, the objection hooks and the plate-seizure hotlist, on PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import protocol
from models import arrears, ledger, notices, payments
from models.arrears import GrantRelief, Installment
from models.base import Actor, Scope
from models.crypto import PiiCipher
from models.devices import RegisterDevice, register_device
from models.errors import InvalidInput, InvalidTransition, NotFound
from models.feed import ChangeLog
from models.ledger import ENFORCEMENT_COST, MONTHLY_SURCHARGE, PRINCIPAL, SURCHARGE, Post
from models.rules import full_month_elapses_on
from models.users import User
from tests.conftest import TEST_LOOKUP_KEY, TEST_PII_KEY

SYSTEM = Actor.system()
EVERYWHERE = Scope.everything()
DUE = date(2030, 1, 31)  # after any wall-clock start of the business date, so the tests move it forward only
FIRST_OVERDUE = DUE + timedelta(days=1)


def month(n: int, due: date = DUE) -> date:
    """The day the n-th full month since ``due`` has elapsed (중가산금 month n accrues)."""
    return full_month_elapses_on(due, n)


def imposed(session, amount: int = 40_000, due: date = DUE, *, notice_id: int | None = None) -> int:
    receivable = ledger.open_receivable(
        session,
        jurisdiction="11110",
        revenue_item="41",
        notice_id=notice_id,
        actor=SYSTEM,
        principal=Post(PRINCIPAL, "charge", amount, due - timedelta(days=60), "test"),
    )
    arrears.start_collection(session, receivable.id, due, on=due - timedelta(days=60))
    return receivable.id


def advance(session, day: date) -> arrears.StepReport:
    return arrears.advance_business_date(session, day, SYSTEM, refresh=False)


def heads(session, receivable_id: int) -> dict[str, int]:
    return {kind: amount for kind, amount in arrears.heads_of(session, receivable_id).items() if amount}


def surcharges(session, receivable_id: int) -> list[tuple[str, int, date]]:
    return [
        (e.source or "", e.amount, e.business_date)
        for e in ledger.entries(session, receivable_id)
        if e.kind == "surcharge"
    ]


# --- the statute's numbers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "owed"),
    [
        (DUE, 40_000),  # the due date is the last day to pay without surcharge
        (FIRST_OVERDUE, 41_200),  # 가산금 3%
        (month(1) - timedelta(days=1), 41_200),  # one day short of a full month
        (month(1), 41_680),  # + 480 (1.2%)
        (month(2), 42_160),
        (month(12), 41_200 + 12 * 480),
        (month(59), 41_200 + 59 * 480),
        (month(60), 70_000),  # 40,000 × 175%
        (month(61), 70_000),  # and never more
        (month(60) + timedelta(days=3650), 70_000),
    ],
)
def test_a_40000_fine_unpaid_after_its_due_date_owes_the_statutes_amounts(db_session, day, owed):
    rid = imposed(db_session)
    advance(db_session, day)
    assert ledger.balance(db_session, rid) == owed


def test_the_monthly_surcharge_is_capped_at_60_entries_of_480(db_session):
    rid = imposed(db_session)
    advance(db_session, month(70))
    monthly = [amount for source, amount, _ in surcharges(db_session, rid) if source.startswith("monthly_surcharge")]
    assert monthly == [480] * 60
    assert heads(db_session, rid) == {PRINCIPAL: 40_000, SURCHARGE: 1_200, MONTHLY_SURCHARGE: 28_800}


@pytest.mark.parametrize(
    ("due", "surcharge", "rule_key"),
    [
        (date(2017, 6, 1), 2_000, "surcharge:*@2008-06-22"),  # first overdue 06-02: the old 5%
        (date(2017, 6, 2), 1_200, "surcharge:*@2017-06-03"),  # first overdue 06-03: 3%
        (date(2012, 3, 15), 2_000, "surcharge:*@2008-06-22"),
    ],
)
def test_a_fine_first_overdue_before_2017_06_03_takes_5_percent(db_session, due, surcharge, rule_key):
    rid = imposed(db_session, due=due)
    arrears.run_daily_step(db_session, due + timedelta(days=1), SYSTEM)
    assert surcharges(db_session, rid) == [(rule_key, surcharge, due + timedelta(days=1))]


def test_every_posted_surcharge_names_its_rule_row_on_the_entry_and_the_posting(db_session):
    rid = imposed(db_session)
    advance(db_session, month(2))
    postings = db_session.scalars(
        select(arrears.ArrearsPosting)
        .where(arrears.ArrearsPosting.receivable_id == rid)
        .order_by(arrears.ArrearsPosting.month_no)
    )
    by_entry = {e.id: e for e in ledger.entries(db_session, rid)}
    rows = list(postings)
    assert [(p.head, p.month_no) for p in rows] == [(SURCHARGE, 0), (MONTHLY_SURCHARGE, 1), (MONTHLY_SURCHARGE, 2)]
    for posting in rows:
        assert posting.rule_id is not None
        assert posting.ledger_entry_id is not None
        entry = by_entry[posting.ledger_entry_id]
        assert entry.source == posting.rule_key
        assert entry.amount == posting.amount
        assert entry.business_date == posting.accrues_on
        assert "surcharge_rounding" in (entry.memo or "")
    assert rows[0].rule_key == "surcharge:*@2017-06-03"
    assert rows[1].rule_key == "monthly_surcharge:*@2008-06-22"


def test_a_fine_paid_on_its_due_date_owes_no_surcharge(db_session):
    rid = imposed(db_session)
    advance(db_session, DUE)
    arrears.record_payment(db_session, rid, 40_000, DUE, "bank:1", SYSTEM)
    advance(db_session, month(3))
    assert surcharges(db_session, rid) == []
    assert ledger.balance(db_session, rid) == 0


def test_an_item_without_a_surcharge_rule_goes_overdue_without_surcharges(db_session):
    receivable = ledger.open_receivable(
        db_session,
        jurisdiction="11110",
        revenue_item="41",
        notice_id=None,
        actor=SYSTEM,
        principal=Post(PRINCIPAL, "charge", 40_000, DUE, "test"),
    )
    arrears.start_collection(db_session, receivable.id, DUE, on=DUE, surcharge_rule="none")
    advance(db_session, month(3))
    terms = db_session.get(arrears.ReceivableTerms, receivable.id)
    assert terms.state == arrears.OVERDUE and terms.overdue_since == FIRST_OVERDUE
    assert ledger.balance(db_session, receivable.id) == 40_000


# --- the steps: once, and catching up -----------------------------------------------------------------------------


def test_the_daily_step_marks_the_receivable_overdue_the_day_after_the_due_date_and_posts_the_surcharge_once(
    db_session,
):
    rid = imposed(db_session)
    advance(db_session, DUE)
    assert arrears.run_daily_step(db_session, DUE, SYSTEM).posted == 0
    terms = db_session.get(arrears.ReceivableTerms, rid)
    assert terms.state == arrears.CURRENT
    advance(db_session, FIRST_OVERDUE)
    again = arrears.run_daily_step(db_session, FIRST_OVERDUE, SYSTEM)
    assert again.posted == 0  # the advance ran it already
    assert terms.state == arrears.OVERDUE and terms.overdue_since == FIRST_OVERDUE
    assert surcharges(db_session, rid) == [("surcharge:*@2017-06-03", 1_200, FIRST_OVERDUE)]


def test_the_month_step_is_idempotent_per_receivable_and_month(db_session):
    rid = imposed(db_session)
    advance(db_session, month(1))
    for _ in range(3):
        arrears.run_month_step(db_session, month(1), SYSTEM)
        arrears.run_daily_step(db_session, month(1), SYSTEM)
    assert ledger.balance(db_session, rid) == 41_680


def test_the_month_step_that_did_not_run_for_3_months_posts_3_entries_each_for_its_own_month(db_session):
    rid = imposed(db_session)
    advance(db_session, FIRST_OVERDUE)
    report = advance(db_session, month(3) + timedelta(days=5))
    assert report.posted == 3 and report.amount == 3 * 480
    monthly = [(amount, on) for source, amount, on in surcharges(db_session, rid) if source.startswith("monthly")]
    assert monthly == [(480, month(1)), (480, month(2)), (480, month(3))]
    assert arrears.run_month_step(db_session, month(3) + timedelta(days=5), SYSTEM).posted == 0


def test_the_database_refuses_a_second_decision_for_the_same_receivable_and_month(db_session):
    rid = imposed(db_session)
    advance(db_session, month(1))
    with pytest.raises(IntegrityError):
        with db_session.begin_nested():
            db_session.execute(
                text(
                    "INSERT INTO arrears_postings (receivable_id, head, month_no, accrues_on, base, amount, skipped,"
                    " rule_key, business_date) VALUES (:rid, 'monthly_surcharge', 1, :day, 0, 0, 'hold', 'x', :day)"
                ),
                {"rid": rid, "day": month(1)},
            )


def test_a_posting_cannot_be_edited_or_deleted(db_session):
    rid = imposed(db_session)
    advance(db_session, FIRST_OVERDUE)
    for sql in (
        "UPDATE arrears_postings SET amount = 1 WHERE receivable_id = :rid",
        "DELETE FROM arrears_postings WHERE receivable_id = :rid",
    ):
        with pytest.raises(Exception, match="append-only"):
            with db_session.begin_nested():
                db_session.execute(text(sql), {"rid": rid})


def test_a_receivable_that_is_behind_is_caught_up_before_a_payment_is_posted(db_session):
    rid = imposed(db_session)
    # the steps never ran (the business date is moved without them): the payment catches the receivable up first
    arrears.business_date(db_session)
    db_session.execute(text("UPDATE business_calendar SET business_date = :d"), {"d": month(2)})
    arrears.record_payment(db_session, rid, 40_000, month(2), "bank:1", SYSTEM)
    # 가산금 and months 1–2 were decided on the principal unpaid then; the payment went to the principal first
    assert heads(db_session, rid) == {SURCHARGE: 1_200, MONTHLY_SURCHARGE: 960}
    advance(db_session, month(5))
    assert heads(db_session, rid) == {SURCHARGE: 1_200, MONTHLY_SURCHARGE: 960}  # nothing more on a paid principal


def test_the_business_date_never_goes_back_and_steps_never_run_ahead_of_it(db_session):
    advance(db_session, DUE)
    assert arrears.business_date(db_session) == DUE
    with pytest.raises(InvalidTransition) as caught:
        advance(db_session, DUE - timedelta(days=1))
    assert caught.value.code == "business_date_backwards"
    with pytest.raises(InvalidInput):
        arrears.run_month_step(db_session, DUE + timedelta(days=1), SYSTEM)


def test_the_workers_job_moves_the_business_date_to_todays_seoul_date_and_never_back(db_session):
    rid = imposed(db_session)
    late_evening_utc = datetime(2030, 2, 28, 16, 0, tzinfo=UTC)  # already 03-01 in Seoul: month 1 has elapsed
    report = arrears.advance_to_today(db_session, late_evening_utc, SYSTEM)
    assert report.business_date == date(2030, 3, 1) == month(1)
    assert "surcharges posted" in report.summary()
    assert ledger.balance(db_session, rid) == 41_680
    assert arrears.advance_to_today(db_session, late_evening_utc - timedelta(days=3), SYSTEM).business_date == month(1)


# --- payments: the statutory order --------------------------------------------------------------------------------


def test_a_payment_goes_to_enforcement_cost_then_principal_then_surcharge_then_monthly_surcharge(db_session):
    rid = imposed(db_session)
    advance(db_session, month(2))
    receivable = db_session.get(ledger.Receivable, rid)
    assert receivable.allocation_policy == "v1"
    ledger.post(db_session, receivable, Post(ENFORCEMENT_COST, "charge", 3_000, month(2), "test"), SYSTEM)
    # owed: 3,000 체납처분비 + 40,000 + 1,200 가산금 + 960 중가산금
    arrears.record_payment(db_session, rid, 43_500, month(2), "bank:1", SYSTEM)
    assert heads(db_session, rid) == {SURCHARGE: 700, MONTHLY_SURCHARGE: 960}
    arrears.record_payment(db_session, rid, 1_000, month(2), "bank:2", SYSTEM)
    assert heads(db_session, rid) == {MONTHLY_SURCHARGE: 660}
    arrears.record_payment(db_session, rid, 660, month(2), "bank:3", SYSTEM)
    assert ledger.balance(db_session, rid) == 0
    assert receivable.status == ledger.SETTLED


def test_paying_part_of_the_principal_lowers_the_base_of_later_monthly_surcharges(db_session):
    rid = imposed(db_session)
    advance(db_session, month(1) + timedelta(days=10))
    arrears.record_payment(db_session, rid, 20_000, month(1) + timedelta(days=10), "bank:1", SYSTEM)
    advance(db_session, month(3))
    monthly = [amount for source, amount, _ in surcharges(db_session, rid) if source.startswith("monthly")]
    assert monthly == [480, 240, 240]  # month 2 had 20,000 unpaid throughout
    assert heads(db_session, rid) == {PRINCIPAL: 20_000, SURCHARGE: 1_200, MONTHLY_SURCHARGE: 960}


def test_a_reversed_payment_reopens_the_receivable_and_surcharges_accrue_again(db_session):
    rid = imposed(db_session)
    advance(db_session, month(1))
    arrears.record_payment(db_session, rid, 41_680, month(1), "bank:1", SYSTEM)
    receivable = db_session.get(ledger.Receivable, rid)
    assert receivable.status == ledger.SETTLED
    advance(db_session, month(2) + timedelta(days=1))
    arrears.reverse_payment(db_session, rid, "bank:1", month(2) + timedelta(days=1), SYSTEM)
    assert receivable.status == ledger.OPEN
    with pytest.raises(InvalidTransition):
        arrears.reverse_payment(db_session, rid, "bank:1", month(2) + timedelta(days=1), SYSTEM)
    with pytest.raises(NotFound):
        arrears.reverse_payment(db_session, rid, "bank:none", month(2) + timedelta(days=1), SYSTEM)
    advance(db_session, month(3))
    # month 2 was paid throughout (nothing unpaid, skipped); month 3 runs on the principal unpaid again
    assert ledger.balance(db_session, rid) == 41_680 + 480


# --- holds: 분납, 징수유예, default ---------------------------------------------------------------------------------


def relief(rid: int, kind: str, starts_on: date, **kw) -> GrantRelief:
    return GrantRelief(receivable_id=rid, kind=kind, starts_on=starts_on, basis="시행령 §7의2", **kw)


def test_installments_granted_before_the_due_date_pause_both_surcharges_while_kept(db_session):
    rid = imposed(db_session)
    advance(db_session, DUE - timedelta(days=5))
    plan = tuple(Installment(month(n) - timedelta(days=1), 10_000) for n in range(0 + 1, 5))
    arrears.grant_relief(
        db_session, EVERYWHERE, relief(rid, arrears.INSTALLMENT, DUE - timedelta(days=5), installments=plan), SYSTEM
    )
    for n in range(1, 5):
        advance(db_session, month(n) - timedelta(days=1))
        arrears.record_payment(db_session, rid, 10_000, month(n) - timedelta(days=1), f"inst:{n}", SYSTEM)
    advance(db_session, month(8))
    assert surcharges(db_session, rid) == []
    assert ledger.balance(db_session, rid) == 0
    (hold,) = [h for h, _ in arrears.holds_of(db_session, EVERYWHERE, rid)]
    assert (hold.end_reason, hold.ended_on) == ("paid", month(4))  # kept to the end: the plan is done


def test_a_missed_installment_reinstates_surcharges_from_the_day_after_but_never_for_months_under_the_plan(
    db_session,
):
    rid = imposed(db_session)
    advance(db_session, DUE - timedelta(days=5))
    plan = (Installment(month(1) - timedelta(days=1), 10_000), Installment(month(2) - timedelta(days=1), 30_000))
    hold = arrears.grant_relief(
        db_session, EVERYWHERE, relief(rid, arrears.INSTALLMENT, DUE - timedelta(days=5), installments=plan), SYSTEM
    )
    advance(db_session, month(1) - timedelta(days=1))
    arrears.record_payment(db_session, rid, 10_000, month(1) - timedelta(days=1), "inst:1", SYSTEM)
    advance(db_session, month(4))  # the second installment (due month(2) − 1) was never paid
    assert hold.end_reason == arrears.DEFAULTED and hold.ended_on == month(2)
    # 가산금 on the default day on the 30,000 unpaid; months 1–2 were under the plan; months 3 and 4 are charged
    assert surcharges(db_session, rid) == [
        ("surcharge:*@2017-06-03", 900, month(2)),
        ("monthly_surcharge:*@2008-06-22", 360, month(3)),
        ("monthly_surcharge:*@2008-06-22", 360, month(4)),
    ]
    with pytest.raises(InvalidTransition):  # no new relief after a default (시행령 §7의4③)
        arrears.grant_relief(db_session, EVERYWHERE, relief(rid, arrears.DEFERRAL, month(4), ends_on=month(6)), SYSTEM)


def test_a_deferral_skips_every_month_it_touches_and_surcharges_resume_after_it_ends(db_session):
    rid = imposed(db_session)
    advance(db_session, month(2))  # 가산금 + 2 months
    start = month(2) + timedelta(days=3)
    advance(db_session, start)
    arrears.grant_relief(
        db_session, EVERYWHERE, relief(rid, arrears.DEFERRAL, start, ends_on=month(5) + timedelta(days=2)), SYSTEM
    )
    advance(db_session, month(8))
    months = [on for source, _, on in surcharges(db_session, rid) if source.startswith("monthly")]
    # months 3–6 each had a day under the deferral: skipped; 7 and 8 charged
    assert months == [month(1), month(2), month(7), month(8)]
    skipped = db_session.scalars(
        select(arrears.ArrearsPosting.month_no).where(
            arrears.ArrearsPosting.receivable_id == rid, arrears.ArrearsPosting.skipped == "hold"
        )
    ).all()
    assert sorted(skipped) == [3, 4, 5, 6]


def test_cancelling_a_deferral_reinstates_surcharges_from_that_day(db_session):
    rid = imposed(db_session)
    advance(db_session, FIRST_OVERDUE)
    hold = arrears.grant_relief(
        db_session,
        EVERYWHERE,
        relief(rid, arrears.DEFERRAL, FIRST_OVERDUE + timedelta(days=1), ends_on=month(9)),
        SYSTEM,
    )
    advance(db_session, month(2) + timedelta(days=1))
    arrears.end_relief(db_session, EVERYWHERE, hold.id, month(2) + timedelta(days=1), arrears.CANCELLED, SYSTEM)
    advance(db_session, month(4))
    months = [on for source, _, on in surcharges(db_session, rid) if source.startswith("monthly")]
    assert months == [month(4)]  # month 3 had days under the deferral
    # cancelled for changed circumstances: new relief may be granted
    arrears.grant_relief(db_session, EVERYWHERE, relief(rid, arrears.DEFERRAL, month(4), ends_on=month(5)), SYSTEM)


def test_relief_cannot_start_before_surcharges_already_decided_nor_overlap_another(db_session):
    rid = imposed(db_session)
    advance(db_session, month(2))
    with pytest.raises(InvalidTransition):
        arrears.grant_relief(db_session, EVERYWHERE, relief(rid, arrears.DEFERRAL, month(1), ends_on=month(4)), SYSTEM)
    arrears.grant_relief(db_session, EVERYWHERE, relief(rid, arrears.DEFERRAL, month(2), ends_on=month(4)), SYSTEM)
    with pytest.raises(InvalidTransition):
        arrears.grant_relief(db_session, EVERYWHERE, relief(rid, arrears.DEFERRAL, month(3), ends_on=month(6)), SYSTEM)
    with pytest.raises(InvalidInput):
        arrears.grant_relief(db_session, EVERYWHERE, relief(rid, arrears.INSTALLMENT, month(5)), SYSTEM)


def test_relief_on_a_receivable_outside_the_callers_scope_is_not_found(db_session):
    rid = imposed(db_session)
    with pytest.raises(NotFound):
        arrears.grant_relief(
            db_session, Scope.only("11140"), relief(rid, arrears.DEFERRAL, DUE, ends_on=month(1)), SYSTEM
        )


# --- the hooks for imposition and objection -------------------------------------------------------------------------


def test_starting_collection_twice_with_the_same_due_date_is_the_same_clock_and_another_is_refused(db_session):
    rid = imposed(db_session)
    assert arrears.start_collection(db_session, rid, DUE).due_date == DUE
    with pytest.raises(InvalidTransition):
        arrears.start_collection(db_session, rid, DUE + timedelta(days=1))
    with pytest.raises(NotFound):
        arrears.start_collection(db_session, 2**62, DUE)
    with pytest.raises(InvalidInput):
        other = ledger.open_receivable(
            db_session, jurisdiction="11110", revenue_item="41", notice_id=None, actor=SYSTEM
        )
        arrears.start_collection(db_session, other.id, DUE, surcharge_rule="whatever")


def test_an_objection_suspends_collection_and_resuming_skips_the_months_in_between(db_session):
    rid = imposed(db_session)
    advance(db_session, month(1))
    arrears.suspend(db_session, rid, month(1) + timedelta(days=1), SYSTEM)
    with pytest.raises(InvalidTransition):
        arrears.suspend(db_session, rid, month(1) + timedelta(days=2), SYSTEM)
    advance(db_session, month(4) + timedelta(days=10))
    assert ledger.balance(db_session, rid) == 41_680  # nothing accrues while the imposition has no effect
    arrears.resume(db_session, rid, month(4) + timedelta(days=10), SYSTEM)
    advance(db_session, month(6))
    months = [on for source, _, on in surcharges(db_session, rid) if source.startswith("monthly")]
    assert months == [month(1), month(6)]  # 2–5 touched the objection


def test_resuming_with_a_new_due_date_restarts_the_clock_when_nothing_was_decided(db_session):
    rid = imposed(db_session)
    advance(db_session, DUE - timedelta(days=3))
    arrears.suspend(db_session, rid, DUE - timedelta(days=3), SYSTEM)
    new_due = DUE + timedelta(days=100)
    advance(db_session, DUE + timedelta(days=40))
    arrears.resume(db_session, rid, DUE + timedelta(days=40), SYSTEM, due_date=new_due)
    advance(db_session, month(1, new_due))
    assert surcharges(db_session, rid) == [
        ("surcharge:*@2017-06-03", 1_200, new_due + timedelta(days=1)),
        ("monthly_surcharge:*@2008-06-22", 480, month(1, new_due)),
    ]


def test_stopped_collection_accrues_nothing_more(db_session):
    rid = imposed(db_session)
    advance(db_session, FIRST_OVERDUE)
    arrears.stop_collection(db_session, rid, FIRST_OVERDUE, SYSTEM)
    advance(db_session, month(6))
    assert ledger.balance(db_session, rid) == 41_200
    with pytest.raises(InvalidTransition):
        arrears.resume(db_session, rid, month(6), SYSTEM)


# --- the hotlist ----------------------------------------------------------------------------------------------------

ISSUED = datetime(2026, 11, 25, 5, 0, tzinfo=UTC)
CIPHER = PiiCipher(TEST_PII_KEY, TEST_LOOKUP_KEY)


@pytest.fixture
def parking(db_session):
    """``parking(plate, amount, due)`` → receivable id of an imposed parking fine on ``plate``."""
    device, _ = register_device(
        db_session, RegisterDevice("11110", "체납 시험 단말"), SYSTEM, ISSUED, timedelta(hours=1)
    )
    officer = db_session.scalar(select(User).where(User.login == "officer.11110.1"))
    counter = iter(range(9_000_000, 9_999_999))

    def make(plate: str, amount: int, due: date = DUE) -> int:
        cmd = notices.IssueNotice(
            notice_no=protocol.format_notice_no("11110", "26", next(counter)),
            event_id=str(uuid.uuid4()),
            device_id=device.id,
            jurisdiction="11110",
            kind="parking",
            violation_code="P01",
            schedule_key="P01:car:-@2008-06-22",
            amount=amount,
            reduced_amount=amount * 4 // 5,
            opinion_deadline=date(2026, 12, 9),
            place_address="서울특별시 종로구 종로 1",
            observed_at=ISSUED,
            issued_at=ISSUED,
            qr="http://localhost/p/x",
            officer_id=officer.id,
            vehicle_plate=plate,
            vehicle_type="car",
        )
        notice = notices.issue_notice(db_session, cmd, Actor(device_id=device.id), ISSUED, CIPHER)
        assert notice is not None
        receivable = notices.receivable_of(db_session, notice.id)
        assert receivable is not None
        arrears.start_collection(db_session, receivable.id, due)
        return receivable.id

    return make


def feed(db_session, plate: str) -> list[tuple[str, str, dict | None]]:
    rows = db_session.scalars(
        select(ChangeLog).where(ChangeLog.entity == "hotlist", ChangeLog.key == plate).order_by(ChangeLog.id)
    )
    return [(row.scope, row.op, row.data) for row in rows]


def test_a_plate_owing_300000_with_surcharges_more_than_60_days_overdue_is_pushed_to_the_district(db_session, parking):
    parking("12가3456", 200_000)
    parking("12가3456", 100_000)
    parking("34나5678", 100_000)  # too little
    advance(db_session, DUE + timedelta(days=60))
    assert arrears.refresh_hotlist(db_session, "11110", DUE + timedelta(days=60), SYSTEM).listed == []
    advance(db_session, DUE + timedelta(days=61))
    report = arrears.refresh_hotlist(db_session, "11110", DUE + timedelta(days=61), SYSTEM)
    assert report.listed == ["12가3456"]
    owed = 309_000 + 2 * 3_600  # principal + 3% + two months of 1.2%
    assert feed(db_session, "12가3456") == [
        ("j:11110", "upsert", {"plate": "12가3456", "reason": "과태료 체납 2건 (번호판 영치 대상)", "amount_due": owed})
    ]
    assert feed(db_session, "34나5678") == []
    # nothing changed: nothing recorded again
    again = arrears.refresh_hotlist(db_session, "11110", DUE + timedelta(days=61), SYSTEM)
    assert (again.listed, again.updated, again.removed) == ([], [], [])
    assert len(feed(db_session, "12가3456")) == 1


def test_a_plate_leaves_the_hotlist_as_soon_as_it_is_paid_and_the_devices_get_a_delete(db_session, parking):
    first = parking("12가3456", 300_000)
    second = parking("12가3456", 100_000)
    day = DUE + timedelta(days=70)
    advance(db_session, day)
    arrears.refresh_hotlist(db_session, "11110", day, SYSTEM)
    arrears.record_payment(db_session, second, 50_000, day, "bank:1", SYSTEM)
    # still over the threshold, owing less: the devices get the new amount with the payment
    assert feed(db_session, "12가3456")[-1][2]["amount_due"] == 309_000 + 7_200 + 105_400 - 50_000
    arrears.record_payment(db_session, first, 320_000, day, "bank:2", SYSTEM)
    assert [op for _, op, _ in feed(db_session, "12가3456")] == ["upsert", "upsert", "delete"]
    assert feed(db_session, "12가3456")[-1][2] is None
    assert arrears.listed(db_session, "11110") == []
    again = arrears.refresh_hotlist(db_session, "11110", day, SYSTEM)
    assert (again.listed, again.updated, again.removed) == ([], [], [])


def test_advancing_the_business_date_refreshes_the_hotlist_and_a_hold_takes_the_plate_off(db_session, parking):
    rid = parking("12가3456", 400_000)
    arrears.advance_business_date(db_session, month(3), SYSTEM)
    assert [e.plate for e in arrears.listed(db_session, "11110")] == ["12가3456"]
    arrears.grant_relief(db_session, EVERYWHERE, relief(rid, arrears.DEFERRAL, month(3), ends_on=month(6)), SYSTEM)
    arrears.advance_business_date(db_session, month(3) + timedelta(days=1), SYSTEM)
    assert arrears.listed(db_session, "11110") == []
    assert [op for _, op, _ in feed(db_session, "12가3456")] == ["upsert", "delete"]


# --- concurrency ----------------------------------------------------------------------------------------------------


def test_two_workers_running_the_month_step_at_once_decide_each_month_once(clone_db):
    engine = create_engine(clone_db())
    try:
        with Session(engine) as session:
            rids = [imposed(session) for _ in range(5)]
            arrears.business_date(session)
            session.execute(text("UPDATE business_calendar SET business_date = :d"), {"d": month(3)})
            session.commit()
        barrier = threading.Barrier(2)
        failures: list[BaseException] = []

        def worker() -> None:
            try:
                with Session(engine) as session:
                    barrier.wait()
                    arrears.run_month_step(session, month(3), SYSTEM)
                    session.commit()
            except BaseException as exc:  # reported below, in the test's thread
                failures.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        with Session(engine) as session:
            for rid in rids:
                assert ledger.balance(session, rid) == 41_200 + 3 * 480
                count = session.scalar(
                    select(func.count())
                    .select_from(arrears.ArrearsPosting)
                    .where(arrears.ArrearsPosting.receivable_id == rid)
                )
                assert count == 4
    finally:
        engine.dispose()


def test_a_gateway_payment_of_an_overdue_plate_catches_up_first_and_takes_the_plate_off_the_hotlist(
    db_session, parking
):
    rid = parking("56다7890", 400_000)
    day = DUE + timedelta(days=70)
    advance(db_session, day)
    arrears.refresh_hotlist(db_session, "11110", day, SYSTEM)
    notice_no = db_session.scalar(
        select(notices.Notice.notice_no)
        .join(ledger.Receivable, ledger.Receivable.notice_id == notices.Notice.id)
        .where(ledger.Receivable.id == rid)
    )
    later = day + timedelta(days=40)  # a month's surcharge fell due since the business date: caught up first
    owed = 400_000 + 12_000 + 3 * 4_800
    at = datetime(later.year, later.month, later.day, 3, 0, tzinfo=UTC)
    payments.post_payment(
        db_session, payments.ReceivedPayment("sandbox", "t-56", "qr", notice_no, owed, at), SYSTEM, at
    )

    assert ledger.balance(db_session, rid) == 0
    assert [op for _, op, _ in feed(db_session, "56다7890")] == ["upsert", "delete"]
