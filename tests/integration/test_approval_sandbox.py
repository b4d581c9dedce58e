"""The e-approval sandbox process against ``HttpApproval`` and a real callback receiver (docs/approval.md). No
database.

One sandbox process serves most tests; tests that stop, restart or reconfigure the sandbox start their own.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.approval import (
    ApprovalDecision,
    ApprovalRefused,
    ApprovalRequest,
    ApprovalSettings,
    ApprovalUnavailable,
    CallbackRejected,
    HttpApproval,
    sign,
)
from sandboxes.launcher import start_approval as start_sandbox
from sandboxes.launcher import stop as stop_sandbox
from tests.conftest import free_port

SECRET = "a9c0" * 16
AMOUNT_TOTAL = 1_280_000
COUNT = 32


# --- Jingsu's callback endpoint, recording what the service sends ----------------------------------------------------


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


class Receiver:
    """``POST /cb/<anything>`` is recorded and answered 200, except ``/cb/fail`` (500). ``/cb/verify`` first runs
    ``verify_with.verify_callback`` on what arrived, as Jingsu's handler does, and keeps the outcome in ``verified``.
    """

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.verify_with: HttpApproval | None = None
        self.verified: dict[str, ApprovalDecision | Exception] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received = Received(self.path, dict(self.headers.items()), body)
                if self.path == "/cb/verify" and receiver.verify_with is not None:
                    outcome: ApprovalDecision | Exception
                    try:
                        outcome = receiver.verify_with.verify_callback(received.headers, received.body)
                    except Exception as exc:  # recorded for the test to assert on
                        outcome = exc
                    receiver.verified[received.json()["submission_id"]] = outcome
                with receiver._lock:
                    receiver.received.append(received)
                self.send_response(500 if self.path == "/cb/fail" else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def callbacks_for(self, submission_id: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.json().get("submission_id") == submission_id]

    def wait_for(self, submission_id: str, timeout: float = 10.0) -> Received:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            callbacks = self.callbacks_for(submission_id)
            if callbacks:
                return callbacks[0]
            time.sleep(0.05)
        raise AssertionError(f"no callback for {submission_id} within {timeout} s")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


class Sandbox:
    """A sandbox process on a free port; ``start()`` again restarts it on the same port and state file."""

    def __init__(self, tmp: Path, state: bool = False, auto_approve_after: float | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.state_path = tmp / "approval-state.json" if state else None
        self.log_path = tmp / "approval.log"
        self.auto_approve_after = auto_approve_after
        self.proc: Any = None

    def start(self) -> Sandbox:
        self.proc = start_sandbox(
            self.port, SECRET, self.state_path, auto_approve_after=self.auto_approve_after, log_path=self.log_path
        )
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_sandbox(self.proc)

    def service(self, secret: str = SECRET, *, timeout: float = 10.0, **kwargs: Any) -> HttpApproval:
        return HttpApproval(ApprovalSettings(self.url, secret, timeout=timeout), **kwargs)

    def decide(self, submission_id: str, decision: str, approver: str = "박결재", comment: str = "") -> httpx.Response:
        """The approver's decision, as JSON."""
        return httpx.post(
            f"{self.url}/approvals/{submission_id}/decide",
            json={"decision": decision, "approver": approver, "comment": comment},
            trust_env=False,
            timeout=15,
        )

    def operator(self, method: str, submission_id: str) -> httpx.Response:
        """The signed sandbox-only calls on ``/v1/submissions/<id>/callbacks``."""
        path = f"/v1/submissions/{submission_id}/callbacks"
        timestamp = str(int(time.time()))
        headers = {
            "X-Jingsu-Timestamp": timestamp,
            "X-Jingsu-Signature": sign(bytes.fromhex(SECRET), timestamp, f"{method} {path}".encode()),
        }
        return httpx.request(method, self.url + path, headers=headers, trust_env=False, timeout=15)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    box = Sandbox(tmp_path_factory.mktemp("approval")).start()
    yield box
    box.stop()


@pytest.fixture
def own_sandbox() -> Iterator[list[Sandbox]]:
    boxes: list[Sandbox] = []
    yield boxes
    for box in boxes:
        box.stop()


def document(receiver: Receiver, *, callback: str = "/cb/jingsu", **changes: Any) -> ApprovalRequest:
    fields: dict[str, Any] = {
        "title": "2025년 11월 주정차위반 과태료 일괄 부과 결의",
        "document_type": "imposition_batch",
        "reference_id": f"batch-{uuid.uuid4().hex[:12]}/1",
        "amount_total": AMOUNT_TOTAL,
        "count": COUNT,
        "requested_by": "clerk-gangnam-01",
        "callback_url": receiver.url + callback,
        **changes,
    }
    return ApprovalRequest(**fields)


