"""The statutory computations (models/rules) against the statute's numbers (LAW.md §1), on the statute's own rows
(``STATUTORY_RULES``, what migration 0005 inserts) held in memory: no database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.errors import InvalidInput
from models.rules import (
    HARDSHIP_GROUNDS,
    STATUTORY_RULES,
    ReductionRefused,
    RuleBook,
    RuleMissing,
    RuleRow,
    arrears,
    combined_reduced,
    court_referral_deadline,
    full_month_elapses_on,
    full_months_between,
    hardship_reduced,
    imposition_allowed,
    imposition_due_date,
    imposition_final_on,
    imposition_last_day,
    monthly_surcharge,
    monthly_surcharge_installment,
    objection_deadline,
    objection_timely,
    opinion_period_sufficient,
    period_end,
    plate_seizure_eligible,
    prescribed,
    prescription_last_day,
    self_payment_reduced,
    surcharge,
)
from models.rules.rows import (
    BASIC_LIVELIHOOD,
    IMPOSITION_DUE,
    MINOR,
    RATES_ADDED,
    REDUCTION_COMBINATION,
    SEVERE_DISABILITY,
    SINGLE_PARENT,
)
from protocol import ScheduleRow, compute_amounts

BOOK = RuleBook(STATUTORY_RULES)
KST = timezone(timedelta(hours=9))
P01 = ScheduleRow(
    code="P01",
    amount=40_000,
    reduction_rate=Decimal("0.20"),
    rounding_unit=10,
    opinion_days=14,
    valid_from=date(2008, 6, 22),
    vehicle_type="car",
)
DUE = date(2024, 1, 31)  # a 40,000 won fine's 납부기한


def month(n: int) -> date:
    """The first day on which n full months have passed since DUE."""
    return full_month_elapses_on(DUE, n)


# --- the worked example of LAW.md §1.2 ------------------------------------------------------------------------------


def test_a_40000_won_fine_paid_within_the_opinion_period_is_32000_through_the_fine_schedule():
    printed = compute_amounts(P01, datetime(2024, 1, 2, 10, 0, tzinfo=KST))
    assert printed.reduced_amount == 32_000
    reduced = self_payment_reduced(P01)
    assert (reduced.amount, reduced.rule_key) == (32_000, P01.key)


@pytest.mark.parametrize(
    ("as_of", "months", "total"),
    [
        (DUE, 0, 40_000),  # the due date itself: nothing added
        (DUE + timedelta(days=1), 0, 41_200),  # first overdue day: 가산금 3%
        (month(1) - timedelta(days=1), 0, 41_200),  # a month not yet full
        (month(1), 1, 41_680),  # + 480 per full month
        (month(2), 2, 42_160),
        (month(12), 12, 46_960),
        (month(59), 59, 69_520),
        (month(60), 60, 70_000),  # 40,000 + 1,200 + 60 × 480
        (month(61), 60, 70_000),  # capped: never more
        (month(100), 60, 70_000),
    ],
)
def test_an_unpaid_40000_won_fine_grows_by_3_percent_then_480_won_a_full_month_to_70000(as_of, months, total):
    owed = arrears(40_000, DUE, as_of, BOOK)
    assert (owed.months, owed.total) == (months, total)


def test_every_surcharge_records_the_rule_rows_it_used():
    owed = arrears(40_000, DUE, month(3), BOOK)
    assert owed.surcharge is not None and owed.monthly_surcharge is not None
    assert owed.surcharge.rule_key == "surcharge:*@2017-06-03"
    assert owed.monthly_surcharge.rule_key == "monthly_surcharge:*@2008-06-22"
    assert owed.surcharge.also == owed.monthly_surcharge.also == ("surcharge_rounding:*@2008-06-22",)


def test_nothing_is_added_before_the_fine_is_overdue():
    owed = arrears(40_000, DUE, DUE, BOOK)
    assert (owed.surcharge, owed.monthly_surcharge, owed.total) == (None, None, 40_000)


@pytest.mark.parametrize(
    ("first_overdue", "amount", "key"),
    [
        (date(2017, 6, 2), 2_000, "surcharge:*@2008-06-22"),  # 5%: 42,000 in all
        (date(2017, 6, 3), 1_200, "surcharge:*@2017-06-03"),  # 3%: 41,200
        (date(2008, 6, 22), 2_000, "surcharge:*@2008-06-22"),
    ],
)
def test_the_surcharge_rate_follows_the_day_the_fine_first_became_overdue(first_overdue, amount, key):
    result = surcharge(40_000, first_overdue, BOOK)
    assert (40_000 + result.amount, result.rule_key) == (40_000 + amount, key)


def test_a_fine_due_on_2017_06_01_is_first_overdue_on_06_02_and_pays_5_percent():
    assert arrears(40_000, date(2017, 6, 1), date(2017, 6, 2), BOOK).total == 42_000
    assert arrears(40_000, date(2017, 6, 2), date(2017, 6, 3), BOOK).total == 41_200


@pytest.mark.parametrize(
    ("principal", "surcharge_amount", "monthly_amount"),
    [
        (40_000, 1_200, 480),
        (33_333, 999, 399),  # 999.99 and 399.996: truncated to whole won
        (1, 0, 0),
        (0, 0, 0),
    ],
)
def test_surcharges_are_truncated_to_whole_won_by_default(principal, surcharge_amount, monthly_amount):
    assert surcharge(principal, DUE + timedelta(days=1), BOOK).amount == surcharge_amount
    assert monthly_surcharge_installment(principal, DUE, BOOK).amount == monthly_amount


def test_the_surcharge_rounding_unit_is_a_rule_row():
    rows = [row for row in STATUTORY_RULES if row.rule != "surcharge_rounding"]
    ten = RuleRow("surcharge_rounding", date(2008, 6, 22), unit=10, source="test")
    assert surcharge(33_333, DUE + timedelta(days=1), RuleBook([*rows, ten])).amount == 990


# --- full months ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("due_date", "first_month_elapses"),
    [
        (date(2024, 7, 31), date(2024, 9, 1)),  # overdue from 08-01; the month 08-01…08-31 is full on 09-01
        (date(2024, 1, 31), date(2024, 3, 1)),  # overdue from 02-01; full on 03-01, not on 02-29
        (date(2024, 1, 30), date(2024, 3, 1)),  # overdue from 01-31; no 02-31, the month ends 02-29
        (date(2024, 1, 28), date(2024, 2, 29)),  # overdue from 01-29; the month ends 02-28
        (date(2023, 1, 28), date(2023, 3, 1)),  # overdue from 01-29; no 2023-02-29
        (date(2024, 12, 15), date(2025, 1, 16)),
    ],
)
def test_a_full_month_has_passed_on_the_day_after_the_month_counted_from_the_first_overdue_day_ends(
    due_date, first_month_elapses
):
    assert full_month_elapses_on(due_date, 1) == first_month_elapses
    assert full_months_between(due_date, first_month_elapses - timedelta(days=1)) == 0
    assert full_months_between(due_date, first_month_elapses) == 1


@pytest.mark.parametrize(
    ("start", "months", "end"),
    [
        (date(2024, 2, 1), 1, date(2024, 2, 29)),
        (date(2024, 1, 31), 1, date(2024, 2, 29)),
        (date(2020, 3, 11), 60, date(2025, 3, 10)),
        (date(2020, 2, 29), 60, date(2025, 2, 28)),
        (date(2024, 12, 1), 1, date(2024, 12, 31)),
    ],
)
def test_a_period_of_months_ends_the_day_before_the_corresponding_day_or_at_month_end(start, months, end):
    assert period_end(start, months) == end


dates = st.dates(min_value=date(2017, 6, 3), max_value=date(2090, 12, 31))


@given(due=dates, a=st.integers(0, 3_000), b=st.integers(0, 3_000), principal=st.integers(0, 10_000_000))
def test_the_monthly_surcharge_never_falls_as_time_passes_and_never_exceeds_60_months(due, a, b, principal):
    early, late = sorted((due + timedelta(days=a), due + timedelta(days=b)))
    first = monthly_surcharge(principal, due, early, BOOK).amount
    second = monthly_surcharge(principal, due, late, BOOK).amount
    assert first <= second <= 60 * monthly_surcharge_installment(principal, due, BOOK).amount
    assert second <= principal * Decimal("0.72")


@given(due=dates, days=st.integers(0, 3_000))
def test_full_months_agree_with_the_days_on_which_each_month_elapses(due, days):
    as_of = due + timedelta(days=days)
    n = full_months_between(due, as_of)
    assert n == 0 or full_month_elapses_on(due, n) <= as_of
    assert full_month_elapses_on(due, n + 1) > as_of


# --- deadlines ------------------------------------------------------------------------------------------------------

RECEIVED = date(2026, 1, 5)


@pytest.mark.parametrize(
    ("filed_on", "allowed"),
    [
        (RECEIVED, True),
        (RECEIVED + timedelta(days=59), True),
        (RECEIVED + timedelta(days=60), True),  # day 60: the last day, accepted
        (RECEIVED + timedelta(days=61), False),  # day 61: refused
    ],
)
def test_an_objection_is_accepted_through_day_60_after_receiving_the_imposition_notice(filed_on, allowed):
    verdict = objection_timely(RECEIVED, filed_on, BOOK)
    assert (bool(verdict), verdict.rule_key) == (allowed, "objection_period:*@2008-06-22")


def test_the_objection_deadline_is_a_seoul_date():
    late_evening_utc = datetime(2026, 1, 4, 16, 30, tzinfo=UTC)  # 2026-01-05 01:30 in Seoul
    assert objection_deadline(late_evening_utc, BOOK).day == date(2026, 3, 6)


def test_an_objection_deadline_on_a_closed_day_moves_to_the_next_open_day():
    assert objection_deadline(date(2026, 1, 5), BOOK).day == date(2026, 3, 6)  # a Friday
    received_a_day_later = date(2026, 1, 6)  # the 60th day is Saturday 2026-03-07
    weekend = {date(2026, 3, 7), date(2026, 3, 8)}
    moved = objection_deadline(received_a_day_later, BOOK, closed=lambda day: day in weekend)
    assert moved.day == date(2026, 3, 9)
    assert objection_timely(received_a_day_later, date(2026, 3, 9), BOOK, closed=lambda day: day in weekend)


def test_the_case_goes_to_court_within_14_days_of_receiving_the_objection():
    deadline = court_referral_deadline(date(2026, 3, 2), BOOK)
    assert (deadline.day, deadline.rule_key) == (date(2026, 3, 16), "court_referral:*@2008-06-22")


def test_an_unobjected_imposition_is_final_the_day_after_the_objection_period():
    assert imposition_final_on(RECEIVED, BOOK) == RECEIVED + timedelta(days=61)


@pytest.mark.parametrize(
    ("violation", "on", "allowed"),
    [
        (date(2020, 3, 10), date(2025, 3, 10), True),  # exactly 5 years after the violation: the last day
        (date(2020, 3, 10), date(2025, 3, 11), False),  # 5 years and 1 day: 제척기간 over
        (date(2020, 2, 28), date(2025, 2, 28), True),  # period starts 2020-02-29; 2025 has none: ends 02-28
        (date(2020, 2, 28), date(2025, 3, 1), False),
        (date(2020, 2, 29), date(2025, 2, 28), True),  # period starts 03-01, ends 2025-02-28
        (date(2020, 2, 29), date(2025, 3, 1), False),
    ],
)
def test_no_fine_is_imposed_more_than_5_years_after_the_violation(violation, on, allowed):
    verdict = imposition_allowed(violation, on, BOOK)
    assert (bool(verdict), verdict.rule_key) == (allowed, "imposition_limit:*@2008-06-22")


def test_the_last_day_of_imposition_is_5_years_after_the_violation():
    assert imposition_last_day(date(2021, 11, 25), BOOK).day == date(2026, 11, 25)


@pytest.mark.parametrize(
    ("start", "suspended", "last_day"),
    [
        (date(2026, 3, 7), 0, date(2031, 3, 6)),
        (date(2026, 3, 7), 30, date(2031, 4, 5)),
    ],
)
def test_a_fine_prescribes_5_years_after_it_became_final(start, suspended, last_day):
    assert prescription_last_day(start, BOOK, suspended_days=suspended).day == last_day
    assert not prescribed(start, last_day, BOOK, suspended_days=suspended)
    assert prescribed(start, last_day + timedelta(days=1), BOOK, suspended_days=suspended)


@pytest.mark.parametrize(("days", "allowed"), [(9, False), (10, True), (14, True)])
def test_an_opinion_period_must_be_at_least_10_days(days, allowed):
    assert bool(opinion_period_sufficient(days, date(2026, 1, 1), BOOK)) is allowed


def test_the_imposition_due_date_is_60_days_by_default_and_per_revenue_item_when_a_row_says_so():
    default = imposition_due_date(date(2026, 1, 1), "41", BOOK)
    assert (default.day, default.rule_key) == (date(2026, 3, 2), "imposition_due:*@2008-06-22")
    item_71 = RuleRow(IMPOSITION_DUE, date(2020, 1, 1), scope="71", days=30, source="test ordinance")
    book = RuleBook([*STATUTORY_RULES, item_71])
    assert imposition_due_date(date(2026, 1, 1), "71", book).day == date(2026, 1, 31)
    assert imposition_due_date(date(2026, 1, 1), "41", book).day == date(2026, 3, 2)


# --- 번호판 영치 ----------------------------------------------------------------------------------------------------

AS_OF = date(2026, 11, 25)


@pytest.mark.parametrize(
    ("overdue", "eligible"),
    [
        ([(AS_OF - timedelta(days=61), 300_000)], True),  # more than 60 days, at least 300,000
        ([(AS_OF - timedelta(days=60), 300_000)], False),  # 60 days is not more than 60
        ([(AS_OF - timedelta(days=61), 299_999)], False),
        ([(AS_OF - timedelta(days=90), 150_000), (AS_OF - timedelta(days=70), 150_000)], True),
        ([(AS_OF - timedelta(days=90), 250_000), (AS_OF - timedelta(days=10), 100_000)], False),  # the young fine
    ],
)
def test_the_plate_seizure_hotlist_needs_more_than_60_days_and_300000_won(overdue, eligible):
    verdict = plate_seizure_eligible(overdue, AS_OF, BOOK)
    assert (bool(verdict), verdict.rule_key) == (eligible, "plate_seizure:*@2008-06-22")


# --- 감경 -------------------------------------------------------------------------------------------------------------

NOTICE_DAY = date(2026, 11, 25)


@pytest.mark.parametrize("ground", HARDSHIP_GROUNDS)
def test_each_hardship_ground_halves_the_fine(ground):
    result = hardship_reduced(40_000, [ground], has_other_unpaid=False, on=NOTICE_DAY, rounding_unit=10, rules=BOOK)
    assert result.amount == 20_000
    assert result.rule_key.startswith(f"hardship_reduction:{ground}@")


def test_a_hardship_reduction_is_refused_when_the_party_has_other_unpaid_fines():
    with pytest.raises(ReductionRefused) as caught:
        hardship_reduced(40_000, [MINOR], has_other_unpaid=True, on=NOTICE_DAY, rounding_unit=10, rules=BOOK)
    assert caught.value.field == "has_other_unpaid"


def test_several_hardship_grounds_do_not_add_up():
    result = hardship_reduced(
        40_000,
        [MINOR, SINGLE_PARENT, BASIC_LIVELIHOOD],
        has_other_unpaid=False,
        on=NOTICE_DAY,
        rounding_unit=10,
        rules=BOOK,
    )
    assert result.amount == 20_000


@pytest.mark.parametrize(
    ("grounds", "on"),
    [
        ([], NOTICE_DAY),
        (["tall"], NOTICE_DAY),
        ([MINOR], date(2010, 1, 15)),  # before 시행령 §2의2 applied
    ],
)
def test_a_hardship_reduction_without_a_ground_in_force_is_refused(grounds, on):
    with pytest.raises(ReductionRefused):
        hardship_reduced(40_000, grounds, has_other_unpaid=False, on=on, rounding_unit=10, rules=BOOK)


def test_the_severe_disability_ground_follows_the_2019_wording():
    before = hardship_reduced(
        40_000, [SEVERE_DISABILITY], has_other_unpaid=False, on=date(2019, 6, 30), rounding_unit=10, rules=BOOK
    )
    after = hardship_reduced(
        40_000, [SEVERE_DISABILITY], has_other_unpaid=False, on=date(2019, 7, 1), rounding_unit=10, rules=BOOK
    )
    assert (before.rule_key, after.rule_key) == (
        "hardship_reduction:severe_disability@2010-01-16",
        "hardship_reduction:severe_disability@2019-07-01",
    )


@pytest.mark.parametrize(("rate", "amount"), [("0.5", 20_000), ("0.3", 28_000), ("0.25", 30_000)])
def test_a_hardship_reduction_may_be_smaller_than_50_percent(rate, amount):
    kwargs = {"has_other_unpaid": False, "on": NOTICE_DAY, "rounding_unit": 10, "rules": BOOK}
    assert hardship_reduced(40_000, [MINOR], rate=rate, **kwargs).amount == amount


@pytest.mark.parametrize("rate", ["0.51", "0", "-0.1"])
def test_a_hardship_reduction_rate_outside_0_to_50_percent_is_refused(rate):
    with pytest.raises(InvalidInput) as caught:
        hardship_reduced(
            40_000, [MINOR], has_other_unpaid=False, on=NOTICE_DAY, rounding_unit=10, rules=BOOK, rate=rate
        )
    assert caught.value.field == "rate"


def test_by_default_self_payment_applies_to_the_amount_already_halved():
    result = combined_reduced(P01, [MINOR], has_other_unpaid=False, on=NOTICE_DAY, rules=BOOK)
    assert result.amount == 16_000  # 40,000 → 20,000 → 16,000 (LAW.md §1.3)
    assert result.rule_key == "reduction_combination:*@2010-01-16"
    assert result.also == ("hardship_reduction:minor@2010-01-16", P01.key)


def test_the_combination_order_is_a_rule_row():
    rows = [row for row in STATUTORY_RULES if row.rule != REDUCTION_COMBINATION]
    added = RuleRow(REDUCTION_COMBINATION, date(2010, 1, 16), mode=RATES_ADDED, source="test")
    result = combined_reduced(P01, [MINOR], has_other_unpaid=False, on=NOTICE_DAY, rules=RuleBook([*rows, added]))
    assert result.amount == 12_000


def test_combining_reductions_is_refused_when_other_fines_are_unpaid():
    with pytest.raises(ReductionRefused):
        combined_reduced(P01, [MINOR], has_other_unpaid=True, on=NOTICE_DAY, rules=BOOK)


# --- the book ---------------------------------------------------------------------------------------------------------


def test_a_date_without_a_rule_row_raises_rule_missing():
    with pytest.raises(RuleMissing):
        surcharge(40_000, date(2008, 6, 21), BOOK)


def test_a_book_refuses_overlapping_rows_of_the_same_rule_and_scope():
    overlapping = RuleRow("surcharge", date(2017, 1, 1), rate=Decimal("0.04"), source="test")
    with pytest.raises(ValueError, match="overlap"):
        RuleBook([*STATUTORY_RULES, overlapping])


def test_the_statutory_rows_cite_their_source():
    assert all(row.source for row in STATUTORY_RULES)
    unconfirmed = {row.rule for row in STATUTORY_RULES if not row.confirmed}
    assert unconfirmed == {"surcharge_rounding", "imposition_due", "reduction_combination"}
