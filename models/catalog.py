"""Reference data: revenue items (과목), violation codes, the effective-dated fine schedule, enforcement zones.

Statutory numbers are data: every amount, reduction rate, rounding unit and opinion period is a schedule row with
``valid_from``/``valid_to``; the database refuses two overlapping rows for the same (code, vehicle type, zone).
Every change here is recorded in the pull feed so devices see it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Date, ForeignKey, Integer, Numeric, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base
from models.feed import SCOPE_ALL, jurisdiction_scope, record_change
from protocol import ScheduleRow, schedule_key

SURCHARGE_RULES = ("none", "fine_act", "own_statute", "daily_late_fee")


class RevenueItem(Base):
    """과목: a kind of revenue, naming the surcharge rule type it follows."""

    __tablename__ = "revenue_items"

    code: Mapped[str] = mapped_column(String(10), primary_key=True)
    name: Mapped[str] = mapped_column(String(60))
    surcharge_rule: Mapped[str] = mapped_column(String(20))


class ViolationCode(Base):
    __tablename__ = "violation_codes"

    code: Mapped[str] = mapped_column(String(10), primary_key=True)
    name: Mapped[str] = mapped_column(String(60))
    kind: Mapped[str] = mapped_column(String(10))  # parking / person
    revenue_item: Mapped[str] = mapped_column(ForeignKey("revenue_items.code"))
    legal_basis: Mapped[str | None] = mapped_column(String(120))
    dedupe_window_min: Mapped[int] = mapped_column(Integer, default=30)
    dedupe_distance_m: Mapped[int] = mapped_column(Integer, default=50)


class FineSchedule(Base):
    """One effective-dated fine row; applies on ``valid_from`` ≤ d < ``valid_to``."""

    __tablename__ = "fine_schedules"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(ForeignKey("violation_codes.code"))
    vehicle_type: Mapped[str | None] = mapped_column(String(10))
    zone: Mapped[str | None] = mapped_column(String(40))
    amount: Mapped[int] = mapped_column(BigInteger)
    reduction_rate: Mapped[Decimal] = mapped_column(Numeric(5, 4))
    rounding_unit: Mapped[int] = mapped_column(Integer)
    opinion_days: Mapped[int] = mapped_column(Integer)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    source: Mapped[str | None] = mapped_column(String(200))

    def to_rule(self) -> ScheduleRow:
        return ScheduleRow(
            code=self.code,
            vehicle_type=self.vehicle_type,
            zone=self.zone,
            amount=self.amount,
            reduction_rate=Decimal(self.reduction_rate),
            rounding_unit=self.rounding_unit,
            opinion_days=self.opinion_days,
            valid_from=self.valid_from,
            valid_to=self.valid_to,
        )

    @property
    def key(self) -> str:
        return schedule_key(self.code, self.vehicle_type, self.zone, self.valid_from)


class Zone(Base):
    """A signposted enforcement zone (school, senior, fire …)."""

    __tablename__ = "zones"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    jurisdiction: Mapped[str] = mapped_column(ForeignKey("jurisdictions.code"))
    name: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(20))


# --- wire shapes of the pull feed (PROTOCOL.md §3) ---------------------------------------------------------------


def violation_code_data(row: ViolationCode) -> dict[str, Any]:
    return {
        "code": row.code,
        "name": row.name,
        "kind": row.kind,
        "revenue_item": row.revenue_item,
        "dedupe_window_min": row.dedupe_window_min,
        "dedupe_distance_m": row.dedupe_distance_m,
    }


def fine_schedule_data(row: FineSchedule) -> dict[str, Any]:
    data: dict[str, Any] = {
        "code": row.code,
        "amount": row.amount,
        "reduction_rate": _rate_text(Decimal(row.reduction_rate)),
        "rounding_unit": row.rounding_unit,
        "opinion_days": row.opinion_days,
        "valid_from": row.valid_from.isoformat(),
    }
    if row.vehicle_type:
        data["vehicle_type"] = row.vehicle_type
    if row.zone:
        data["zone"] = row.zone
    if row.valid_to:
        data["valid_to"] = row.valid_to.isoformat()
    return data


def _rate_text(rate: Decimal) -> str:
    """Decimal string with two places at least: 0.2000 → "0.20"."""
    text = format(rate.normalize(), "f")
    if "." not in text:
        text += ".00"
    whole, frac = text.split(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def zone_data(row: Zone) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "kind": row.kind}


# --- operations ----------------------------------------------------------------------------------------------------


def upsert_revenue_item(session: Session, code: str, name: str, surcharge_rule: str) -> RevenueItem:
    if surcharge_rule not in SURCHARGE_RULES:
        raise ValueError(f"unknown surcharge rule {surcharge_rule}")
    row = session.get(RevenueItem, code)
    if row is None:
        row = RevenueItem(code=code, name=name, surcharge_rule=surcharge_rule)
        session.add(row)
    else:
        row.name, row.surcharge_rule = name, surcharge_rule
    session.flush()
    return row


@dataclass(frozen=True)
class DefineViolationCode:
    code: str
    name: str
    kind: str
    revenue_item: str
    legal_basis: str | None = None
    dedupe_window_min: int = 30
    dedupe_distance_m: int = 50


def upsert_violation_code(session: Session, cmd: DefineViolationCode) -> ViolationCode:
    """Create or update a violation code; a real change is recorded in the feed."""
    row = session.get(ViolationCode, cmd.code)
    values = {k: getattr(cmd, k) for k in cmd.__dataclass_fields__}
    if row is None:
        row = ViolationCode(**values)
        session.add(row)
    elif all(getattr(row, k) == v for k, v in values.items()):
        return row
    else:
        for k, v in values.items():
            setattr(row, k, v)
    session.flush()
    record_change(session, SCOPE_ALL, "violation_code", row.code, violation_code_data(row))
    return row


@dataclass(frozen=True)
class DefineFineRow:
    code: str
    amount: int
    valid_from: date
    reduction_rate: str = "0.20"
    rounding_unit: int = 10
    opinion_days: int = 14
    vehicle_type: str | None = None
    zone: str | None = None
    valid_to: date | None = None
    source: str | None = None


def ensure_fine_row(session: Session, cmd: DefineFineRow) -> FineSchedule:
    """Add a schedule row unless the identical row exists; overlaps are refused by the database."""
    existing = session.scalar(
        select(FineSchedule).where(
            FineSchedule.code == cmd.code,
            FineSchedule.vehicle_type.is_(None)
            if cmd.vehicle_type is None
            else FineSchedule.vehicle_type == cmd.vehicle_type,
            FineSchedule.zone.is_(None) if cmd.zone is None else FineSchedule.zone == cmd.zone,
            FineSchedule.valid_from == cmd.valid_from,
        )
    )
    if existing is not None:
        same = (
            existing.amount == cmd.amount
            and Decimal(existing.reduction_rate) == Decimal(cmd.reduction_rate)
            and existing.rounding_unit == cmd.rounding_unit
            and existing.opinion_days == cmd.opinion_days
            and existing.valid_to == cmd.valid_to
        )
        if same:
            return existing
        existing.amount = cmd.amount
        existing.reduction_rate = Decimal(cmd.reduction_rate)
        existing.rounding_unit = cmd.rounding_unit
        existing.opinion_days = cmd.opinion_days
        existing.valid_to = cmd.valid_to
        row = existing
    else:
        row = FineSchedule(
            code=cmd.code,
            vehicle_type=cmd.vehicle_type,
            zone=cmd.zone,
            amount=cmd.amount,
            reduction_rate=Decimal(cmd.reduction_rate),
            rounding_unit=cmd.rounding_unit,
            opinion_days=cmd.opinion_days,
            valid_from=cmd.valid_from,
            valid_to=cmd.valid_to,
            source=cmd.source,
        )
        session.add(row)
    session.flush()
    record_change(session, SCOPE_ALL, "fine_schedule", row.key, fine_schedule_data(row))
    return row


def upsert_zone(session: Session, zone_id: str, jurisdiction: str, name: str, kind: str) -> Zone:
    row = session.get(Zone, zone_id)
    if row is not None and (row.jurisdiction, row.name, row.kind) == (jurisdiction, name, kind):
        return row
    if row is None:
        row = Zone(id=zone_id, jurisdiction=jurisdiction, name=name, kind=kind)
        session.add(row)
    else:
        row.jurisdiction, row.name, row.kind = jurisdiction, name, kind
    session.flush()
    record_change(session, jurisdiction_scope(jurisdiction), "zone", row.id, zone_data(row))
    return row


def schedule_rules(session: Session, code: str) -> list[ScheduleRow]:
    """Every schedule row of one violation code, as pure rule rows."""
    return [row.to_rule() for row in session.scalars(select(FineSchedule).where(FineSchedule.code == code))]