def forged(body: dict[str, Any], timestamp: int | None = None, secret: str = SECRET) -> tuple[dict[str, str], bytes]:
    """A callback signed with ``secret``: what a holder of the secret (or a replayed body) could send."""
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {"X-Approval-Timestamp": ts, "X-Approval-Signature": sign(bytes.fromhex(secret), ts, raw)}, raw


# --- submit, decide, call back, verify ------------------------------------------------------------------------------


def test_a_submitted_document_is_pending_until_decided(sandbox: Sandbox, receiver: Receiver) -> None:
    service = sandbox.service()
    doc = document(receiver)

    submission_id = service.submit(doc)
    status = service.status(submission_id)

    assert re.fullmatch(r"apv_[0-9a-f]{24}", submission_id)
    assert status == ApprovalDecision(
        submission_id=submission_id,
        reference_id=doc.reference_id,
        document_type="imposition_batch",
        amount_total=AMOUNT_TOTAL,
        count=COUNT,
        status="pending",
        decided_by=None,
        decided_at=None,
        comment="",
    )
    assert not status.decided
    assert receiver.callbacks_for(submission_id) == []


def test_an_approval_sends_a_signed_callback_that_verify_callback_accepts(sandbox: Sandbox, receiver: Receiver) -> None:
    service = sandbox.service()
    submission_id = service.submit(document(receiver))

    response = sandbox.decide(submission_id, "approve", comment="이의 없음")

    assert response.status_code == 200
    [callback] = receiver.callbacks_for(submission_id)
    assert callback.path == "/cb/jingsu"
    assert callback.headers["Content-Type"] == "application/json; charset=utf-8"
    timestamp = int(callback.headers["X-Approval-Timestamp"])
    assert abs(time.time() - timestamp) < 60
    decision = service.verify_callback(callback.headers, callback.body)
    assert decision.status == "approved"
    assert (decision.decided_by, decision.comment) == ("박결재", "이의 없음")
    assert decision.decided_at is not None and abs(datetime.now(UTC) - decision.decided_at) < timedelta(minutes=1)
    assert (decision.amount_total, decision.count) == (AMOUNT_TOTAL, COUNT)
    assert decision == service.status(submission_id)
    assert decision.as_dict() == callback.json()


def test_jingsu_can_confirm_with_the_service_while_it_handles_the_callback(
    sandbox: Sandbox, receiver: Receiver
) -> None:
    service = sandbox.service()
    receiver.verify_with = service
    submission_id = service.submit(document(receiver, callback="/cb/verify"))

    sandbox.decide(submission_id, "approve")

    outcome = receiver.verified[submission_id]
    assert isinstance(outcome, ApprovalDecision) and outcome.status == "approved"
    assert [a["status_code"] for a in sandbox.operator("GET", submission_id).json()] == [200]


def test_a_rejection_through_the_approvers_form_needs_a_reason_and_calls_back(
    sandbox: Sandbox, receiver: Receiver
) -> None:
    service = sandbox.service()
    submission_id = service.submit(document(receiver))
    with httpx.Client(trust_env=False, follow_redirects=False, timeout=15) as browser:
        page = browser.get(f"{sandbox.url}/approvals/{submission_id}")
        assert page.status_code == 200
        assert '<html lang="ko">' in page.text
        assert "1,280,000원" in page.text and "32건" in page.text
        assert re.search(r'<button type="submit" name="decision" value="approve"[^>]*>승인<', page.text)
        assert re.search(r'<button type="submit" name="decision" value="reject"[^>]*>반려<', page.text)
        assert submission_id in browser.get(f"{sandbox.url}/approvals").text

        no_reason = browser.post(
            f"{sandbox.url}/approvals/{submission_id}/decide", data={"decision": "reject", "approver": "이과장"}
        )
        assert no_reason.status_code == 400
        assert service.status(submission_id).status == "pending"

        rejected = browser.post(
            f"{sandbox.url}/approvals/{submission_id}/decide",
            data={"decision": "reject", "approver": "이과장", "comment": "감경 대상 누락 확인 바람"},
        )

    assert rejected.status_code == 303
    assert rejected.headers["location"] == f"/approvals/{submission_id}"
    [callback] = receiver.callbacks_for(submission_id)
    decision = service.verify_callback(callback.headers, callback.body)
    assert (decision.status, decision.decided_by, decision.comment) == (
        "rejected",
        "이과장",
        "감경 대상 누락 확인 바람",
    )


