"""Factories: the data the tests build, shared across test modules (STYLE.md: a test sets only the fields it asserts
on, the rest comes from here).

- ``parking_command`` / ``paid``: a 40,000 won P01 parking notice as a device issues it, and a payment the gateway
  reports (the payment and treasury tests);
- ``Maker``: notices issued on today's schedule rules, parking or person, with fresh numbers (the fine's life);
- ``maker`` / ``advance_noticed``: parking notices whose owners a ``FakeRegistry`` knows, 사전통지 sent (print runs).

Fixtures that use them live in the conftest.py of their tier (``issue`` in ``tests/integration/conftest.py``).
"""

from __future__ import annotations

import dataclasses
import itertools
import time
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import protocol
from models import devices, notices, payments
from models.base import Actor
from models.catalog import schedule_rules
from models.crypto import PiiCipher
from models.devices import RegisterDevice, register_device
from models.feed import register_writer
from models.users import User
from tests.conftest import TEST_LOOKUP_KEY, TEST_PII_KEY
from tests.support.outbox import look_up_owners

KST = timezone(timedelta(hours=9))
CIPHER = PiiCipher(TEST_PII_KEY, TEST_LOOKUP_KEY)
CLERK = Actor(label="clerk-test")


def kst(day: date, hour: int = 14) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=KST)


# --- a parking notice as a device issues it, and its payment -------------------------------------------------------

OBSERVED = datetime(2026, 11, 25, 5, 0, tzinfo=UTC)  # 14:00 in Seoul
DEADLINE = date(2026, 12, 9)


def parking_command(
    notice_no: str,
    device_id: str,
    officer_id: int,
    plate: str = "12가3456",
    jurisdiction: str = "11110",
    revenue_item: str | None = None,
) -> notices.IssueNotice:
    """A 40,000 won P01 parking notice as a device issues it, observed at ``OBSERVED``."""
    return notices.IssueNotice(
        notice_no=notice_no,
        event_id=str(uuid.uuid4()),
        device_id=device_id,
        jurisdiction=jurisdiction,
        kind="parking",
        violation_code="P01",
        schedule_key="P01:car:-@2008-06-22",
        amount=40000,
        reduced_amount=32000,
        opinion_deadline=DEADLINE,
        place_address="서울특별시 종로구 종로 1",
        observed_at=OBSERVED,
        issued_at=OBSERVED,
        qr="http://localhost/p/x",
        officer_id=officer_id,
        vehicle_plate=plate,
        vehicle_type="car",
        revenue_item=revenue_item,
    )


def paid(notice_no: str | None, amount: int, on: datetime, txn: str = "t1") -> payments.ReceivedPayment:
    return payments.ReceivedPayment("sandbox", txn, "qr", notice_no, amount, on)


# --- notices on the schedule rules in force ---------------------------------------------------------------------------

_serials = itertools.count(1_000_000 + int(time.time()) % 1_000_000)


