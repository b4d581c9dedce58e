"""The fine case API through the real app (server/api/fines.py), with the registry and e-approval sandbox processes.

One parking and one person case walk through every stage — synced, advance_noticed, opinion_submitted, imposed,
objected, referred, decided / closed, paid, cancelled — and every transition the stage does not allow answers 409
``invalid_transition``. The e-approval callback is the sandbox's real signed one, received by a plain HTTP server
and handed to the app as it arrived. The clock is the only thing moved by hand.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from flask import Flask
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from models import payments
from models.base import Actor
from sandboxes.launcher import start_approval, start_registry
from sandboxes.launcher import stop as stop_approval
from sandboxes.launcher import stop as stop_registry
from server import create_app
from server.config import Config
from tests.conftest import free_port
from tests.support.device import KST, Device, now_kst, staff_token
from tests.support.outbox import deliver_for

REGISTRY_KEY = "1e91" * 16
APPROVAL_SECRET = "a99e" * 16
PROBLEM_JSON = "application/problem+json"


class Clock:
    """The app's clock: starts now, moved forward by the test (tokens are signed before it moves)."""

    def __init__(self) -> None:
        self.now = now_kst()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, days: int) -> None:
        self.now += timedelta(days=days)

    @property
    def today(self) -> date:
        return self.now.date()


class Receiver:
    """Where the e-approval sandbox sends its callbacks (the app's pay_base_url points here)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.received.append((self.path, dict(self.headers.items()), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def wait_for(self, submission_id: str, timeout: float = 10.0) -> tuple[str, dict[str, str], bytes]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for path, headers, body in self.received:
                    if json.loads(body).get("submission_id") == submission_id:
                        return path, headers, body
            time.sleep(0.05)
        raise AssertionError(f"no callback for {submission_id}")


@dataclasses.dataclass
class Sandboxes:
    registry_url: str
    approval_url: str
    receiver: Receiver

    def decide(self, submission_id: str, decision: str = "approve") -> None:
        response = httpx.post(
            f"{self.approval_url}/approvals/{submission_id}/decide",
            json={"decision": decision, "approver": "박결재", "comment": "API 시험"},
            timeout=10,
        )
        assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def sandboxes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandboxes]:
    logs = tmp_path_factory.mktemp("fines-sandboxes")
    registry_port, approval_port = free_port(), free_port()
    registry = start_registry(registry_port, REGISTRY_KEY, log_path=logs / "registry.log")
    approval = start_approval(approval_port, APPROVAL_SECRET, log_path=logs / "approval.log")
    receiver = Receiver()
    yield Sandboxes(f"http://127.0.0.1:{registry_port}", f"http://127.0.0.1:{approval_port}", receiver)
    receiver.server.shutdown()
    receiver.server.server_close()
    stop_approval(approval)
    stop_registry(registry)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(connection: Connection, test_config: Config, sandboxes: Sandboxes, clock: Clock) -> Flask:
    config = dataclasses.replace(
        test_config,
        registry_url=sandboxes.registry_url,
        registry_key=REGISTRY_KEY,
        approval_url=sandboxes.approval_url,
        approval_secret=APPROVAL_SECRET,
        pay_base_url=sandboxes.receiver.url,
    )
    return create_app(config, bind=connection, clock=clock)


@pytest.fixture
def clerk(client: httpx.Client) -> dict[str, str]:
    return {"Authorization": f"Bearer {staff_token(client, 'clerk.11110')}"}


@pytest.fixture
def device(client: httpx.Client) -> Device:
    return Device.enrolled(client, "11110")


def ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["code"] == code


class Api:
    def __init__(self, client: httpx.Client, headers: dict[str, str]) -> None:
        self.client, self.headers = client, headers

    def case(self, notice_no: str) -> dict[str, Any]:
        return ok(self.client.get(f"/api/v1/fines/{notice_no}", headers=self.headers))

    def act(self, notice_no: str, action: str, body: dict[str, Any], version: int | None = None) -> httpx.Response:
        headers = dict(self.headers)
        if version is not None:
            headers["If-Match"] = f'"{version}"'
        return self.client.post(f"/api/v1/fines/{notice_no}/{action}", json=body, headers=headers)

    def refused(self, notice_no: str, attempts: dict[str, dict[str, Any]]) -> None:
        """Every attempt answers 409 invalid_transition and leaves the case as it was."""
        before = self.case(notice_no)
        for action, body in attempts.items():
            problem(self.act(notice_no, action, body), 409, "invalid_transition")
        assert self.case(notice_no) == before


TODAY = "2026-01-01"  # placeholder dates in bodies that are refused before they matter
ANY = {
    "opinions": {"summary": "의견"},
    "opinion-decision": {"decision": "reject", "reason": "기각"},
    "hardship": {"grounds": ["minor"], "reason": "미성년자"},
    "cancel": {"reason": "직권취소"},
    "imposition-receipt": {"received_on": TODAY},
    "objection": {"filed_on": TODAY, "reason": "이의"},
    "objection-withdrawal": {"reason": "취하"},
    "referral": {"court": "서울중앙지방법원", "reason": "통보"},
    "court-decision": {"outcome": "confirmed", "decided_on": TODAY, "amount": 40_000, "reason": "결정"},
}


def refused_actions(*names: str) -> dict[str, dict[str, Any]]:
    return {name: ANY[name] for name in names}


def pay(connection: Connection, notice_no: str, amount: int, at: datetime) -> None:
    """A payment the gateway confirmed, posted as the callback would (the gateway has its own tests)."""
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        received = payments.ReceivedPayment("sandbox", uuid.uuid4().hex, "qr", notice_no, amount, at)
        payments.post_payment(session, received, Actor(label="gateway:sandbox"), at)
        session.commit()


def forward_callback(client: httpx.Client, sandboxes: Sandboxes, submission_id: str) -> httpx.Response:
    """Hand the sandbox's signed callback to the app byte for byte, on the path it was sent to."""
    path, headers, body = sandboxes.receiver.wait_for(submission_id)
    keep = {k: v for k, v in headers.items() if k.lower().startswith(("x-approval-", "content-type"))}
    return client.post(path, content=body, headers=keep)


