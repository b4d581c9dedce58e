"""statutory rules as effective-dated data, with the statute's rows

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 19:40:00.000000
"""

from datetime import date
from decimal import Decimal

from alembic import op
import sqlalchemy as sa


revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# the parameters each rule needs; a row of any other rule is refused (models/rules/rows.py names the same rules)
REQUIRED = {
    "opinion_period": "days IS NOT NULL",
    "objection_period": "days IS NOT NULL",
    "court_referral": "days IS NOT NULL",
    "surcharge": "rate IS NOT NULL",
    "monthly_surcharge": "rate IS NOT NULL AND months IS NOT NULL",
    "surcharge_rounding": "unit IS NOT NULL",
    "imposition_limit": "months IS NOT NULL",
    "prescription": "months IS NOT NULL",
    "plate_seizure": "days IS NOT NULL AND amount IS NOT NULL",
    "imposition_due": "days IS NOT NULL",
    "hardship_reduction": "rate IS NOT NULL AND mode IN ('not_with_other_unpaid', 'unconditional')",
    "reduction_combination": "mode IN ('hardship_then_self_payment', 'rates_added')",
}

LAW = "질서위반행위규제법"
DECREE = "질서위반행위규제법 시행령"
SINCE = date(2008, 6, 22)
HARDSHIP_SINCE = date(2010, 1, 16)
GRADES_ABOLISHED = date(2019, 7, 1)
NEW_SURCHARGE = date(2017, 6, 3)
HARDSHIP_SOURCE = DECREE + " §2의2①{} ({}; 100분의 50 범위, 다른 과태료 체납 시 제외) (의N inferred)"


def _row(rule, valid_from, source, *, scope="*", valid_to=None, confirmed=True, **params):
    row = {"rule": rule, "scope": scope, "valid_from": valid_from, "valid_to": valid_to, "source": source}
    row.update({name: params.get(name) for name in ("rate", "days", "months", "amount", "unit", "mode")})
    row["confirmed"] = confirmed
    return row


def _hardship(ground, number, text, valid_from, valid_to=None):
    source = HARDSHIP_SOURCE.format(number, text)
    return _row(
        "hardship_reduction",
        valid_from,
        source,
        scope=ground,
        valid_to=valid_to,
        rate=Decimal("0.5"),
        mode="not_with_other_unpaid",
    )


# frozen copy of models.rules.statute.STATUTORY_RULES as of this revision (tests check that they agree)
STATUTORY_ROWS = [
    _row("opinion_period", SINCE, f"{LAW} §16① (의견제출 기한 10일 이상)", days=10),
    _row("objection_period", SINCE, f"{LAW} §20① (부과 통지를 받은 날부터 60일 이내)", days=60),
    _row("court_referral", SINCE, f"{LAW} §21① (이의제기를 받은 날부터 14일 이내)", days=14),
    _row(
        "surcharge",
        SINCE,
        f"{LAW} §24① (개정 전 100분의 5; 2017-06-03 전에 체납된 과태료, 부칙 <제14280호> §3)",
        valid_to=NEW_SURCHARGE,
        rate=Decimal("0.05"),
    ),
    _row(
        "surcharge",
        NEW_SURCHARGE,
        f"{LAW} §24① (100분의 3, 2016-12-02 개정; 2017-06-03 이후 최초 체납분, 부칙 <제14280호> §1, §3)",
        rate=Decimal("0.03"),
    ),
    _row(
        "monthly_surcharge",
        SINCE,
        f"{LAW} §24② (중가산금 1천분의 12, 매 1개월, 60개월 한도)",
        rate=Decimal("0.012"),
        months=60,
    ),
    _row("surcharge_rounding", SINCE, "단수처리 규정 미확인 (LAW.md §6.4) [U]: 원 미만 절사", unit=1, confirmed=False),
    _row("imposition_limit", SINCE, f"{LAW} §19① (제척기간: 위반행위 종료일부터 5년)", months=60),
    _row("prescription", SINCE, f"{LAW} §15① (소멸시효: 부과처분·재판 확정 후 5년)", months=60),
    _row(
        "plate_seizure",
        SINCE,
        f"{LAW} §55, {DECREE} §14 (번호판 영치: 체납 60일 초과, 가산금 포함 합계 30만원 이상)",
        days=60,
        amount=300_000,
    ),
    _row(
        "imposition_due",
        SINCE,
        f"{LAW}에 규정 없음; 행정청이 정함 (LAW.md §6.3) [U]: 기본 60일, 과목별 행으로 변경",
        days=60,
        confirmed=False,
    ),
    _row(
        "reduction_combination",
        HARDSHIP_SINCE,
        f"{DECREE} §2의2② (자진납부 감경과 병과); 순서는 2009 법무부 발표에 따른 해석 (LAW.md §1.3) [U]",
        mode="hardship_then_self_payment",
        confirmed=False,
    ),
    _hardship("basic_livelihood", "1", "국민기초생활보장 수급자", HARDSHIP_SINCE),
    _hardship("single_parent", "2", "한부모가족 보호대상자", HARDSHIP_SINCE),
    _hardship("severe_disability", "3", "장애인복지법 장애등급 1–3급", HARDSHIP_SINCE, GRADES_ABOLISHED),
    _hardship("severe_disability", "3", "장애의 정도가 심한 장애인", GRADES_ABOLISHED),
    _hardship("war_wounded", "4", "국가유공자 상이등급 1–3급", HARDSHIP_SINCE),
    _hardship("minor", "5", "미성년자", HARDSHIP_SINCE),
]


def upgrade() -> None:
    rules = op.create_table(
        "statutory_rules",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("rule", sa.String(length=40), nullable=False),
        sa.Column("scope", sa.String(length=20), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("rate", sa.Numeric(precision=7, scale=6), nullable=True),
        sa.Column("days", sa.Integer(), nullable=True),
        sa.Column("months", sa.Integer(), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column("unit", sa.Integer(), nullable=True),
        sa.Column("mode", sa.String(length=40), nullable=True),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("confirmed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_statutory_rules")),
    )
    # no two rows of the same rule and scope in force on the same day; scope is NOT NULL ('*' for the general row),
    # so plain equality works where fine_schedules needed coalesce
    op.execute(
        """
        ALTER TABLE statutory_rules ADD CONSTRAINT ex_statutory_rules_no_overlap EXCLUDE USING gist (
            rule WITH =, scope WITH =, daterange(valid_from, valid_to, '[)') WITH &&)
        """
    )
    op.create_check_constraint("valid_range", "statutory_rules", "valid_to IS NULL OR valid_to > valid_from")
    op.create_check_constraint(
        "parameter_range",
        "statutory_rules",
        "(rate IS NULL OR (rate >= 0 AND rate <= 1)) AND (days IS NULL OR days >= 0)"
        " AND (months IS NULL OR months > 0) AND (amount IS NULL OR amount >= 0) AND (unit IS NULL OR unit > 0)",
    )
    cases = " ".join(f"WHEN '{rule}' THEN {condition}" for rule, condition in REQUIRED.items())
    op.create_check_constraint("parameters", "statutory_rules", f"CASE rule {cases} ELSE false END")
    # the statute's rows are law, not demo data: every database has them
    op.bulk_insert(rules, STATUTORY_ROWS)


def downgrade() -> None:
    op.drop_table("statutory_rules")
