"""A test device that speaks PROTOCOL.md over HTTP with httpx, building every event with ``protocol``.

It keeps just enough state to be a well-behaved device (seq, hash chain, cursor, blocks, schedule), and lets tests
misbehave on purpose (skip a seq, break the chain, print a wrong amount, tamper with the QR).
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

import httpx

import protocol

KST = timezone(timedelta(hours=9))
DEMO_PASSWORD = "jingsu-demo"

# a fresh plate for every parking notice that does not name one: the same plate, code and place within minutes is
# flagged possible_duplicate (PROTOCOL.md §2), which a test means only when it says so
_plates = itertools.count(1)


def fresh_plate() -> str:
    n = next(_plates)
    return f"{10 + n // 10_000 % 90}가{n % 10_000:04d}"


def now_kst() -> datetime:
    return datetime.now(KST).replace(microsecond=0)


def staff_token(client: httpx.Client, login: str, password: str = DEMO_PASSWORD) -> str:
    response = client.post("/api/v1/auth/login", json={"login": login, "password": password})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def register_device(
    client: httpx.Client, jurisdiction: str, label: str = "테스트 단말", *, admin_token: str | None = None
) -> tuple[str, str]:
    """As admin (signing in unless ``admin_token`` is given): register a device; returns (device_id, code)."""
    token = admin_token or staff_token(client, "admin")
    response = client.post(
        "/api/v1/devices",
        json={"jurisdiction": jurisdiction, "label": label},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return body["device_id"], body["enrollment_code"]


@dataclass
class Device:
    client: httpx.Client
    device_id: str = ""
    device_secret: str = ""
    qr_key: str = ""
    pay_base_url: str = ""
    jurisdiction: str = ""
    token: str = ""
    officer_id: int = 0
    seq: int = 0
    last_hash: str = protocol.GENESIS_HASH
    cursor: str | None = None
    epoch: str | None = None
    schedule: list[protocol.ScheduleRow] = field(default_factory=list)
    numbers: list[str] = field(default_factory=list)  # unused numbers from pulled blocks, in order
    versions: dict[str, int] = field(default_factory=dict)

    # --- enrollment and sign-in ---------------------------------------------------------------------------------

    @classmethod
    def enrolled(
        cls,
        client: httpx.Client,
        jurisdiction: str = "11110",
        officer: str | None = None,
        *,
        admin_token: str | None = None,
    ) -> Device:
        """Register (as admin), enroll, sign in and pull once: a device ready to issue."""
        _, code = register_device(client, jurisdiction, admin_token=admin_token)
        device = cls(client)
        device.enroll(code)
        device.login(officer or f"officer.{jurisdiction}.1")
        device.pull_all()
        return device

    def enroll(self, code: str) -> httpx.Response:
        response = self.client.post(
            "/sync/v1/enroll", json={"enrollment_code": code, "model": "test-pda", "app_version": "test"}
        )
        if response.status_code == 201:
            body = response.json()
            self.device_id = body["device_id"]
            self.device_secret = body["device_secret"]
            self.qr_key = body["qr_key"]
            self.pay_base_url = body["pay_base_url"]
            self.jurisdiction = body["jurisdiction"]
            self.epoch = body["epoch"]
        return response

    def sign_in(self, officer_login: str, password: str = DEMO_PASSWORD) -> httpx.Response:
        return self.client.post(
            "/sync/v1/session",
            json={
                "device_id": self.device_id,
                "device_secret": self.device_secret,
                "officer_login": officer_login,
                "password": password,
            },
        )

    def login(self, officer_login: str, password: str = DEMO_PASSWORD) -> None:
        response = self.sign_in(officer_login, password)
        assert response.status_code == 200, response.text
        body = response.json()
        self.token = body["access_token"]
        self.officer_id = body["officer"]["id"]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Jingsu-Protocol": "1"}

    # --- pull --------------------------------------------------------------------------------------------------

    def pull(self, cursor: str | None = None, limit: int | None = None) -> httpx.Response:
        params: dict[str, Any] = {}
        if cursor is not None:
            params["cursor"] = cursor
        if limit is not None:
            params["limit"] = limit
        return self.client.get("/sync/v1/changes", params=params, headers=self.headers)

    def pull_all(self) -> list[dict[str, Any]]:
        """Pull pages until ``has_more`` is false, applying each; returns every change seen."""
        seen: list[dict[str, Any]] = []
        while True:
            response = self.pull(self.cursor)
            assert response.status_code == 200, response.text
            page = response.json()
            for change in page["changes"]:
                self._apply(change)
            seen.extend(page["changes"])
            self.cursor = page["next_cursor"]
            self.epoch = page["epoch"]
            if not page["has_more"]:
                return seen

    def _apply(self, change: dict[str, Any]) -> None:
        if change["entity"] == "fine_schedule" and change["op"] == "upsert":
            row = protocol.ScheduleRow.from_wire(change["data"])
            self.schedule = [r for r in self.schedule if r.key != row.key] + [row]
        elif change["entity"] == "number_block" and change["op"] == "upsert":
            first = protocol.parse_notice_no(change["data"]["first"])
            assert first is not None
            for serial in range(first.serial, first.serial + change["data"]["count"]):
                self.numbers.append(protocol.format_notice_no(first.jurisdiction, first.year2, serial))
        elif change["entity"] == "notice_status":
            self.versions[change["key"]] = change["data"]["version"]
        elif change["entity"] == "device_settings":
            self.pay_base_url = change["data"]["pay_base_url"]

    # --- events ------------------------------------------------------------------------------------------------

    def next_number(self) -> str:
        return self.numbers.pop(0)

    def _event(
        self,
        type_: str,
        notice_no: str,
        data: dict[str, Any],
        *,
        base_version: int | None = None,
        occurred_at: datetime | None = None,
        seq: int | None = None,
        prev_hash: str | None = None,
        link: bool = True,
    ) -> dict[str, Any]:
        """Make the device's next event; ``link=False`` makes an event outside the chain (not counted)."""
        if seq is None:
            seq = self.seq + 1
        event = {
            "event_id": str(uuid.uuid4()),
            "seq": seq,
            "type": type_,
            "notice_no": notice_no,
            "base_version": base_version,
            "occurred_at": (occurred_at or now_kst()).isoformat(),
            "data": {"prev_hash": self.last_hash if prev_hash is None else prev_hash, **data},
        }
        if link:
            self.seq = max(self.seq, seq)
            self.last_hash = protocol.event_hash(event)
        return event

    def amounts(
        self, code: str, vehicle_type: str | None, observed_at: datetime, zone: str | None = None
    ) -> protocol.Amounts:
        row = protocol.select_schedule(self.schedule, code, vehicle_type, zone, protocol.seoul_date(observed_at))
        assert row is not None, f"no schedule for {code} {vehicle_type} on {observed_at}"
        return protocol.compute_amounts(row, observed_at)

    def issue_parking(
        self,
        *,
        plate: str | None = None,
        code: str = "P01",
        vehicle_type: str = "car",
        notice_no: str | None = None,
        observed_at: datetime | None = None,
        amount: int | None = None,
        qr: str | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """A ``notice.issued`` for a parking violation, computed as a real device would."""
        observed_at = observed_at or now_kst()
        notice_no = notice_no or self.next_number()
        plate = plate or fresh_plate()
        am = self.amounts(code, vehicle_type, observed_at)
        printed = amount if amount is not None else am.amount
        reduced = protocol.reduced_amount(printed, "0.20", 10) if amount is not None else am.reduced_amount
        data = {
            "kind": "parking",
            "violation_code": code,
            "schedule_key": am.schedule_key,
            "amount": printed,
            "reduced_amount": reduced,
            "opinion_deadline": am.opinion_deadline.isoformat(),
            "vehicle": {"plate": plate, "type": vehicle_type},
            "place": {"address": "서울특별시 종로구 세종대로 175", "lat": 37.5720, "lon": 126.9769},
            "observed_at": observed_at.isoformat(),
            "photos": [],
            "officer_id": self.officer_id,
            "qr": qr
            or protocol.qr_url(self.pay_base_url, self.qr_key, notice_no, printed, reduced, am.opinion_deadline),
        }
        return self._event(
            protocol.NOTICE_ISSUED, notice_no, data, occurred_at=kwargs.pop("occurred_at", observed_at), **kwargs
        )

    def issue_person(
        self,
        *,
        name: str = "홍길동",
        rrn: str = "900101-1234567",
        birth_date: date = date(1990, 1, 1),
        observed_at: datetime | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        observed_at = observed_at or now_kst()
        notice_no = self.next_number()
        am = self.amounts("S01", None, observed_at)
        data = {
            "kind": "person",
            "violation_code": "S01",
            "schedule_key": am.schedule_key,
            "amount": am.amount,
            "reduced_amount": am.reduced_amount,
            "opinion_deadline": am.opinion_deadline.isoformat(),
            "offender": {
                "name": name,
                "birth_date": birth_date.isoformat(),
                "rrn": rrn,
                "address": "서울특별시 종로구 종로 1",
                "phone": "010-1234-5678",
            },
            "place": {"address": "서울특별시 종로구 종로 1 금연구역"},
            "observed_at": observed_at.isoformat(),
            "photos": [],
            "officer_id": self.officer_id,
            "qr": protocol.qr_url(
                self.pay_base_url, self.qr_key, notice_no, am.amount, am.reduced_amount, am.opinion_deadline
            ),
        }
        return self._event(protocol.NOTICE_ISSUED, notice_no, data, occurred_at=observed_at, **kwargs)

    def void(
        self, notice_no: str, reason_code: str = "wrong_vehicle", base_version: int | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        version = base_version if base_version is not None else self.versions.get(notice_no, 1)
        return self._event(
            protocol.NOTICE_VOIDED, notice_no, {"reason_code": reason_code}, base_version=version, **kwargs
        )

    # --- push --------------------------------------------------------------------------------------------------

    def batch(
        self, events: list[dict[str, Any]], *, device_time: datetime | None = None, batch_id: str | None = None
    ) -> dict[str, Any]:
        return {
            "batch_id": batch_id or str(uuid.uuid4()),
            "device_time": (device_time or now_kst()).isoformat(),
            "events": events,
        }

    def push(self, events: list[dict[str, Any]], **kwargs: Any) -> httpx.Response:
        return self.client.post("/sync/v1/push", json=self.batch(events, **kwargs), headers=self.headers)

    def push_raw(self, body: Any = None, *, content: bytes | None = None) -> httpx.Response:
        """POST any body to ``/sync/v1/push`` with this device's headers, malformed ones included (``content`` sends
        raw bytes instead of JSON)."""
        if content is not None:
            headers = {**self.headers, "Content-Type": "application/json"}
            return self.client.post("/sync/v1/push", content=content, headers=headers)
        return self.client.post("/sync/v1/push", json=body, headers=self.headers)

    def relink(self, event: dict[str, Any]) -> dict[str, Any]:
        """Make ``event``, the device's latest event changed after it was made, the last link of its chain again, so
        the next event's ``prev_hash`` is right; returns it."""
        self.last_hash = protocol.event_hash(event)
        return event

    def push_ok(self, events: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
        response = self.push(events, **kwargs)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        for result in body["results"]:
            if result["status"] in ("accepted", "duplicate") and result.get("notice_no"):
                self.versions[result["notice_no"]] = result["version"]
        return body
