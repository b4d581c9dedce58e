"""Properties of the arrears engine (DESIGN.md §4), for any sequence of payments, reversals, reliefs and business-date
steps on a fine:

- the balance is the sum of the entries, and of the charge heads;
- nothing the law forbids is ever negative: no surcharge entry, no 가산금 or 중가산금 head balance;
- at most one decision per (receivable, month), never more than the cap, each month at most 1.2% of the principal;
- stepping day by day and catching up only when written to (replaying in date order) give the same entries.

Each example runs twice inside savepoints of the rolled-back test transaction, and compares.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from models import arrears, ledger
from models.arrears import GrantRelief, Installment
from models.base import Actor, Scope
from models.errors import DomainError
from models.ledger import MONTHLY_SURCHARGE, PRINCIPAL, SURCHARGE, Post

SYSTEM = Actor.system()
DUE = date(2030, 1, 31)


@dataclass(frozen=True)
class Op:
    after_days: int  # days after the previous operation
    kind: str  # pay, reverse, relief (징수유예), plan (분납), step
    amount: int = 0  # pay: won; reverse: which earlier payment; relief: its length in days; plan: days between


ops = st.lists(
    st.one_of(
        st.builds(Op, st.integers(0, 120), st.just("pay"), st.integers(1, 80_000)),
        st.builds(Op, st.integers(0, 120), st.just("reverse"), st.integers(0, 5)),
        st.builds(Op, st.integers(0, 120), st.just("relief"), st.integers(0, 200)),
        st.builds(Op, st.integers(0, 120), st.just("plan"), st.integers(1, 60)),
        st.builds(Op, st.integers(0, 400), st.just("step")),
    ),
    max_size=8,
)


def run(session, principal: int, plan: list[Op], *, step_daily: bool) -> tuple[list[tuple], list[str]]:
    """Apply ``plan`` to a new fine; ``step_daily``: advance the business date (running the steps) before every
    operation; otherwise only set it, so a receivable is caught up only when written to and at the end."""
    receivable = ledger.open_receivable(
        session,
        jurisdiction="11110",
        revenue_item="41",
        notice_id=None,
        actor=SYSTEM,
        principal=Post(PRINCIPAL, "charge", principal, DUE - timedelta(days=60), "test"),
    )
    rid = receivable.id
    arrears.start_collection(session, rid, DUE, on=DUE - timedelta(days=60))
    arrears.business_date(session)

    def move_to(day: date) -> None:
        if step_daily:
            arrears.advance_business_date(session, day, SYSTEM, refresh=False)
        else:
            session.execute(text("UPDATE business_calendar SET business_date = :d"), {"d": day})

    day = DUE - timedelta(days=10)
    payments: list[str] = []
    outcomes: list[str] = []
    for n, op in enumerate(plan):
        day += timedelta(days=op.after_days)
        move_to(day)
        try:
            with session.begin_nested():
                if op.kind == "pay":
                    source = f"pay:{n}"
                    arrears.record_payment(session, rid, op.amount, day, source, SYSTEM)
                    payments.append(source)
                elif op.kind == "reverse" and payments:
                    arrears.reverse_payment(session, rid, payments[op.amount % len(payments)], day, SYSTEM)
                elif op.kind == "relief":
                    cmd = GrantRelief(rid, arrears.DEFERRAL, day, ends_on=day + timedelta(days=op.amount))
                    arrears.grant_relief(session, Scope.everything(), cmd, SYSTEM)
                elif op.kind == "plan":  # 분납 in two halves, op.amount days apart: later payments keep or miss it
                    half = max(1, principal // 2)
                    steps = (Installment(day + timedelta(days=op.amount), half),
                             Installment(day + timedelta(days=2 * op.amount), half))  # fmt: skip
                    cmd = GrantRelief(rid, arrears.INSTALLMENT, day, installments=steps)
                    arrears.grant_relief(session, Scope.everything(), cmd, SYSTEM)
            outcomes.append(f"{op.kind}: ok")
        except DomainError as exc:
            outcomes.append(f"{op.kind}: {exc.code}")
    end = day + timedelta(days=30)
    if step_daily:
        arrears.advance_business_date(session, end, SYSTEM, refresh=False)
    else:
        move_to(end)
        arrears.run_daily_step(session, end, SYSTEM)
        arrears.run_month_step(session, end, SYSTEM)
    check_invariants(session, rid, principal)
    holds = [
        (h.kind, h.starts_on, h.ended_on, h.end_reason) for h, _ in arrears.holds_of(session, Scope.everything(), rid)
    ]
    outcomes += [repr(h) for h in holds]
    entries = [
        (e.charge_head_id and head_kind(session, e.charge_head_id), e.kind, e.amount, e.business_date, e.source)
        for e in ledger.entries(session, rid)
    ]
    return sorted(entries, key=repr), outcomes


def head_kind(session, head_id: int) -> str:
    return session.scalar(select(ledger.ChargeHead.kind).where(ledger.ChargeHead.id == head_id))


def check_invariants(session, rid: int, principal: int) -> None:
    entries = ledger.entries(session, rid)
    heads = arrears.heads_of(session, rid)
    assert ledger.balance(session, rid) == sum(e.amount for e in entries) == sum(heads.values())
    for entry in entries:
        if entry.kind == "surcharge":
            assert entry.amount > 0
    assert heads.get(SURCHARGE, 0) >= 0
    assert heads.get(MONTHLY_SURCHARGE, 0) >= 0
    postings = list(session.scalars(select(arrears.ArrearsPosting).where(arrears.ArrearsPosting.receivable_id == rid)))
    keys = [(p.head, p.month_no) for p in postings]
    assert len(keys) == len(set(keys))
    months = [p for p in postings if p.head == MONTHLY_SURCHARGE]
    assert all(1 <= p.month_no <= 60 for p in months)
    assert all(p.amount <= principal * 12 // 1000 for p in months)
    surcharge_total = sum(p.amount for p in postings if p.head == SURCHARGE)
    assert surcharge_total <= principal * 3 // 100
    # every posted decision has exactly its entry; a skipped one none
    posted = session.scalar(
        select(func.count())
        .select_from(ledger.LedgerEntry)
        .where(ledger.LedgerEntry.receivable_id == rid, ledger.LedgerEntry.kind == "surcharge")
    )
    assert posted == sum(1 for p in postings if not p.skipped)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(principal=st.integers(1_000, 200_000), plan=ops)
def test_stepping_daily_and_replaying_in_date_order_agree_and_keep_the_ledger_lawful(db_session, principal, plan):
    savepoint = db_session.begin_nested()
    try:
        daily = run(db_session, principal, plan, step_daily=True)
    finally:
        savepoint.rollback()
    savepoint = db_session.begin_nested()
    try:
        replayed = run(db_session, principal, plan, step_daily=False)
    finally:
        savepoint.rollback()
    assert daily[1] == replayed[1]
    assert daily[0] == replayed[0]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.integers(0, 90), min_size=1, max_size=12))
def test_an_unpaid_fine_owes_the_closed_form_whatever_days_the_steps_ran_on(db_session, steps):
    savepoint = db_session.begin_nested()
    try:
        receivable = ledger.open_receivable(
            db_session,
            jurisdiction="11110",
            revenue_item="41",
            notice_id=None,
            actor=SYSTEM,
            principal=Post(PRINCIPAL, "charge", 40_000, DUE, "test"),
        )
        arrears.start_collection(db_session, receivable.id, DUE, on=DUE)
        arrears.business_date(db_session)
        day = DUE
        for gap in steps:
            day += timedelta(days=gap)
            arrears.advance_business_date(db_session, day, SYSTEM, refresh=False)
        from models.rules import arrears as closed_form
        from models.rules import load_rulebook

        expected = closed_form(40_000, DUE, day, load_rulebook(db_session)).total
        assert ledger.balance(db_session, receivable.id) == expected
    finally:
        savepoint.rollback()
