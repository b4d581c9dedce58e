"""Statutory rules as effective-dated data (법정 규칙), and the pure computations of a fine's legal life.

    rows      rule names, ``RuleRow`` (one frozen row), ``RuleBook`` (lookup by date and scope), results
    periods   기간 계산: how days, months and years are counted (민법 §157, §160, §161)
    compute   가산금, 중가산금, 이의제기, 법원 통보, 제척기간, 소멸시효, 감경, 번호판 영치, 납부기한
    statute   the statutory rows (LAW.md §1), inserted by migration 0005
    tables    the ``statutory_rules`` table (``StatutoryRule``)
    queries   the stored rows as a ``RuleBook``: ``load_rulebook`` (every date), ``rules_in_force`` (one date)
    store     changing the stored rows: seed the statute, ``add_rule``, ``enact`` a change of law

Each module imports only those above it in this list (``compute`` and ``statute`` build on ``rows`` and
``periods``).

The computations need no database once the rows are in a ``RuleBook``; every result names the rule row it used.
Importing this package registers the table; it does no other work.
"""

from models.rules.compute import (
    Arrears,
    ReductionRefused,
    arrears,
    combined_reduced,
    court_referral_deadline,
    hardship_reduced,
    imposition_allowed,
    imposition_due_date,
    imposition_final_on,
    imposition_last_day,
    monthly_surcharge,
    monthly_surcharge_installment,
    monthly_surcharge_months,
    objection_deadline,
    objection_timely,
    opinion_period_sufficient,
    plate_seizure_eligible,
    prescribed,
    prescription_last_day,
    self_payment_reduced,
    surcharge,
)
from models.rules.periods import days_end, full_month_elapses_on, full_months_between, law_date, period_end
from models.rules.queries import load_rulebook, rules_in_force
from models.rules.rows import (
    DEFAULT_SCOPE,
    HARDSHIP_GROUNDS,
    RULES,
    Computed,
    Deadline,
    RuleBook,
    RuleInvalid,
    RuleMissing,
    RuleRow,
    Verdict,
    rule_key,
)
from models.rules.statute import STATUTORY_RULES
from models.rules.store import add_rule, enact, ensure_statutory_rules
from models.rules.tables import StatutoryRule

__all__ = [
    "DEFAULT_SCOPE",
    "HARDSHIP_GROUNDS",
    "RULES",
    "STATUTORY_RULES",
    "Arrears",
    "Computed",
    "Deadline",
    "ReductionRefused",
    "RuleBook",
    "RuleInvalid",
    "RuleMissing",
    "RuleRow",
    "StatutoryRule",
    "Verdict",
    "add_rule",
    "arrears",
    "combined_reduced",
    "court_referral_deadline",
    "days_end",
    "enact",
    "ensure_statutory_rules",
    "full_month_elapses_on",
    "full_months_between",
    "hardship_reduced",
    "imposition_allowed",
    "imposition_due_date",
    "imposition_final_on",
    "imposition_last_day",
    "law_date",
    "load_rulebook",
    "monthly_surcharge",
    "monthly_surcharge_installment",
    "monthly_surcharge_months",
    "objection_deadline",
    "objection_timely",
    "opinion_period_sufficient",
    "period_end",
    "plate_seizure_eligible",
    "prescribed",
    "prescription_last_day",
    "rule_key",
    "rules_in_force",
    "self_payment_reduced",
    "surcharge",
]
