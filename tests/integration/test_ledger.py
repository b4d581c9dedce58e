"""What the database itself guarantees about money and evidence (DESIGN.md §4, §6): ledger entries and final sync
events are immutable, fine schedule rows never overlap, balances are sums of entries, and demo data is idempotent.

Every refusal is attempted inside a savepoint (``begin_nested``), so the rolled-back test transaction stays usable.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import psycopg.errors
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from models import ledger
from models.base import Actor, utcnow
from models.catalog import (
    DefineFineRow,
    DefineViolationCode,
    FineSchedule,
    ViolationCode,
    Zone,
    ensure_fine_row,
    upsert_violation_code,
)
from models.demo import DEMO_DEVICES, DemoRefused, demo_device_id, load_demo
from models.devices import Device
from models.feed import ChangeLog
from models.jurisdictions import Jurisdiction
from models.ledger import Post
from models.sync_store import SyncEvent
from models.users import User

SYSTEM = Actor.system()
TODAY = date(2026, 11, 25)


def refused(session: Session, sql: str, **params: object) -> DBAPIError:
    """Run ``sql`` in a savepoint and return the database's refusal (the test fails if there is none)."""
    with pytest.raises(DBAPIError) as caught:
        with session.begin_nested():
            session.execute(text(sql), params)
    return caught.value


def new_receivable(session: Session) -> ledger.Receivable:
    return ledger.open_receivable(session, jurisdiction="11110", revenue_item="41", notice_id=None, actor=SYSTEM)


def charge(session: Session, receivable: ledger.Receivable, amount: int = 40_000) -> ledger.LedgerEntry:
    return ledger.post(session, receivable, Post(ledger.PRINCIPAL, "charge", amount, TODAY, "test"), SYSTEM)


# --- ledger entries are append-only ---------------------------------------------------------------------------------


def test_updating_a_ledger_entry_is_refused_by_the_database(db_session):
    entry = charge(db_session, new_receivable(db_session))
    error = refused(db_session, "UPDATE ledger_entries SET amount = 0 WHERE id = :id", id=entry.id)
    assert isinstance(error.orig, psycopg.errors.RestrictViolation)
    assert "append-only" in str(error.orig)
    assert db_session.scalar(text("SELECT amount FROM ledger_entries WHERE id = :id"), {"id": entry.id}) == 40_000


def test_updating_every_ledger_entry_at_once_is_refused_too(db_session):
    charge(db_session, new_receivable(db_session))
    error = refused(db_session, "UPDATE ledger_entries SET memo = 'edited'")
    assert isinstance(error.orig, psycopg.errors.RestrictViolation)


def test_deleting_a_ledger_entry_is_refused_by_the_database(db_session):
    entry = charge(db_session, new_receivable(db_session))
    error = refused(db_session, "DELETE FROM ledger_entries WHERE id = :id", id=entry.id)
    assert isinstance(error.orig, psycopg.errors.RestrictViolation)
    assert db_session.scalar(text("SELECT count(*) FROM ledger_entries WHERE id = :id"), {"id": entry.id}) == 1


def test_truncating_the_ledger_is_refused_by_the_database(db_session):
    charge(db_session, new_receivable(db_session))
    error = refused(db_session, "TRUNCATE ledger_entries")
    assert isinstance(error.orig, psycopg.errors.RestrictViolation)


def test_truncating_the_receivables_with_cascade_cannot_empty_the_ledger_either(db_session):
    charge(db_session, new_receivable(db_session))
    error = refused(db_session, "TRUNCATE receivables CASCADE")
    assert isinstance(error.orig, psycopg.errors.RestrictViolation)


def test_an_orm_change_to_a_posted_entry_is_refused_at_flush(db_session):
    entry = charge(db_session, new_receivable(db_session))
    with pytest.raises(DBAPIError) as caught:
        with db_session.begin_nested():
            entry.amount = 1
            db_session.flush()
    assert isinstance(caught.value.orig, psycopg.errors.RestrictViolation)


# --- balances -------------------------------------------------------------------------------------------------------