def test_deciding_again_sends_nothing_and_the_other_decision_is_a_conflict(
    sandbox: Sandbox, receiver: Receiver
) -> None:
    service = sandbox.service()
    submission_id = service.submit(document(receiver))
    sandbox.decide(submission_id, "approve")
    decided = service.status(submission_id)

    again = sandbox.decide(submission_id, "approve", approver="다른사람")
    other = sandbox.decide(submission_id, "reject", comment="반려")

    assert again.status_code == 200
    assert other.status_code == 409
    assert other.json()["code"] == "already_decided"
    assert service.status(submission_id) == decided
    assert len(receiver.callbacks_for(submission_id)) == 1


def test_submitting_the_same_reference_again_finds_the_same_submission(sandbox: Sandbox, receiver: Receiver) -> None:
    service = sandbox.service()
    doc = document(receiver)

    first = service.submit(doc)
    again = service.submit(doc)

    assert again == first
    with pytest.raises(ApprovalRefused) as refused:
        service.submit(document(receiver, reference_id=doc.reference_id, amount_total=AMOUNT_TOTAL + 1))
    assert (refused.value.status, refused.value.code) == (409, "reference_conflict")


# --- callbacks that must be refused ---------------------------------------------------------------------------------


@pytest.fixture
def approved_callback(sandbox: Sandbox, receiver: Receiver) -> Received:
    service = sandbox.service()
    submission_id = service.submit(document(receiver))
    sandbox.decide(submission_id, "approve")
    [callback] = receiver.callbacks_for(submission_id)
    return callback


def test_a_tampered_callback_body_is_refused(sandbox: Sandbox, approved_callback: Received) -> None:
    tampered = approved_callback.body.replace(
        f'"amount_total":{AMOUNT_TOTAL}'.encode(), f'"amount_total":{AMOUNT_TOTAL * 10}'.encode()
    )
    assert tampered != approved_callback.body

    with pytest.raises(CallbackRejected) as rejected:
        sandbox.service().verify_callback(approved_callback.headers, tampered)

    assert rejected.value.code == "bad_signature"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Approval-Timestamp": "SAME"},
        {"X-Approval-Signature": "SAME"},
        {"X-Approval-Timestamp": "SAME", "X-Approval-Signature": "0" * 64},
        {"X-Approval-Timestamp": "SAME", "X-Approval-Signature": "제3자"},
        {"X-Approval-Timestamp": "-1", "X-Approval-Signature": "SAME"},
    ],
    ids=["none", "no-signature", "no-timestamp", "wrong-signature", "non-ascii-signature", "other-timestamp"],
)
def test_a_missing_or_wrong_signature_is_refused(
    sandbox: Sandbox, approved_callback: Received, headers: dict[str, str]
) -> None:
    original = {k.lower(): v for k, v in approved_callback.headers.items()}
    sent = {k: original[k.lower()] if v == "SAME" else v for k, v in headers.items()}

    with pytest.raises(CallbackRejected) as rejected:
        sandbox.service().verify_callback(sent, approved_callback.body)

    assert rejected.value.code == "bad_signature"


def test_a_callback_signed_with_another_secret_is_refused(sandbox: Sandbox, approved_callback: Received) -> None:
    with pytest.raises(CallbackRejected) as rejected:
        sandbox.service(secret="00" * 32).verify_callback(approved_callback.headers, approved_callback.body)

    assert rejected.value.code == "bad_signature"


@pytest.mark.parametrize("skew", [301, -301, 3600])
def test_a_callback_outside_the_timestamp_window_is_refused(
    sandbox: Sandbox, approved_callback: Received, skew: int
) -> None:
    sent_at = int(approved_callback.headers["X-Approval-Timestamp"])
    service = sandbox.service(clock=lambda: float(sent_at + skew))

    with pytest.raises(CallbackRejected) as rejected:
        service.verify_callback(approved_callback.headers, approved_callback.body)

    assert rejected.value.code == "stale_timestamp"
    inside = sandbox.service(clock=lambda: float(sent_at + 299))
    assert inside.verify_callback(approved_callback.headers, approved_callback.body).status == "approved"


def test_a_replayed_body_with_an_old_timestamp_is_refused(sandbox: Sandbox, approved_callback: Received) -> None:
    headers, raw = forged(approved_callback.json(), timestamp=int(time.time()) - 3600)

    with pytest.raises(CallbackRejected) as rejected:
        sandbox.service().verify_callback(headers, raw)

    assert rejected.value.code == "stale_timestamp"


