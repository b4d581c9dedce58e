"""The ``statutory_rules`` table (migration 0005): one effective-dated rule row each.

The database guarantees what the computations rely on: no two rows of the same rule and scope are in force on the
same day (EXCLUDE USING gist over the date range), every row carries the parameters its rule needs, and rates are
fractions within 0..1.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import BigInteger, Boolean, Date, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base
from models.rules.rows import DEFAULT_SCOPE, RuleRow, rule_key

PARAMETERS = ("rate", "days", "months", "amount", "unit", "mode")


class StatutoryRule(Base):
    """법정 규칙: one effective-dated rule row; applies on ``valid_from`` ≤ d < ``valid_to``."""

    __tablename__ = "statutory_rules"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    rule: Mapped[str] = mapped_column(String(40))
    scope: Mapped[str] = mapped_column(String(20), default=DEFAULT_SCOPE)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    rate: Mapped[Decimal | None] = mapped_column(Numeric(7, 6))
    days: Mapped[int | None] = mapped_column(Integer)
    months: Mapped[int | None] = mapped_column(Integer)
    amount: Mapped[int | None] = mapped_column(BigInteger)
    unit: Mapped[int | None] = mapped_column(Integer)
    mode: Mapped[str | None] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(200))
    confirmed: Mapped[bool] = mapped_column(Boolean, default=True)

    @property
    def key(self) -> str:
        return rule_key(self.rule, self.scope, self.valid_from)

    def to_rule(self) -> RuleRow:
        return RuleRow(
            rule=self.rule,
            scope=self.scope,
            valid_from=self.valid_from,
            valid_to=self.valid_to,
            rate=None if self.rate is None else Decimal(self.rate),
            days=self.days,
            months=self.months,
            amount=self.amount,
            unit=self.unit,
            mode=self.mode,
            source=self.source,
            confirmed=self.confirmed,
            id=self.id,
        )