def test_the_balance_is_the_sum_of_the_entries(db_session):
    receivable = new_receivable(db_session)
    posts = [
        Post(ledger.PRINCIPAL, "charge", 40_000, TODAY),
        Post(ledger.PRINCIPAL, "reduction", -8_000, TODAY),
        Post(ledger.SURCHARGE, "surcharge", 1_200, TODAY + timedelta(days=60)),
        Post(ledger.PRINCIPAL, "payment", -10_000, TODAY + timedelta(days=61)),
    ]
    for entry in posts:
        ledger.post(db_session, receivable, entry, SYSTEM)
    assert ledger.balance(db_session, receivable.id) == 40_000 - 8_000 + 1_200 - 10_000
    assert [e.amount for e in ledger.entries(db_session, receivable.id)] == [p.amount for p in posts]
    stored = db_session.scalar(
        select(func.sum(ledger.LedgerEntry.amount)).where(ledger.LedgerEntry.receivable_id == receivable.id)
    )
    assert ledger.balance(db_session, receivable.id) == stored


def test_a_receivable_without_entries_owes_nothing(db_session):
    assert ledger.balance(db_session, new_receivable(db_session).id) == 0


def test_entries_record_who_posted_them(db_session):
    device_id = demo_device_id(*DEMO_DEVICES[0])
    actor = Actor(device_id=device_id, address="10.0.0.7", label="device")
    receivable = new_receivable(db_session)
    entry = ledger.post(db_session, receivable, Post(ledger.PRINCIPAL, "charge", 40_000, TODAY, "event:e-1"), actor)
    assert (entry.actor_device_id, entry.actor_address, entry.source) == (device_id, "10.0.0.7", "event:e-1")


def test_an_unknown_entry_kind_is_refused(db_session):
    with pytest.raises(ValueError):
        ledger.post(db_session, new_receivable(db_session), Post(ledger.PRINCIPAL, "gift", 1, TODAY), SYSTEM)


def test_cancelling_a_receivable_reverses_every_head_to_zero(db_session):
    receivable = new_receivable(db_session)
    for entry in (
        Post(ledger.PRINCIPAL, "charge", 40_000, TODAY),
        Post(ledger.SURCHARGE, "surcharge", 1_200, TODAY),
        Post(ledger.PRINCIPAL, "payment", -10_000, TODAY),
    ):
        ledger.post(db_session, receivable, entry, SYSTEM)
    before = [e.id for e in ledger.entries(db_session, receivable.id)]

    ledger.cancel_receivable(db_session, receivable, TODAY, "void:test", SYSTEM, "void:wrong_vehicle")

    assert ledger.balance(db_session, receivable.id) == 0
    assert receivable.status == ledger.CANCELLED
    entries = ledger.entries(db_session, receivable.id)
    assert [e.id for e in entries[: len(before)]] == before  # nothing was rewritten
    reversals = {(e.kind, e.amount, e.memo) for e in entries[len(before) :]}
    assert reversals == {("reversal", -30_000, "void:wrong_vehicle"), ("reversal", -1_200, "void:wrong_vehicle")}
    heads = dict(
        db_session.execute(
            select(ledger.ChargeHead.kind, func.sum(ledger.LedgerEntry.amount))
            .join(ledger.LedgerEntry, ledger.LedgerEntry.charge_head_id == ledger.ChargeHead.id)
            .where(ledger.ChargeHead.receivable_id == receivable.id)
            .group_by(ledger.ChargeHead.kind)
        ).all()
    )
    assert heads == {ledger.PRINCIPAL: 0, ledger.SURCHARGE: 0}


def test_cancelling_a_settled_head_posts_no_empty_reversal(db_session):
    receivable = new_receivable(db_session)
    charge(db_session, receivable, 40_000)
    ledger.post(db_session, receivable, Post(ledger.PRINCIPAL, "payment", -40_000, TODAY), SYSTEM)
    ledger.cancel_receivable(db_session, receivable, TODAY, "void:test", SYSTEM, "void")
    assert [e.kind for e in ledger.entries(db_session, receivable.id)] == ["charge", "payment"]
    assert ledger.balance(db_session, receivable.id) == 0


# --- sync events: a final fate is fixed -----------------------------------------------------------------------------


def sync_event(session: Session, status: str, seq: int) -> SyncEvent:
    row = SyncEvent(
        event_id=str(uuid.uuid4()),
        device_id=demo_device_id(*DEMO_DEVICES[0]),
        seq=seq,
        type="notice.voided",
        notice_no="111102600000012",
        content_hash="ab" * 32,
        payload={"seq": seq},
        status=status,
        result={"status": status},
        is_link=True,
        batch_id=str(uuid.uuid4()),
    )
    session.add(row)
    session.flush()
    return row


