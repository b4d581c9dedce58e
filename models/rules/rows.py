"""Rule rows as pure values: the rule names, one frozen ``RuleRow`` per effective-dated row of ``statutory_rules``,
the ``RuleBook`` that picks the row in force on a date, and the results that say which row they came from.

A rule is identified by ``(rule, scope, valid_from)``; its key reads ``surcharge:*@2017-06-03``. ``scope`` is ``*``
for the general row, or what the rule is keyed by: a revenue item (과목) code for ``imposition_due``, a hardship ground
for ``hardship_reduction``. A scoped lookup falls back to the ``*`` row.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from models.errors import DomainError

DEFAULT_SCOPE = "*"

# --- rule names (the database's CHECK lists the same names and the parameters each needs) --------------------------
OPINION_PERIOD = "opinion_period"  # 의견제출기한 최소: days
OBJECTION_PERIOD = "objection_period"  # 이의제기 기간: days
COURT_REFERRAL = "court_referral"  # 법원 통보 기한: days
SURCHARGE = "surcharge"  # 가산금: rate
MONTHLY_SURCHARGE = "monthly_surcharge"  # 중가산금: rate per full month, months (cap)
SURCHARGE_ROUNDING = "surcharge_rounding"  # 가산금 단수처리: unit (truncation)
IMPOSITION_LIMIT = "imposition_limit"  # 제척기간: months
PRESCRIPTION = "prescription"  # 소멸시효: months
PLATE_SEIZURE = "plate_seizure"  # 번호판 영치: days (more than), amount (at least)
IMPOSITION_DUE = "imposition_due"  # 부과 납부기한: days, scoped by revenue item
HARDSHIP_REDUCTION = "hardship_reduction"  # 감경 (시행령 §2의2): rate (maximum), mode; scoped by ground
REDUCTION_COMBINATION = "reduction_combination"  # 감경 병과 순서: mode

RULES = (
    OPINION_PERIOD,
    OBJECTION_PERIOD,
    COURT_REFERRAL,
    SURCHARGE,
    MONTHLY_SURCHARGE,
    SURCHARGE_ROUNDING,
    IMPOSITION_LIMIT,
    PRESCRIPTION,
    PLATE_SEIZURE,
    IMPOSITION_DUE,
    HARDSHIP_REDUCTION,
    REDUCTION_COMBINATION,
)

# modes of reduction_combination
HARDSHIP_THEN_SELF_PAYMENT = "hardship_then_self_payment"  # 40,000 → 20,000 → 16,000 (default, LAW.md §1.3 [U])
RATES_ADDED = "rates_added"  # 40,000 × (1 − 0.5 − 0.2) = 12,000
# modes of hardship_reduction
NOT_WITH_OTHER_UNPAID = "not_with_other_unpaid"  # 시행령 §2의2: refused when other 과태료 are unpaid
UNCONDITIONAL = "unconditional"

# hardship grounds (시행령 §2의2①), the ``scope`` of hardship_reduction rows
BASIC_LIVELIHOOD = "basic_livelihood"  # 국민기초생활보장 수급자
SINGLE_PARENT = "single_parent"  # 한부모가족 보호대상자
SEVERE_DISABILITY = "severe_disability"  # 장애의 정도가 심한 장애인 (until 2019-07-01: 장애등급 1–3급)
WAR_WOUNDED = "war_wounded"  # 국가유공자 상이등급 1–3급
MINOR = "minor"  # 미성년자
HARDSHIP_GROUNDS = (BASIC_LIVELIHOOD, SINGLE_PARENT, SEVERE_DISABILITY, WAR_WOUNDED, MINOR)


class RuleMissing(DomainError):
    """No row of the rule is in force on the date asked for: the rule table (or the book loaded) has a gap."""

    code = "rule_missing"


class RuleInvalid(DomainError):
    """A rule row lacks a parameter its rule needs (the database refuses such rows; hand-built ones may not)."""

    code = "rule_invalid"


def rule_key(rule: str, scope: str, valid_from: date) -> str:
    """``rule:scope@valid_from``, e.g. ``surcharge:*@2017-06-03`` or ``imposition_due:41@2008-06-22``."""
    return f"{rule}:{scope}@{valid_from.isoformat()}"


@dataclass(frozen=True)
class RuleRow:
    """One effective-dated statutory rule row; applies on ``valid_from`` ≤ d < ``valid_to``.

    Only the parameters the rule needs are set: ``rate`` (a fraction, 0.03 = 3%), ``days``, ``months``, ``amount``
    (won), ``unit`` (won, for truncation), ``mode`` (a named choice). ``confirmed`` is false where LAW.md marks the
    value [U]; ``id`` is the database id (``None`` for a row built in memory).
    """

    rule: str
    valid_from: date
    scope: str = DEFAULT_SCOPE
    valid_to: date | None = None
    rate: Decimal | None = None
    days: int | None = None
    months: int | None = None
    amount: int | None = None
    unit: int | None = None
    mode: str | None = None
    source: str = ""
    confirmed: bool = True
    id: int | None = None

    @property
    def key(self) -> str:
        return rule_key(self.rule, self.scope, self.valid_from)

    def applies_on(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day < self.valid_to)

    def _need(self, name: str) -> object:
        value = getattr(self, name)
        if value is None:
            raise RuleInvalid(f"rule row {self.key} has no {name}", field=name, rule=self.key)
        return value

    def need_rate(self) -> Decimal:
        value = self._need("rate")
        assert isinstance(value, Decimal)
        return value

    def need_days(self) -> int:
        value = self._need("days")
        assert isinstance(value, int)
        return value

    def need_months(self) -> int:
        value = self._need("months")
        assert isinstance(value, int)
        return value

    def need_amount(self) -> int:
        value = self._need("amount")
        assert isinstance(value, int)
        return value

    def need_unit(self) -> int:
        value = self._need("unit")
        assert isinstance(value, int)
        return value

    def need_mode(self) -> str:
        value = self._need("mode")
        assert isinstance(value, str)
        return value


class RuleBook:
    """A set of rule rows (all of history, or those in force on one day) with the lookup every computation uses.

    Refuses two rows of the same rule and scope that overlap, as the database does, so a hand-built book cannot be
    ambiguous either.
    """

    def __init__(self, rows: Iterable[RuleRow]) -> None:
        self._rows: dict[tuple[str, str], list[RuleRow]] = {}
        for row in rows:
            same = self._rows.setdefault((row.rule, row.scope), [])
            for other in same:
                if _overlap(row, other):
                    raise ValueError(f"rule rows {other.key} and {row.key} overlap")
            same.append(row)
        for same in self._rows.values():
            same.sort(key=lambda r: r.valid_from)

    def __iter__(self) -> Iterator[RuleRow]:
        for same in self._rows.values():
            yield from same

    def __len__(self) -> int:
        return sum(len(same) for same in self._rows.values())

    def find(self, rule: str, on: date, scope: str = DEFAULT_SCOPE) -> RuleRow | None:
        """The row of ``rule`` for ``scope`` in force on ``on``, else the general (``*``) row, else ``None``."""
        for candidate in (scope, DEFAULT_SCOPE) if scope != DEFAULT_SCOPE else (DEFAULT_SCOPE,):
            for row in self._rows.get((rule, candidate), ()):
                if row.applies_on(on):
                    return row
        return None

    def row(self, rule: str, on: date, scope: str = DEFAULT_SCOPE) -> RuleRow:
        """Like ``find``; raises ``RuleMissing`` when no row applies."""
        found = self.find(rule, on, scope)
        if found is None:
            raise RuleMissing(
                f"no {rule} rule for {scope} in force on {on.isoformat()}", rule=rule, scope=scope, on=on.isoformat()
            )
        return found

    def scoped(self, rule: str, on: date) -> list[RuleRow]:
        """Every row of ``rule`` in force on ``on``, whatever its scope (e.g. all hardship grounds)."""
        return [row for (name, _), same in self._rows.items() if name == rule for row in same if row.applies_on(on)]


def _overlap(a: RuleRow, b: RuleRow) -> bool:
    a_end = a.valid_to or date.max
    b_end = b.valid_to or date.max
    return a.valid_from < b_end and b.valid_from < a_end


# --- results: every computed value names the rule row it came from --------------------------------------------------


@dataclass(frozen=True)
class Computed:
    """An amount in won, the key (and id, when loaded from the database) of the rule row that set it, and the keys
    of any further rows it also depended on (rounding row, hardship ground, fine schedule row)."""

    amount: int
    rule_key: str
    rule_id: int | None = None
    also: tuple[str, ...] = ()


@dataclass(frozen=True)
class Deadline:
    """A last day (inclusive, Asia/Seoul) and the rule row that set it."""

    day: date
    rule_key: str
    rule_id: int | None = None


@dataclass(frozen=True)
class Verdict:
    """Whether something is allowed, why, and the rule row that decided it; truthy when allowed."""

    allowed: bool
    reason: str
    rule_key: str
    rule_id: int | None = None

    def __bool__(self) -> bool:
        return self.allowed
