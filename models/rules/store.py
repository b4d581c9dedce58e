"""The ``statutory_rules`` table and its operations: load the rows as a ``RuleBook``, seed the statute, enact a change.

The database guarantees what the computations rely on (migration 0005): no two rows of the same rule and scope are in
force on the same day (EXCLUDE USING gist over the date range), every row carries the parameters its rule needs, and
rates are fractions within 0..1.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import BigInteger, Boolean, Date, Integer, Numeric, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base
from models.errors import Conflict, InvalidInput
from models.rules.rows import DEFAULT_SCOPE, RULES, RuleBook, RuleRow, rule_key
from models.rules.statute import STATUTORY_RULES

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


def _values(row: RuleRow) -> dict[str, object]:
    return {
        "rule": row.rule,
        "scope": row.scope,
        "valid_from": row.valid_from,
        "valid_to": row.valid_to,
        **{name: getattr(row, name) for name in PARAMETERS},
        "source": row.source,
        "confirmed": row.confirmed,
    }


# --- loading ---------------------------------------------------------------------------------------------------------


def load_rulebook(session: Session) -> RuleBook:
    """Every rule row of every date: what arrears need, since a fine's surcharge follows the law of its own dates."""
    return RuleBook(row.to_rule() for row in session.scalars(select(StatutoryRule).order_by(StatutoryRule.id)))


def rules_in_force(session: Session, on: date) -> RuleBook:
    """The rule rows in force on ``on`` (Asia/Seoul date); a lookup for any other date raises ``RuleMissing``."""
    stmt = select(StatutoryRule).where(
        StatutoryRule.valid_from <= on, (StatutoryRule.valid_to.is_(None)) | (StatutoryRule.valid_to > on)
    )
    return RuleBook(row.to_rule() for row in session.scalars(stmt.order_by(StatutoryRule.id)))


# --- changing the rules ---------------------------------------------------------------------------------------------


def add_rule(session: Session, row: RuleRow) -> StatutoryRule:
    """Insert one rule row as given; an overlap with a row of the same rule and scope is refused by the database
    (``IntegrityError``), as is a row without the parameters its rule needs."""
    if row.rule not in RULES:
        raise InvalidInput(f"unknown rule {row.rule}", field="rule")
    stored = StatutoryRule(**_values(row))
    session.add(stored)
    session.flush()
    return stored


def enact(session: Session, row: RuleRow) -> StatutoryRule:
    """A change of law: end the open row of the same rule and scope the day before ``row.valid_from`` (its
    ``valid_to`` becomes ``row.valid_from``) and insert ``row``. Rows already dated after it are left alone, so a
    real conflict still reaches the database's exclusion constraint."""
    current = session.scalar(
        select(StatutoryRule).where(
            StatutoryRule.rule == row.rule,
            StatutoryRule.scope == row.scope,
            StatutoryRule.valid_from < row.valid_from,
            StatutoryRule.valid_to.is_(None),
        )
    )
    if current is not None:
        current.valid_to = row.valid_from
        session.flush()
    return add_rule(session, row)


def ensure_statutory_rules(session: Session) -> list[StatutoryRule]:
    """Insert the rows of ``STATUTORY_RULES`` that are missing (by rule, scope and ``valid_from``); returns those
    inserted. Migration 0005 already inserts them, so on a migrated database this does nothing. Raises ``Conflict``
    when a stored row with the same key differs from the statute's."""
    stored = {row.key: row for row in session.scalars(select(StatutoryRule))}
    added: list[StatutoryRule] = []
    for row in STATUTORY_RULES:
        existing = stored.get(row.key)
        if existing is None:
            added.append(add_rule(session, row))
        elif _values(existing.to_rule()) != _values(row):
            raise Conflict(f"stored rule {row.key} differs from the statute's", rule=row.key)
    return added