@pytest.mark.parametrize("status", ["accepted", "rejected", "conflict"])
def test_a_final_sync_event_cannot_be_updated(db_session, status):
    row = sync_event(db_session, status, 1)
    error = refused(db_session, "UPDATE sync_events SET status = 'held' WHERE id = :id", id=row.id)
    assert isinstance(error.orig, psycopg.errors.RestrictViolation)
    error = refused(db_session, "UPDATE sync_events SET result = '{}'::jsonb WHERE id = :id", id=row.id)
    assert isinstance(error.orig, psycopg.errors.RestrictViolation)


@pytest.mark.parametrize("status", ["accepted", "held"])
def test_a_sync_event_cannot_be_deleted_whatever_its_status(db_session, status):
    row = sync_event(db_session, status, 1)
    error = refused(db_session, "DELETE FROM sync_events WHERE id = :id", id=row.id)
    assert isinstance(error.orig, psycopg.errors.RestrictViolation)


def test_the_sync_events_cannot_be_truncated(db_session):
    sync_event(db_session, "accepted", 1)
    error = refused(db_session, "TRUNCATE sync_events")
    assert isinstance(error.orig, psycopg.errors.RestrictViolation)


def test_a_held_sync_event_is_moved_to_a_final_status_once(db_session):
    row = sync_event(db_session, "held", 3)
    with db_session.begin_nested():
        db_session.execute(
            text(
                "UPDATE sync_events SET status = 'accepted', result = '{\"status\": \"accepted\"}'::jsonb, "
                "decided_at = now() WHERE id = :id"
            ),
            {"id": row.id},
        )
    assert db_session.scalar(text("SELECT status FROM sync_events WHERE id = :id"), {"id": row.id}) == "accepted"
    error = refused(db_session, "UPDATE sync_events SET status = 'rejected' WHERE id = :id", id=row.id)
    assert isinstance(error.orig, psycopg.errors.RestrictViolation)


@pytest.mark.parametrize("change", ["seq = seq + 1", "content_hash = repeat('cd', 32)", "event_id = 'another-event'"])
def test_a_held_sync_event_keeps_its_identity_and_content_hash(db_session, change):
    row = sync_event(db_session, "held", 4)
    error = refused(db_session, f"UPDATE sync_events SET {change} WHERE id = :id", id=row.id)
    assert isinstance(error.orig, psycopg.errors.RestrictViolation)


# --- the fine schedule never overlaps -------------------------------------------------------------------------------


@pytest.fixture
def code_t99(db_session: Session) -> str:
    upsert_violation_code(db_session, DefineViolationCode("T99", "시험 위반", "parking", "41"))
    ensure_fine_row(
        db_session, DefineFineRow("T99", 40_000, date(2020, 1, 1), vehicle_type="car", valid_to=date(2021, 5, 11))
    )
    ensure_fine_row(db_session, DefineFineRow("T99", 10_000, date(2020, 1, 1), valid_to=date(2021, 5, 11)))
    return "T99"


def add_row(session: Session, **fields: object) -> FineSchedule:
    values = {"code": "T99", "amount": 50_000, "reduction_rate": "0.20", "rounding_unit": 10, "opinion_days": 14}
    row = FineSchedule(**{**values, **fields})
    session.add(row)
    session.flush()
    return row


@pytest.mark.parametrize(
    ("valid_from", "valid_to"),
    [
        (date(2021, 5, 10), None),  # starts on the last day of the existing row
        (date(2019, 1, 1), date(2020, 1, 2)),  # ends on its first day
        (date(2020, 6, 1), date(2020, 7, 1)),  # inside it
        (date(2019, 1, 1), None),  # around it
        (date(2020, 1, 1), date(2021, 5, 11)),  # the same range
    ],
)
def test_an_overlapping_schedule_row_for_the_same_code_vehicle_and_zone_is_refused(
    db_session, code_t99, valid_from, valid_to
):
    with pytest.raises(IntegrityError) as caught:
        with db_session.begin_nested():
            add_row(db_session, vehicle_type="car", valid_from=valid_from, valid_to=valid_to)
    assert isinstance(caught.value.orig, psycopg.errors.ExclusionViolation)