def test_a_parking_and_a_person_case_walk_through_every_stage_and_every_invalid_transition_is_a_409(
    app, client, clerk, device, sandboxes, clock, connection
):
    api = Api(client, clerk)
    parking_event, person_event = device.issue_parking(), device.issue_person(name="홍길동", rrn="900101-1234560")
    cancelled_event = device.issue_person(name="김취소")
    device.push_ok([parking_event, person_event, cancelled_event])
    parking, person, to_cancel = parking_event["notice_no"], person_event["notice_no"], cancelled_event["notice_no"]

    # synced (parking) / advance_noticed (person: the slip is the 사전통지; a failing RRN checksum is kept)
    assert api.case(parking)["stage"] == "synced"
    case = api.case(person)
    assert (case["stage"], case["party"]["name"]) == ("advance_noticed", "홍*동")
    assert case["party"]["identifier"] == "900101-1******"
    assert case["advance_notice"]["form"].startswith("현장 고지서") and case["advance_notice"]["channel"] == "on_site"
    api.refused(
        parking,
        refused_actions(
            "opinions",
            "opinion-decision",
            "imposition-receipt",
            "objection",
            "objection-withdrawal",
            "referral",
            "court-decision",
        ),
    )

    # 차적조회 → 사전통지 (electronic): queued in the outbox, asked and applied by the worker's delivery
    report = ok(client.post("/api/v1/owner-lookups", json={"channel": "electronic"}, headers=clerk), 202)
    assert parking in report["notices"] and report["queued"] == len(report["notices"])
    assert api.case(parking)["stage"] == "synced"  # asked, not answered yet
    assert deliver_for(app).outcomes["registry.lookup:noticed"] >= 1
    case = api.case(parking)
    assert case["stage"] == "advance_noticed" and "*" in case["party"]["name"]
    [advance] = case["documents"]
    assert advance["kind"] == "advance_notice" and advance["channel"] == "electronic"
    assert advance["data"]["self_payment"]["reduced_amount"] == 32_000 and "*" in advance["addressee"]

    # opinion → opinion_submitted → rejected (back to advance_noticed); a stale If-Match is a 412
    submitted = api.act(parking, "opinions", {"summary": "잠시 정차했습니다", "channel": "oral", "speaker": "김민준"})
    assert (
        ok(submitted)["stage"] == "opinion_submitted" and submitted.headers["ETag"] == f'"{ok(submitted)["version"]}"'
    )
    api.refused(parking, refused_actions("opinions", "objection", "referral", "court-decision"))
    problem(api.act(parking, "opinion-decision", ANY["opinion-decision"], version=1), 412, "precondition_failed")
    decided = api.act(parking, "opinion-decision", ANY["opinion-decision"], version=ok(submitted)["version"])
    assert ok(decided)["stage"] == "advance_noticed"

    # hardship (person): 100,000 → 50,000; its 자진납부 price 40,000
    reduced = ok(api.act(person, "hardship", {"grounds": ["minor"], "reason": "미성년자 확인서"}))
    assert (reduced["amount"], reduced["balance"], reduced["self_payment_amount"]) == (50_000, 50_000, 40_000)
    api.refused(person, refused_actions("hardship"))

    # 직권취소 before imposition → cancelled
    assert ok(api.act(to_cancel, "cancel", {"reason": "오발부"}))["stage"] == "cancelled"
    api.refused(to_cancel, refused_actions("opinions", "cancel", "objection", "hardship"))

    # the periods are over: one 일괄 결정결의, approved in e-approval, applied by its signed callback
    clock.advance(20)
    batch = ok(client.post("/api/v1/imposition-batches", json={"jurisdiction": "11110"}, headers=clerk), 201)
    assert batch["status"] == "submitting" and batch["submission_id"] is None  # its submission is in the outbox
    assert {parking, person} <= {i["notice_no"] for i in batch["items"]}
    assert to_cancel not in {i["notice_no"] for i in batch["items"]}
    problem(client.post("/api/v1/imposition-batches", json={"jurisdiction": "11110"}, headers=clerk), 409,
            "nothing_to_impose")  # fmt: skip
    assert deliver_for(app).outcomes == {"approval.submit:submitted": 1}
    batch = ok(client.get(f"/api/v1/imposition-batches/{batch['id']}", headers=clerk))
    assert batch["status"] == "submitted" and batch["submission_id"]
    sandboxes.decide(batch["submission_id"])
    path, headers, body = sandboxes.receiver.wait_for(batch["submission_id"])
    forged = {**headers, "X-Approval-Signature": "0" * 64}
    problem(client.post(path, content=body, headers=forged), 401, "signature_invalid")
    assert ok(forward_callback(client, sandboxes, batch["submission_id"]))["result"] == "applied"
    assert ok(forward_callback(client, sandboxes, batch["submission_id"]))["result"] == "already_applied"
    applied = ok(client.get(f"/api/v1/imposition-batches/{batch['id']}", headers=clerk))
    assert applied["status"] == "applied" and applied["decided_by"] == "박결재"
    for number in (parking, person):
        case = api.case(number)
        assert case["stage"] == "imposed"
        assert case["due_date"] == (clock.today + timedelta(days=60)).isoformat()
        assert [d["kind"] for d in case["documents"]][-1] == "imposition_notice"
    api.refused(
        parking, refused_actions("opinions", "opinion-decision", "hardship", "cancel", "referral", "court-decision")
    )

    # objection: the electronic notice was received when sent; the person's by mail, recorded now
    receipt = api.act(person, "imposition-receipt", {"received_on": clock.today.isoformat()})
    assert ok(receipt)["objection_deadline"] == (clock.today + timedelta(days=60)).isoformat()
    for number in (parking, person):
        objected = ok(api.act(number, "objection", {"filed_on": clock.today.isoformat(), "reason": "위반 아님"}))
        assert objected["stage"] == "objected"
        assert objected["referral_deadline"] == (clock.today + timedelta(days=14)).isoformat()
    api.refused(parking, refused_actions("objection", "court-decision", "cancel"))

    # not referred in 14 days: listed overdue
    clock.advance(15)
    overdue = ok(client.get("/api/v1/court-referrals/overdue", headers=clerk))["items"]
    assert {parking, person} <= {item["notice_no"] for item in overdue}
    for number in (parking, person):
        assert ok(api.act(number, "referral", {"court": "서울중앙지방법원", "reason": "의견 및 증거 송부"}))[
            "stage"
        ] == ("referred")
    api.refused(parking, refused_actions("referral", "objection-withdrawal", "objection"))

    # the court: parking confirmed (decided, collectible again, then paid); person dismissed (closed)
    decided_on = clock.today.isoformat()
    confirmed = {"outcome": "confirmed", "decided_on": decided_on, "amount": 40_000, "reason": "과태료 40,000원"}
    case = ok(api.act(parking, "court-decision", confirmed))
    assert (case["stage"], case["court_outcome"], case["balance"]) == ("decided", "confirmed", 40_000)
    dismissed = {"outcome": "dismissed", "decided_on": decided_on, "reason": "불처벌"}
    case = ok(api.act(person, "court-decision", dismissed))
    assert (case["stage"], case["notice_status"], case["balance"]) == ("closed", "cancelled", 0)
    api.refused(person, refused_actions(*ANY))

    pay(connection, parking, 40_000, clock.now)
    case = api.case(parking)
    assert (case["stage"], case["notice_status"], case["balance"]) == ("paid", "paid", 0)
    api.refused(parking, refused_actions(*ANY))

    # the timeline: notice history, case events and ledger entries, personal data masked
    timeline = ok(client.get(f"/api/v1/notices/{parking}/timeline", headers=clerk))
    whats = [item["what"] for item in timeline["items"]]
    for what in ("issued", "synced", "owner_found", "advance_notice", "submit_opinion", "reject_opinion",
                 "imposition_proposed", "impose", "object", "refer", "decide", "paid", "pay", "ledger.charge",
                 "ledger.payment"):  # fmt: skip
        assert what in whats, what
    assert timeline["stage"] == "paid"
    person_timeline = json.dumps(
        ok(client.get(f"/api/v1/notices/{person}/timeline", headers=clerk)), ensure_ascii=False
    )
    assert "홍길동" not in person_timeline and "900101" not in person_timeline


