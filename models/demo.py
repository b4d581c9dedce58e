"""Demo data for ``make run`` and the tests: Seoul and its 25 districts, violation codes with their effective-dated
fine schedule, a few zones, staff users and two registered devices. Idempotent: loading twice changes nothing
except the devices' enrollment codes, which are fresh at every start. Refused in production.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from models import feed
from models.base import Actor
from models.catalog import (
    DefineFineRow,
    DefineViolationCode,
    ensure_fine_row,
    upsert_revenue_item,
    upsert_violation_code,
    upsert_zone,
)
from models.devices import REVOKED, Device, RegisterDevice, new_enrollment_code, register_device
from models.jurisdictions import CITY_LEVEL, DISTRICT_LEVEL, upsert_jurisdiction
from models.users import CreateUser, ensure_user

SEOUL_CITY = ("11000", "서울특별시")
DISTRICTS = [
    ("11110", "종로구"), ("11140", "중구"), ("11170", "용산구"), ("11200", "성동구"), ("11215", "광진구"),
    ("11230", "동대문구"), ("11260", "중랑구"), ("11290", "성북구"), ("11305", "강북구"), ("11320", "도봉구"),
    ("11350", "노원구"), ("11380", "은평구"), ("11410", "서대문구"), ("11440", "마포구"), ("11470", "양천구"),
    ("11500", "강서구"), ("11530", "구로구"), ("11545", "금천구"), ("11560", "영등포구"), ("11590", "동작구"),
    ("11620", "관악구"), ("11650", "서초구"), ("11680", "강남구"), ("11710", "송파구"), ("11740", "강동구"),
]  # fmt: skip
OFFICE_ADDRESS = {
    "11110": "서울특별시 종로구 삼봉로 43 (종로구청)",
    "11680": "서울특별시 강남구 학동로 426 (강남구청)",
}
DEMO_DISTRICTS = ("11110", "11680")

# 도로교통법 시행령 별표 amounts as LAW.md §4 lists them (demo data: confirm against the official 별표)
SINCE = date(2008, 6, 22)  # 질서위반행위규제법 in force
SCHOOL_ZONE_RAISE = date(2021, 5, 11)
PARKING_CODES: list[tuple[str, str, list[tuple[date, date | None, int, int]]]] = [
    ("P01", "일반 주정차 위반", [(SINCE, None, 40_000, 50_000)]),
    ("P02", "2시간 이상 주정차 위반", [(SINCE, None, 50_000, 60_000)]),
    (
        "P03",
        "어린이보호구역 주정차 위반",
        [(SINCE, SCHOOL_ZONE_RAISE, 80_000, 90_000), (SCHOOL_ZONE_RAISE, None, 120_000, 130_000)],
    ),
    ("P04", "노인·장애인보호구역 주정차 위반", [(SINCE, None, 80_000, 90_000)]),
    ("P05", "소방시설 주변 주정차 위반", [(SINCE, None, 80_000, 90_000)]),
]
PersonRows = list[tuple[date, date | None, int]]
PERSON_CODES: list[tuple[str, str, PersonRows]] = [("S01", "금연구역 흡연", [(SINCE, None, 100_000)])]
ZONES = [
    ("Z11110-001", "11110", "종로초등학교 앞 어린이보호구역", "school"),
    ("Z11110-002", "11110", "종로노인복지관 앞 노인보호구역", "senior"),
    ("Z11110-003", "11110", "종로소방서 앞 소방시설 주변", "fire"),
    ("Z11680-001", "11680", "대치초등학교 앞 어린이보호구역", "school"),
    ("Z11680-002", "11680", "강남역 금연구역", "no_smoking"),
]
DEMO_DEVICES = [("11110", "종로구 주차단속 1호기"), ("11680", "강남구 주차단속 1호기")]
OFFICER_NAMES = {
    ("11110", 1): "김단속",
    ("11110", 2): "이단속",
    ("11680", 1): "박단속",
    ("11680", 2): "최단속",
}


class DemoRefused(RuntimeError):
    """Demo data is never loaded into a production database."""


@dataclass(frozen=True)
class DemoDevice:
    device_id: str
    jurisdiction: str
    label: str
    enrollment_code: str


def demo_device_id(jurisdiction: str, label: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"jingsu-demo-device:{jurisdiction}:{label}"))


def load_demo(
    session: Session, *, password: str, now: datetime, production: bool, code_ttl: timedelta
) -> list[DemoDevice]:
    """Load (or bring up to date) the demo data; returns the demo devices with fresh enrollment codes."""
    if production:
        raise DemoRefused("demo data is refused when JINGSU_ENV=production")
    feed.register_writer(session)  # the codes and zones it loads are changes for devices
    upsert_jurisdiction(
        session, *SEOUL_CITY, level=CITY_LEVEL, parent_code=None, address="서울특별시 중구 세종대로 110"
    )
    for code, name in DISTRICTS:
        upsert_jurisdiction(session, code, name, DISTRICT_LEVEL, SEOUL_CITY[0], OFFICE_ADDRESS.get(code))
    upsert_revenue_item(session, "41", "주정차위반 과태료", "fine_act")
    upsert_revenue_item(session, "71", "금연구역 흡연 과태료", "fine_act")
    for code, name, rows in PARKING_CODES:
        upsert_violation_code(session, DefineViolationCode(code, name, "parking", "41", "도로교통법 §160③"))
        for valid_from, valid_to, car, van in rows:
            for vehicle_type, amount in (("car", car), ("van", van)):
                ensure_fine_row(
                    session,
                    DefineFineRow(
                        code,
                        amount,
                        valid_from,
                        vehicle_type=vehicle_type,
                        valid_to=valid_to,
                        source="도로교통법 시행령 별표6 (demo)",
                    ),
                )
    for code, name, person_rows in PERSON_CODES:
        upsert_violation_code(session, DefineViolationCode(code, name, "person", "71", "국민건강증진법 §34"))
        for valid_from, valid_to, amount in person_rows:
            ensure_fine_row(session, DefineFineRow(code, amount, valid_from, valid_to=valid_to, source="demo"))
    for zone_id, jurisdiction, name, kind in ZONES:
        upsert_zone(session, zone_id, jurisdiction, name, kind)

    ensure_user(session, CreateUser("admin", "시스템관리자", "admin", SEOUL_CITY[0], password))
    ensure_user(session, CreateUser("auditor", "감사관", "auditor", SEOUL_CITY[0], password))
    for district in DEMO_DISTRICTS:
        ensure_user(session, CreateUser(f"clerk.{district}", f"담당자{district}", "clerk", district, password))
        ensure_user(session, CreateUser(f"approver.{district}", f"결재자{district}", "approver", district, password))
        ensure_user(session, CreateUser(f"auditor.{district}", f"감사담당{district}", "auditor", district, password))
        for n in (1, 2):
            ensure_user(
                session,
                CreateUser(f"officer.{district}.{n}", OFFICER_NAMES[(district, n)], "officer", district, password),
            )

    devices = []
    for jurisdiction, label in DEMO_DEVICES:
        device_id = demo_device_id(jurisdiction, label)
        device = session.get(Device, device_id)
        if device is None:
            device, code = register_device(
                session, RegisterDevice(jurisdiction, label, device_id), Actor.system(), now, code_ttl
            )
        elif device.status == REVOKED:
            continue  # a revoked device stays revoked, demo or not
        else:
            code = new_enrollment_code(session, device, now, code_ttl)
        devices.append(DemoDevice(device.id, jurisdiction, label, code))
    session.flush()
    return devices