def test_rows_without_vehicle_type_or_zone_still_may_not_overlap(db_session, code_t99):
    with pytest.raises(IntegrityError):
        with db_session.begin_nested():
            add_row(db_session, valid_from=date(2021, 1, 1), valid_to=None)


@pytest.mark.parametrize(
    ("valid_from", "valid_to"),
    [(date(2021, 5, 11), None), (date(2019, 1, 1), date(2020, 1, 1)), (date(2021, 5, 11), date(2022, 1, 1))],
)
def test_an_adjacent_schedule_row_is_accepted(db_session, code_t99, valid_from, valid_to):
    with db_session.begin_nested():
        add_row(db_session, vehicle_type="car", valid_from=valid_from, valid_to=valid_to)


@pytest.mark.parametrize(
    "fields",
    [
        {"vehicle_type": "van"},
        {"vehicle_type": "car", "zone": "Z11110-001"},
        {"zone": "Z11110-001"},
    ],
)
def test_an_overlapping_row_for_another_vehicle_type_or_zone_is_accepted(db_session, code_t99, fields):
    with db_session.begin_nested():
        add_row(db_session, valid_from=date(2020, 6, 1), valid_to=None, **fields)


def test_the_p03_school_zone_raise_is_two_adjacent_rows_in_the_demo_data(db_session):
    rows = db_session.scalars(
        select(FineSchedule)
        .where(FineSchedule.code == "P03", FineSchedule.vehicle_type == "car")
        .order_by(FineSchedule.valid_from)
    ).all()
    assert [(r.amount, r.valid_from, r.valid_to) for r in rows] == [
        (80_000, date(2008, 6, 22), date(2021, 5, 11)),
        (120_000, date(2021, 5, 11), None),
    ]


@pytest.mark.parametrize(
    "fields",
    [
        {"valid_from": date(2021, 1, 1), "valid_to": date(2021, 1, 1)},  # empty range
        {"valid_from": date(2021, 1, 1), "valid_to": date(2020, 1, 1)},
        {"valid_from": date(2030, 1, 1), "reduction_rate": "1.5"},
        {"valid_from": date(2030, 1, 1), "reduction_rate": "-0.1"},
        {"valid_from": date(2030, 1, 1), "rounding_unit": 0},
    ],
)
def test_a_schedule_row_with_an_impossible_range_rate_or_unit_is_refused(db_session, code_t99, fields):
    with pytest.raises(IntegrityError) as caught:
        with db_session.begin_nested():
            add_row(db_session, vehicle_type="van", **fields)
    assert isinstance(caught.value.orig, psycopg.errors.CheckViolation)


# --- demo data ------------------------------------------------------------------------------------------------------

COUNTED = (User, ViolationCode, FineSchedule, Zone, Jurisdiction, Device, ledger.Receivable, ChangeLog)


def counts(session: Session) -> dict[str, int]:
    return {model.__tablename__: session.scalar(select(func.count()).select_from(model)) for model in COUNTED}


def demo(session: Session, *, production: bool = False):
    return load_demo(session, password="jingsu-demo", now=utcnow(), production=production, code_ttl=timedelta(hours=24))


def test_loading_the_demo_data_again_changes_no_counts_and_records_no_change(db_session):
    before = counts(db_session)  # the template database already holds the demo data once
    assert before["users"] >= 5 and before["violation_codes"] == 6 and before["fine_schedules"] == 13
    demo(db_session)
    assert counts(db_session) == before
    demo(db_session)
    assert counts(db_session) == before


def test_reloading_the_demo_data_gives_the_demo_devices_fresh_enrollment_codes(db_session):
    first = {d.device_id: d.enrollment_code for d in demo(db_session)}
    second = {d.device_id: d.enrollment_code for d in demo(db_session)}
    assert first.keys() == second.keys() == {demo_device_id(*d) for d in DEMO_DEVICES}
    assert all(first[k] != second[k] for k in first)


def test_demo_data_is_refused_in_production(db_session):
    before = counts(db_session)
    with pytest.raises(DemoRefused):
        demo(db_session, production=True)
    assert counts(db_session) == before
