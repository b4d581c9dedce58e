"""The statutory rule rows as LAW.md §1 gives them: law, not demo data.

Migration 0005 inserts a frozen copy of these rows into every database (a revision never changes once applied);
``models.rules.store.ensure_statutory_rules`` inserts any that are missing, and a test checks that the two agree.
A later change of law is a new row from its own ``valid_from`` (``models.rules.store.enact``), never an edit.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from models.rules.rows import (
    BASIC_LIVELIHOOD,
    COURT_REFERRAL,
    HARDSHIP_REDUCTION,
    HARDSHIP_THEN_SELF_PAYMENT,
    IMPOSITION_DUE,
    IMPOSITION_LIMIT,
    MINOR,
    MONTHLY_SURCHARGE,
    NOT_WITH_OTHER_UNPAID,
    OBJECTION_PERIOD,
    OPINION_PERIOD,
    PLATE_SEIZURE,
    PRESCRIPTION,
    REDUCTION_COMBINATION,
    SEVERE_DISABILITY,
    SINGLE_PARENT,
    SURCHARGE,
    SURCHARGE_ROUNDING,
    WAR_WOUNDED,
    RuleRow,
)

FINE_ACT_IN_FORCE = date(2008, 6, 22)  # 질서위반행위규제법 시행
HARDSHIP_SINCE = date(2010, 1, 16)  # 시행령 §2의2 applies to 사전통지 issued from this day
DISABILITY_GRADES_ABOLISHED = date(2019, 7, 1)  # 장애등급제 폐지: 1–3급 → 장애의 정도가 심한 장애인
SURCHARGE_3_PERCENT = date(2017, 6, 3)  # 법률 제14280호 (2016-12-02) 시행, 부칙 §1, §3

LAW = "질서위반행위규제법"
DECREE = "질서위반행위규제법 시행령"

STATUTORY_RULES: tuple[RuleRow, ...] = (
    RuleRow(OPINION_PERIOD, FINE_ACT_IN_FORCE, days=10, source=f"{LAW} §16① (의견제출 기한 10일 이상)"),
    RuleRow(OBJECTION_PERIOD, FINE_ACT_IN_FORCE, days=60, source=f"{LAW} §20① (부과 통지를 받은 날부터 60일 이내)"),
    RuleRow(COURT_REFERRAL, FINE_ACT_IN_FORCE, days=14, source=f"{LAW} §21① (이의제기를 받은 날부터 14일 이내)"),
    RuleRow(
        SURCHARGE,
        FINE_ACT_IN_FORCE,
        valid_to=SURCHARGE_3_PERCENT,
        rate=Decimal("0.05"),
        source=f"{LAW} §24① (개정 전 100분의 5; 2017-06-03 전에 체납된 과태료, 부칙 <제14280호> §3)",
    ),
    RuleRow(
        SURCHARGE,
        SURCHARGE_3_PERCENT,
        rate=Decimal("0.03"),
        source=f"{LAW} §24① (100분의 3, 2016-12-02 개정; 2017-06-03 이후 최초 체납분, 부칙 <제14280호> §1, §3)",
    ),
    RuleRow(
        MONTHLY_SURCHARGE,
        FINE_ACT_IN_FORCE,
        rate=Decimal("0.012"),
        months=60,
        source=f"{LAW} §24② (중가산금 1천분의 12, 매 1개월, 60개월 한도)",
    ),
    RuleRow(
        SURCHARGE_ROUNDING,
        FINE_ACT_IN_FORCE,
        unit=1,
        confirmed=False,
        source="단수처리 규정 미확인 (LAW.md §6.4) [U]: 원 미만 절사",
    ),
    RuleRow(IMPOSITION_LIMIT, FINE_ACT_IN_FORCE, months=60, source=f"{LAW} §19① (제척기간: 위반행위 종료일부터 5년)"),
    RuleRow(PRESCRIPTION, FINE_ACT_IN_FORCE, months=60, source=f"{LAW} §15① (소멸시효: 부과처분·재판 확정 후 5년)"),
    RuleRow(
        PLATE_SEIZURE,
        FINE_ACT_IN_FORCE,
        days=60,
        amount=300_000,
        source=f"{LAW} §55, {DECREE} §14 (번호판 영치: 체납 60일 초과, 가산금 포함 합계 30만원 이상)",
    ),
    RuleRow(
        IMPOSITION_DUE,
        FINE_ACT_IN_FORCE,
        days=60,
        confirmed=False,
        source=f"{LAW}에 규정 없음; 행정청이 정함 (LAW.md §6.3) [U]: 기본 60일, 과목별 행으로 변경",
    ),
    RuleRow(
        REDUCTION_COMBINATION,
        HARDSHIP_SINCE,
        mode=HARDSHIP_THEN_SELF_PAYMENT,
        confirmed=False,
        source=f"{DECREE} §2의2② (자진납부 감경과 병과); 순서는 2009 법무부 발표에 따른 해석 (LAW.md §1.3) [U]",
    ),
    *(
        RuleRow(
            HARDSHIP_REDUCTION,
            valid_from,
            scope=ground,
            valid_to=valid_to,
            rate=Decimal("0.5"),
            mode=NOT_WITH_OTHER_UNPAID,
            source=f"{DECREE} §2의2①{number} ({text}; 100분의 50 범위, 다른 과태료 체납 시 제외) (의N inferred)",
        )
        for ground, number, text, valid_from, valid_to in (
            (BASIC_LIVELIHOOD, "1", "국민기초생활보장 수급자", HARDSHIP_SINCE, None),
            (SINGLE_PARENT, "2", "한부모가족 보호대상자", HARDSHIP_SINCE, None),
            (SEVERE_DISABILITY, "3", "장애인복지법 장애등급 1–3급", HARDSHIP_SINCE, DISABILITY_GRADES_ABOLISHED),
            (SEVERE_DISABILITY, "3", "장애의 정도가 심한 장애인", DISABILITY_GRADES_ABOLISHED, None),
            (WAR_WOUNDED, "4", "국가유공자 상이등급 1–3급", HARDSHIP_SINCE, None),
            (MINOR, "5", "미성년자", HARDSHIP_SINCE, None),
        )
    ),
)