def test_a_signed_callback_the_service_does_not_confirm_is_refused(sandbox: Sandbox, receiver: Receiver) -> None:
    service = sandbox.service()
    pending_id = service.submit(document(receiver))
    claimed = {**service.status(pending_id).as_dict(), "status": "approved", "decided_by": "박결재"}
    claimed["decided_at"] = datetime.now(UTC).replace(microsecond=0).isoformat()

    with pytest.raises(CallbackRejected) as pending:
        service.verify_callback(*forged(claimed))

    rejected_id = service.submit(document(receiver))
    sandbox.decide(rejected_id, "reject", comment="근거 서류 미비")
    [real] = receiver.callbacks_for(rejected_id)
    flipped = {**real.json(), "status": "approved"}
    with pytest.raises(CallbackRejected) as other_decision:
        service.verify_callback(*forged(flipped))

    inflated = {**real.json(), "amount_total": AMOUNT_TOTAL * 2}
    with pytest.raises(CallbackRejected) as other_amount:
        service.verify_callback(*forged(inflated))

    assert pending.value.code == other_decision.value.code == other_amount.value.code == "status_mismatch"
    assert service.status(pending_id).status == "pending"
    assert service.verify_callback(real.headers, real.body).status == "rejected"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"submission_id":"apv_1"}',
        json.dumps({"submission_id": "apv_1", "status": "pending", "reference_id": "r", "document_type": "t",
                    "amount_total": 1, "count": 1, "decided_by": None, "decided_at": None, "comment": ""}).encode(),
    ],
    ids=["not-json", "not-object", "missing-fields", "pending"],
)  # fmt: skip
def test_a_signed_callback_outside_the_contract_is_malformed(sandbox: Sandbox, body: bytes) -> None:
    ts = str(int(time.time()))
    headers = {"X-Approval-Timestamp": ts, "X-Approval-Signature": sign(bytes.fromhex(SECRET), ts, body)}

    with pytest.raises(CallbackRejected) as rejected:
        sandbox.service().verify_callback(headers, body)

    assert rejected.value.code == "malformed"


def test_the_worked_example_of_the_contract_signs_as_documented() -> None:
    body = (
        '{"submission_id":"apv_4f9c0b7e2d1a6c3b8e5f0a91","reference_id":"batch-81/1","document_type":"imposition_batch",'
        '"amount_total":1280000,"count":32,"status":"approved","decided_by":"박결재",'
        '"decided_at":"2025-11-25T07:41:09+00:00","comment":"이의 없음"}'
    ).encode()

    key = bytes.fromhex("00112233445566778899aabbccddeeff" * 2)

    signature = sign(key, "1764056469", body)

    assert signature == "bb9aa742fcbc87ed3f339ba6269df06ccfc6f8ec7012794c90c5745b8fe40036"
    status_query = sign(key, "1764056469", b"GET /v1/submissions/apv_4f9c0b7e2d1a6c3b8e5f0a91")
    assert status_query == "6f57efd1c56af2704e7c48d8553f0efaa769f54d3a8df732b01095a772e09d1d"


# --- the service's own refusals, outages and restarts ---------------------------------------------------------------


def test_a_submission_signed_with_another_secret_is_refused(sandbox: Sandbox, receiver: Receiver) -> None:
    with pytest.raises(ApprovalRefused) as refused:
        sandbox.service(secret="00" * 32).submit(document(receiver))

    assert (refused.value.status, refused.value.code) == (401, "bad_signature")


def test_a_request_with_a_stale_timestamp_is_refused(sandbox: Sandbox, receiver: Receiver) -> None:
    an_hour_ago = time.time() - 3600

    with pytest.raises(ApprovalRefused) as refused:
        sandbox.service(clock=lambda: an_hour_ago).submit(document(receiver))

    assert (refused.value.status, refused.value.code) == (401, "stale_timestamp")


@pytest.mark.parametrize(
    "change",
    [{"amount_total": -1}, {"count": 0}, {"document_type": "Imposition Batch"}, {"callback_url": "/relative"},
     {"title": ""}, {"reference_id": "has space"}],
    ids=lambda change: ",".join(change),
)  # fmt: skip
def test_a_signed_but_invalid_submission_is_400(sandbox: Sandbox, receiver: Receiver, change: dict[str, Any]) -> None:
    with pytest.raises(ApprovalRefused) as refused:
        sandbox.service().submit(document(receiver, **change))

    assert (refused.value.status, refused.value.code) == (400, "invalid_request")


def test_an_unknown_submission_is_404(sandbox: Sandbox) -> None:
    with pytest.raises(ApprovalRefused) as refused:
        sandbox.service().status("apv_000000000000000000000000")

    assert (refused.value.status, refused.value.code) == (404, "not_found")


