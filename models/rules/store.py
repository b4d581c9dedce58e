"""Changing the stored rules: seed the statute's rows, add one, enact a change of law (the ``statutory_rules`` table
is in ``tables``, its loaders in ``queries``)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.errors import Conflict, InvalidInput
from models.rules.rows import RULES, RuleRow
from models.rules.statute import STATUTORY_RULES
from models.rules.tables import PARAMETERS, StatutoryRule


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