def test_a_clerk_applies_an_approved_batch_through_the_adapters_status(app, client, clerk, device, sandboxes, clock):
    event = device.issue_person(name="이수정")
    device.push_ok([event])
    clock.advance(20)
    batch = ok(client.post("/api/v1/imposition-batches", json={"jurisdiction": "11110"}, headers=clerk), 201)
    waiting = ok(client.post(f"/api/v1/imposition-batches/{batch['id']}/refresh", headers=clerk))
    assert waiting["status"] == "submitting"  # the worker has not submitted it yet: nothing to ask
    deliver_for(app)
    refreshed = ok(client.post(f"/api/v1/imposition-batches/{batch['id']}/refresh", headers=clerk))
    assert refreshed["status"] == "submitted"  # nothing decided yet
    batch = refreshed

    sandboxes.decide(batch["submission_id"], "reject")
    rejected = ok(client.post(f"/api/v1/imposition-batches/{batch['id']}/refresh", headers=clerk))

    assert rejected["status"] == "rejected" and {i["outcome"] for i in rejected["items"]} == {"rejected"}
    assert Api(client, clerk).case(event["notice_no"])["stage"] == "advance_noticed"
    assert ok(forward_callback(client, sandboxes, batch["submission_id"]))["result"] == "already_applied"


