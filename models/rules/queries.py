"""Reads of the rules other modules and layers use: the stored rows as a ``RuleBook``."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.rules.rows import RuleBook
from models.rules.tables import StatutoryRule


def load_rulebook(session: Session) -> RuleBook:
    """Every rule row of every date: what arrears need, since a fine's surcharge follows the law of its own dates."""
    return RuleBook(row.to_rule() for row in session.scalars(select(StatutoryRule).order_by(StatutoryRule.id)))


def rules_in_force(session: Session, on: date) -> RuleBook:
    """The rule rows in force on ``on`` (Asia/Seoul date); a lookup for any other date raises ``RuleMissing``."""
    stmt = select(StatutoryRule).where(
        StatutoryRule.valid_from <= on, (StatutoryRule.valid_to.is_(None)) | (StatutoryRule.valid_to > on)
    )
    return RuleBook(row.to_rule() for row in session.scalars(stmt.order_by(StatutoryRule.id)))
