"""Dates and amounts of law (PROTOCOL.md §2, §3): Seoul dates, the reduced amount and the opinion deadline from an
effective-dated schedule row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any
from zoneinfo import ZoneInfo

SEOUL = ZoneInfo("Asia/Seoul")

# notice is kept and flagged), narrow enough that Seoul dates, deadlines and PostgreSQL never overflow.
TIME_RANGE = (1900, 9000)
TIME_RANGE_TEXT = f"between the years {TIME_RANGE[0]} and {TIME_RANGE[1]}"


def time_in_range(moment: datetime) -> bool:
    """Whether ``moment`` is aware and its year in Seoul is within ``TIME_RANGE``."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        return False
    try:
        year = moment.astimezone(SEOUL).year
    except OverflowError:
        return False
    return TIME_RANGE[0] <= year <= TIME_RANGE[1]


def seoul_date(moment: datetime) -> date:
    """The Asia/Seoul calendar date of an aware datetime (dates of law are Seoul dates)."""
    if moment.tzinfo is None:
        raise ValueError("datetime must carry an offset")
    return moment.astimezone(SEOUL).date()


def truncate_to_unit(amount: Decimal | int, unit: int) -> int:
    """Truncate a non-negative amount of won down to a multiple of ``unit`` (단수 절사)."""
    if unit <= 0:
        raise ValueError("rounding unit must be positive")
    value = Decimal(amount)
    return int((value / unit).to_integral_value(rounding=ROUND_FLOOR)) * unit


def reduced_amount(amount: int, reduction_rate: str | Decimal, rounding_unit: int) -> int:
    """자진납부 감경: ``amount`` × (1 − rate), truncated to ``rounding_unit``; exact decimal, never float."""
    rate = Decimal(reduction_rate) if isinstance(reduction_rate, str) else reduction_rate
    if not Decimal(0) <= rate <= Decimal(1):
        raise ValueError("reduction rate must be within 0..1")
    return truncate_to_unit(Decimal(amount) * (Decimal(1) - rate), rounding_unit)


def opinion_deadline(observed_at: datetime, opinion_days: int) -> date:
    """의견제출기한: the Seoul date of ``observed_at`` plus ``opinion_days`` (inclusive last day)."""
    return seoul_date(observed_at) + timedelta(days=opinion_days)


@dataclass(frozen=True)
class ScheduleRow:
    """One effective-dated row of the fine schedule (§3 ``fine_schedule``)."""

    code: str
    amount: int
    reduction_rate: Decimal
    rounding_unit: int
    opinion_days: int
    valid_from: date
    valid_to: date | None = None
    vehicle_type: str | None = None
    zone: str | None = None

    @property
    def key(self) -> str:
        return schedule_key(self.code, self.vehicle_type, self.zone, self.valid_from)

    def applies_on(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day < self.valid_to)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> ScheduleRow:
        """Build a row from a pulled ``fine_schedule`` change's data."""
        return cls(
            code=data["code"],
            vehicle_type=data.get("vehicle_type"),
            zone=data.get("zone"),
            amount=int(data["amount"]),
            reduction_rate=Decimal(data["reduction_rate"]),
            rounding_unit=int(data["rounding_unit"]),
            opinion_days=int(data["opinion_days"]),
            valid_from=date.fromisoformat(data["valid_from"]),
            valid_to=date.fromisoformat(data["valid_to"]) if data.get("valid_to") else None,
        )


def schedule_key(code: str, vehicle_type: str | None, zone: str | None, valid_from: date) -> str:
    """``code:vehicle_type or -:zone or -@valid_from``, e.g. ``P01:car:-@2021-05-11``."""
    return f"{code}:{vehicle_type or '-'}:{zone or '-'}@{valid_from.isoformat()}"


def _specificity(row: ScheduleRow) -> int:
    # code + vehicle type + zone, then code + vehicle type, then code + zone, then code alone
    return (2 if row.vehicle_type else 0) + (1 if row.zone else 0)


def select_schedule(
    rows: list[ScheduleRow], code: str, vehicle_type: str | None, zone: str | None, on: date
) -> ScheduleRow | None:
    """The schedule row in force on ``on`` for a notice; the most specific match wins; ``None`` when none applies."""
    candidates = [
        row
        for row in rows
        if row.code == code
        and row.applies_on(on)
        and (row.vehicle_type is None or row.vehicle_type == vehicle_type)
        and (row.zone is None or row.zone == zone)
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda row: (_specificity(row), row.valid_from))


@dataclass(frozen=True)
class Amounts:
    """What a notice prints: the fine, the reduced amount and the opinion deadline, and the row they came from."""

    amount: int
    reduced_amount: int
    opinion_deadline: date
    schedule_key: str


def compute_amounts(row: ScheduleRow, observed_at: datetime) -> Amounts:
    """The printed amounts of a notice observed at ``observed_at`` under schedule ``row``."""
    return Amounts(
        amount=row.amount,
        reduced_amount=reduced_amount(row.amount, row.reduction_rate, row.rounding_unit),
        opinion_deadline=opinion_deadline(observed_at, row.opinion_days),
        schedule_key=row.key,
    )
