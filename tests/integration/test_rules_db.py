"""What the database guarantees about the statutory rule rows (migration 0005): every database has the statute's rows,
rows of one rule never overlap, every row carries its parameters, and a change of law is a change of data.

Every refusal is attempted inside a savepoint (``begin_nested``), so the rolled-back test transaction stays usable.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import psycopg.errors
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models.rules import (
    STATUTORY_RULES,
    RuleMissing,
    RuleRow,
    StatutoryRule,
    add_rule,
    arrears,
    enact,
    ensure_statutory_rules,
    imposition_due_date,
    load_rulebook,
    objection_timely,
    rules_in_force,
    surcharge,
)
from models.rules.rows import IMPOSITION_DUE, SURCHARGE


def without_id(row: RuleRow) -> RuleRow:
    return replace(row, id=None)


def test_the_migration_inserts_the_statutory_rows(db_session: Session):
    book = load_rulebook(db_session)
    assert sorted(map(without_id, book), key=lambda r: r.key) == sorted(STATUTORY_RULES, key=lambda r: r.key)
    assert all(row.id is not None for row in book)


def test_seeding_the_statute_again_changes_nothing(db_session: Session):
    assert ensure_statutory_rules(db_session) == []


def test_a_computation_on_loaded_rows_records_the_row_id(db_session: Session):
    book = load_rulebook(db_session)
    stored = db_session.scalar(
        select(StatutoryRule).where(StatutoryRule.rule == SURCHARGE, StatutoryRule.valid_from == date(2017, 6, 3))
    )
    assert stored is not None
    owed = arrears(40_000, date(2026, 1, 31), date(2031, 3, 1), book)
    assert owed.total == 70_000
    assert owed.surcharge is not None
    assert (owed.surcharge.rule_id, owed.surcharge.rule_key) == (stored.id, stored.key)


def test_rules_in_force_holds_only_the_rows_of_that_day(db_session: Session):
    book = rules_in_force(db_session, date(2016, 1, 1))
    assert surcharge(40_000, date(2016, 1, 1), book).amount == 2_000
    with pytest.raises(RuleMissing):
        surcharge(40_000, date(2017, 6, 3), book)
    assert {row.scope for row in book if row.rule == "hardship_reduction"} >= {"minor", "severe_disability"}


# --- no overlaps, no missing parameters -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("valid_from", "valid_to"),
    [
        (date(2026, 1, 1), None),  # inside the open-ended 3% row
        (date(2017, 6, 2), date(2017, 6, 4)),  # across the 5% → 3% change
        (date(2000, 1, 1), date(2008, 6, 23)),  # ends on the first day of the 5% row
    ],
)
def test_an_overlapping_rule_row_is_refused_by_the_database(db_session: Session, valid_from, valid_to):
    row = RuleRow(SURCHARGE, valid_from, valid_to=valid_to, rate=Decimal("0.04"), source="test")
    with pytest.raises(IntegrityError) as caught:
        with db_session.begin_nested():
            add_rule(db_session, row)
    assert isinstance(caught.value.orig, psycopg.errors.ExclusionViolation)


def test_rows_that_only_touch_do_not_overlap(db_session: Session):
    row = RuleRow(SURCHARGE, date(2000, 1, 1), valid_to=date(2008, 6, 22), rate=Decimal("0.04"), source="test")
    assert add_rule(db_session, row).id is not None


def test_the_same_rule_for_another_scope_is_not_an_overlap(db_session: Session):
    item = RuleRow(IMPOSITION_DUE, date(2020, 1, 1), scope="71", days=30, source="test ordinance")
    add_rule(db_session, item)
    book = load_rulebook(db_session)
    assert imposition_due_date(date(2026, 1, 1), "71", book).rule_key == "imposition_due:71@2020-01-01"
    assert imposition_due_date(date(2026, 1, 1), "41", book).rule_key == "imposition_due:*@2008-06-22"


@pytest.mark.parametrize(
    "sql",
    [
        # a surcharge without its rate
        "INSERT INTO statutory_rules (rule, scope, valid_from, source, confirmed) "
        "VALUES ('surcharge', 'x', '2030-01-01', 'test', true)",
        # a rule nobody computes
        "INSERT INTO statutory_rules (rule, scope, valid_from, days, source, confirmed) "
        "VALUES ('holiday', '*', '2030-01-01', 3, 'test', true)",
        # a rate above 100%
        "INSERT INTO statutory_rules (rule, scope, valid_from, rate, source, confirmed) "
        "VALUES ('surcharge', 'x', '2030-01-01', 1.5, 'test', true)",
        # an unknown combination mode
        "INSERT INTO statutory_rules (rule, scope, valid_from, mode, source, confirmed) "
        "VALUES ('reduction_combination', 'x', '2030-01-01', 'whichever', 'test', true)",
        # a row that ends before it starts
        "INSERT INTO statutory_rules (rule, scope, valid_from, valid_to, days, source, confirmed) "
        "VALUES ('objection_period', 'x', '2030-01-01', '2029-01-01', 60, 'test', true)",
    ],
)
def test_a_rule_row_without_sound_parameters_is_refused_by_the_database(db_session: Session, sql):
    with pytest.raises(IntegrityError) as caught:
        with db_session.begin_nested():
            db_session.execute(text(sql))
    assert isinstance(caught.value.orig, psycopg.errors.CheckViolation)


# --- a change of law is a change of data ----------------------------------------------------------------------------

CHANGE = date(2027, 1, 1)


def test_a_law_change_is_a_new_row_and_later_computations_use_and_record_it(db_session: Session):
    new = enact(db_session, RuleRow(SURCHARGE, CHANGE, rate=Decimal("0.02"), source="가상의 개정 (test)"))
    book = load_rulebook(db_session)

    before = surcharge(40_000, CHANGE - timedelta(days=1), book)
    after = surcharge(40_000, CHANGE, book)
    assert (before.amount, before.rule_key) == (1_200, "surcharge:*@2017-06-03")
    assert (after.amount, after.rule_key, after.rule_id) == (800, "surcharge:*@2027-01-01", new.id)

    closed = db_session.scalar(
        select(StatutoryRule).where(StatutoryRule.rule == SURCHARGE, StatutoryRule.valid_from == date(2017, 6, 3))
    )
    assert closed is not None and closed.valid_to == CHANGE


def test_a_longer_objection_period_applies_to_notices_received_from_its_first_day(db_session: Session):
    enact(db_session, RuleRow("objection_period", CHANGE, days=90, source="가상의 개정 (test)"))
    book = load_rulebook(db_session)
    old = objection_timely(CHANGE - timedelta(days=1), CHANGE + timedelta(days=61), book)
    new = objection_timely(CHANGE, CHANGE + timedelta(days=61), book)
    assert (bool(old), old.rule_key) == (False, "objection_period:*@2008-06-22")
    assert (bool(new), new.rule_key) == (True, "objection_period:*@2027-01-01")


def test_enacting_a_row_inside_an_already_closed_period_is_still_refused(db_session: Session):
    row = RuleRow(SURCHARGE, date(2010, 1, 1), rate=Decimal("0.04"), source="test")
    with pytest.raises(IntegrityError):
        with db_session.begin_nested():
            enact(db_session, row)