def test_another_districts_clerk_sees_no_case(client, device):
    event = device.issue_person()
    device.push_ok([event])
    other = {"Authorization": f"Bearer {staff_token(client, 'clerk.11680')}"}
    problem(client.get(f"/api/v1/fines/{event['notice_no']}", headers=other), 404, "not_found")
    problem(client.post(f"/api/v1/fines/{event['notice_no']}/cancel", json={"reason": "x"}, headers=other), 404,
            "not_found")  # fmt: skip
    problem(client.post("/api/v1/imposition-batches", json={"jurisdiction": "11110"}, headers=other), 404, "not_found")


@pytest.mark.parametrize("day, amount", [(date(2021, 5, 10), 80_000), (date(2021, 5, 11), 120_000)])
def test_a_device_issued_school_zone_notice_is_priced_by_the_schedule_of_its_day(client, clerk, device, day, amount):
    observed = datetime(day.year, day.month, day.day, 10, tzinfo=KST)
    event = device.issue_parking(code="P03", observed_at=observed, occurred_at=now_kst())
    assert event["data"]["amount"] == amount and event["data"]["reduced_amount"] == amount * 8 // 10
    [result] = device.push_ok([event])["results"]
    assert result["status"] == "accepted" and "amount_mismatch" not in result["flags"]
    notice = ok(client.get(f"/api/v1/notices/{event['notice_no']}", headers=clerk))
    assert (notice["amount"], notice["receivable"]["balance"]) == (amount, amount)