@dataclasses.dataclass
class Maker:
    """Issues notices from one device and officer on the schedule rules in force, each with a fresh number."""

    session: Any
    device_id: str
    officer_id: int

    def notice_no(self) -> str:
        return protocol.format_notice_no("11110", "26", next(_serials) % 10_000_000)

    def _schedule(self, code: str, vehicle_type: str | None, zone: str | None, on: date) -> protocol.ScheduleRow:
        row = protocol.select_schedule(schedule_rules(self.session, code), code, vehicle_type, zone, on)
        assert row is not None
        return row

    def parking(self, observed: datetime, plate: str = "12가3456", code: str = "P01") -> notices.Notice:
        row = self._schedule(code, "car", None, protocol.seoul_date(observed))
        amounts = protocol.compute_amounts(row, observed)
        return self._issue(
            observed,
            amounts,
            code,
            kind="parking",
            vehicle_plate=plate,
            vehicle_type="car",
            revenue_item="41",
        )

    def person(self, observed: datetime, rrn: str = "900101-1234568", name: str = "홍길동") -> notices.Notice:
        row = self._schedule("S01", None, None, protocol.seoul_date(observed))
        amounts = protocol.compute_amounts(row, observed)
        offender = {"name": name, "rrn": rrn, "address": "서울특별시 종로구 종로 1", "birth_date": "1990-01-01"}
        return self._issue(observed, amounts, "S01", kind="person", offender=offender, revenue_item="71")

    def _issue(self, observed: datetime, amounts: protocol.Amounts, code: str, **kw: Any) -> notices.Notice:
        number = self.notice_no()
        cmd = notices.IssueNotice(
            notice_no=number,
            event_id=str(uuid.uuid4()),
            device_id=self.device_id,
            jurisdiction="11110",
            violation_code=code,
            schedule_key=amounts.schedule_key,
            amount=amounts.amount,
            reduced_amount=amounts.reduced_amount,
            opinion_deadline=amounts.opinion_deadline,
            place_address="서울특별시 종로구 종로 1",
            observed_at=observed,
            issued_at=observed,
            qr=f"http://localhost/p/{number}",
            officer_id=self.officer_id,
            **kw,
        )
        notice = notices.issue_notice(self.session, cmd, Actor(device_id=self.device_id), observed, CIPHER)
        assert notice is not None
        return notice


# --- parking notices whose owners the (fake) registry knows, 사전통지 sent ------------------------------------------

NOTICES_OBSERVED = kst(date(2025, 11, 20))
OWNERS_LOOKED_UP = kst(date(2025, 11, 24), 10)
SURNAMES = "김이박최정강조윤장임"
GIVEN = ("민준", "서연", "지호", "하은", "도윤", "수아", "예준", "지우")


@dataclasses.dataclass(frozen=True)
class Address:
    postal_code: str
    line1: str
    line2: str


@dataclasses.dataclass(frozen=True)
class Owner:
    kind: str
    name: str
    rrn: str | None
    business_no: str | None
    address: Address
    vehicle_type: str = "car"


class FakeRegistry:
    """The vehicle registry as the outbox's 차적조회 asks it: every plate has an owner, a different one each."""

    name = "fake"

    def __init__(self) -> None:
        self.owners: dict[str, Owner] = {}

    def lookup(self, plate: str, on: date, *, idempotency_key: str | None = None) -> Owner:
        n = len(self.owners)
        if plate not in self.owners:
            self.owners[plate] = Owner(
                kind="person",
                name=f"{SURNAMES[n % 10]}{GIVEN[n // 10 % len(GIVEN)]}",
                rrn=f"8503{n % 28 + 1:02d}-1234567",
                business_no=None,
                address=Address(f"03{n % 1000:03d}", f"서울특별시 종로구 삼봉로 {n + 1}", f"{101 + n}호"),
            )
        return self.owners[plate]


def maker(session: Session) -> Maker:
    """A Maker whose device is enrolled (it has the QR key the server signs mailed documents' links with); its
    session's transaction is registered as a writer of changes first, as the server's units of work are."""
    register_writer(session)
    start = datetime(2020, 1, 1, tzinfo=UTC)
    device, code = register_device(session, RegisterDevice("11110", "인쇄 시험 단말"), Actor.system(), start,
                                   timedelta(days=3650))  # fmt: skip
    devices.enroll(session, code, "test", "1.0", start, CIPHER)
    officer = session.scalar(select(User).where(User.login == "officer.11110.1"))
    assert officer is not None
    return Maker(session, device.id, officer.id)


def advance_noticed(
    session: Session, count: int, observed: datetime = NOTICES_OBSERVED, now: datetime = OWNERS_LOOKED_UP
) -> list[str]:
    """``count`` parking notices whose 사전통지 was sent ``now``; their notice numbers."""
    make = maker(session)
    made = [make.parking(observed, plate=f"{10 + i // 9000}가{1000 + i % 9000:04d}") for i in range(count)]
    report = look_up_owners(session, FakeRegistry(), CIPHER, now, jurisdiction="11110", limit=count + 10)
    assert sorted(report.noticed) == sorted(n.notice_no for n in made), report.report.summary()
    session.flush()
    return [n.notice_no for n in made]