def test_a_stopped_service_is_unavailable_also_to_verify_callback(
    tmp_path: Path, receiver: Receiver, own_sandbox: list[Sandbox]
) -> None:
    box = Sandbox(tmp_path).start()
    own_sandbox.append(box)
    service = box.service(timeout=2.0)
    submission_id = service.submit(document(receiver))
    box.decide(submission_id, "approve")
    [callback] = receiver.callbacks_for(submission_id)

    box.stop()

    with pytest.raises(ApprovalUnavailable):
        service.submit(document(receiver))
    with pytest.raises(ApprovalUnavailable):
        service.status(submission_id)
    with pytest.raises(ApprovalUnavailable):  # a genuine callback is still only a hint until confirmed
        service.verify_callback(callback.headers, callback.body)


def test_the_state_file_keeps_submissions_across_a_restart_and_a_resent_callback_verifies(
    tmp_path: Path, receiver: Receiver, own_sandbox: list[Sandbox]
) -> None:
    box = Sandbox(tmp_path, state=True).start()
    own_sandbox.append(box)
    decided_id = box.service().submit(document(receiver))
    pending_id = box.service().submit(document(receiver))
    box.decide(decided_id, "approve")
    before = box.service().status(decided_id)

    box.stop()
    box.start()

    assert box.service().status(decided_id) == before
    assert box.service().status(pending_id).status == "pending"
    assert box.operator("POST", decided_id).json() == {"delivered": 200}
    first, again = receiver.callbacks_for(decided_id)
    assert again.body == first.body
    assert box.service().verify_callback(again.headers, again.body) == before
    assert [a["status_code"] for a in box.operator("GET", decided_id).json()] == [200, 200]
    assert box.operator("POST", pending_id).json()["code"] == "no_callback"


def test_a_failed_delivery_is_recorded_and_does_not_undo_the_decision(sandbox: Sandbox, receiver: Receiver) -> None:
    service = sandbox.service()
    submission_id = service.submit(document(receiver, callback="/cb/fail"))

    assert sandbox.decide(submission_id, "approve").status_code == 200

    assert service.status(submission_id).status == "approved"
    assert [a["status_code"] for a in sandbox.operator("GET", submission_id).json()] == [500]


def test_auto_approval_decides_after_the_configured_delay_and_calls_back(
    tmp_path: Path, receiver: Receiver, own_sandbox: list[Sandbox]
) -> None:
    box = Sandbox(tmp_path, auto_approve_after=0.5).start()
    own_sandbox.append(box)
    service = box.service()
    submitted = time.monotonic()
    submission_id = service.submit(document(receiver))

    callback = receiver.wait_for(submission_id)

    assert time.monotonic() - submitted >= 0.5
    decision = service.verify_callback(callback.headers, callback.body)
    assert decision.status == "approved"
    assert decision.decided_by == "자동결재(샌드박스)"


# --- answers outside the contract (no sandbox: the service's faults are an edge we do not own) ----------------------


_PENDING = {
    "submission_id": "apv_1",
    "reference_id": "r",
    "document_type": "imposition_batch",
    "amount_total": 1,
    "count": 1,
    "status": "pending",
    "decided_by": None,
    "decided_at": None,
    "comment": "",
}


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (503, {"code": "maintenance"}),
        (200, {**_PENDING, "status": "done"}),
        (200, {**_PENDING, "submission_id": "apv_other"}),
        (200, {**_PENDING, "amount_total": "1"}),
        (200, {**_PENDING, "status": "approved", "decided_by": "x", "decided_at": "2025-11-25T07:00:00"}),
        (200, {**_PENDING, "status": "approved"}),
        (200, {**_PENDING, "decided_by": "x"}),
        (200, {"submission_id": "apv_1"}),
        (200, ["not", "an", "object"]),
    ],
    ids=[
        "5xx",
        "unknown-status",
        "other-submission",
        "amount-as-text",
        "naive-decided_at",
        "approved-without-decider",
        "pending-with-decider",
        "missing-fields",
        "not-an-object",
    ],
)
def test_a_5xx_or_an_answer_outside_the_contract_is_unavailable(status: int, body: Any) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, json=body))
    with httpx.Client(transport=transport) as client:
        service = HttpApproval(ApprovalSettings("http://approval.invalid", SECRET), client=client)

        with pytest.raises(ApprovalUnavailable):
            service.status("apv_1")


def test_the_well_formed_answer_of_the_same_fake_is_accepted() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=_PENDING))
    with httpx.Client(transport=transport) as client:
        assert (
            HttpApproval(ApprovalSettings("http://approval.invalid", SECRET), client=client).status("apv_1").status
            == "pending"
        )
