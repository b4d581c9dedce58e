"""The fine's legal life after sync (models.fines) on PostgreSQL, with the registry and e-approval sandbox processes.

- owner lookup through the registry sandbox: the owner encrypted, masked, hashed; the 사전통지 with every item of
  시행령 §3①; the reduced price until the later of the two deadlines;
- person notices: the slip is the 사전통지; an RRN failing the checksum is kept (LAW.md §5.3);
- hardship reduction with its rule row, refused when the party has another fine in arrears;
- imposition in bulk through the approval sandbox and a real signed callback; the pay-after-proposal race;
- objection on day 60 accepted, day 61 refused; court referral clock; court decisions;
- no imposition 5 years and 1 day after the violation; the school-zone amounts either side of 2021-05-11.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

import protocol
from adapters.approval import ApprovalRequest, ApprovalSettings, HttpApproval
from adapters.registry import HttpRegistry, RegistrySettings
from models import fines, ledger, notices, payments, rules
from models.base import Actor
from models.catalog import schedule_rules
from models.devices import RegisterDevice, register_device
from models.errors import InvalidInput, InvalidTransition
from models.feed import ChangeLog, register_writer
from models.users import User
from sandboxes.launcher import start_approval, start_registry
from sandboxes.launcher import stop as stop_approval
from sandboxes.launcher import stop as stop_registry
from tests.conftest import free_port
from tests.factories import CIPHER, CLERK, FakeRegistry, Maker, kst
from tests.support.outbox import deliver, look_up_owners, outside

REGISTRY_KEY = "5eed" * 16
APPROVAL_SECRET = "b0a7" * 16


# --- sandboxes --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpRegistry]:
    port = free_port()
    proc = start_registry(port, REGISTRY_KEY, log_path=tmp_path_factory.mktemp("registry") / "registry.log")
    yield HttpRegistry(RegistrySettings(f"http://127.0.0.1:{port}", REGISTRY_KEY))
    stop_registry(proc)


class Receiver:
    """Jingsu's side of the callback, as a plain HTTP server: records what the e-approval service POSTs."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.received.append((dict(self.headers.items()), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def wait_for(self, submission_id: str, timeout: float = 10.0) -> tuple[dict[str, str], bytes]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for headers, body in self.received:
                    if json.loads(body).get("submission_id") == submission_id:
                        return headers, body
            time.sleep(0.05)
        raise AssertionError(f"no callback for {submission_id}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class ApprovalBox:
    url: str
    service: HttpApproval
    receiver: Receiver

    def decide(self, submission_id: str, decision: str = "approve") -> None:
        response = httpx.post(
            f"{self.url}/approvals/{submission_id}/decide",
            json={"decision": decision, "approver": "김결재", "comment": "시험"},
            timeout=10,
        )
        assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def approval(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApprovalBox]:
    port = free_port()
    proc = start_approval(port, APPROVAL_SECRET, log_path=tmp_path_factory.mktemp("approval") / "approval.log")
    receiver = Receiver()
    url = f"http://127.0.0.1:{port}"
    yield ApprovalBox(url, HttpApproval(ApprovalSettings(url, APPROVAL_SECRET)), receiver)
    receiver.close()
    stop_approval(proc)


# --- notices ----------------------------------------------------------------------------------------------------


@pytest.fixture
def make(db_session) -> Maker:
    start = datetime(2020, 1, 1, tzinfo=UTC)
    device, _ = register_device(db_session, RegisterDevice("11110", "사건 시험 단말"), Actor.system(), start,
                                timedelta(hours=1))  # fmt: skip
    officer = db_session.scalar(select(User).where(User.login == "officer.11110.1"))
    return Maker(db_session, device.id, officer.id)


def case_of(session, notice: notices.Notice, now: datetime) -> fines.FineCase:
    return fines.case_of(session, notice, now)


def entries(session, notice: notices.Notice) -> list[tuple[str, int]]:
    receivable = notices.receivable_of(session, notice.id)
    assert receivable is not None
    return [(e.kind, e.amount) for e in ledger.entries(session, receivable.id)]


def pay(session, notice: notices.Notice, amount: int, at: datetime) -> None:
    received = payments.ReceivedPayment("sandbox", uuid.uuid4().hex, "qr", notice.notice_no, amount, at)
    payments.post_payment(session, received, Actor(label="gateway:sandbox"), at)


def impose(session, approval: ApprovalBox, now: datetime, decision: str = "approve") -> fines.ImpositionBatch:
    """Propose, submit to the approval sandbox, decide there, and apply the signed callback it sends."""
    batch = fines.propose_imposition(session, "11110", CLERK, now)
    doc = fines.batch_document(session, batch)
    submission_id = approval.service.submit(
        ApprovalRequest(
            doc.title,
            doc.document_type,
            doc.reference_id,
            doc.amount_total,
            doc.count,
            "clerk.11110",
            f"{approval.receiver.url}/cb",
        )  # fmt: skip
    )
    fines.mark_submitted(session, batch, approval.service.name, submission_id, now)
    approval.decide(submission_id, decision)
    headers, body = approval.receiver.wait_for(submission_id)
    confirmed = approval.service.verify_callback(headers, body)
    applied = fines.apply_decision(session, confirmed, CIPHER, now, approval_name=approval.service.name)
    assert applied is not None and applied.id == batch.id
    return applied


# --- 2. owner lookup and the 사전통지 ---------------------------------------------------------------------------


def test_owner_lookup_stores_the_owner_encrypted_and_sends_an_advance_notice_with_every_required_item(
    db_session, make, registry
):
    observed = kst(date(2025, 11, 20))
    notice = make.parking(observed, plate="12가3456")
    unregistered = make.parking(observed, plate="99가0000")
    now = kst(date(2025, 11, 24), 10)

    report = look_up_owners(db_session, registry, CIPHER, now, jurisdiction="11110")

    assert notice.notice_no in report.noticed and unregistered.notice_no in report.not_registered
    case = case_of(db_session, notice, now)
    assert (case.stage, case.party_kind, case.party_name_masked) == ("advance_noticed", "person", "김*준")
    party = fines.party_of(case, notice, CIPHER)
    assert party is not None and (party["name"], party["rrn"]) == ("김민준", "850314-1234567")
    assert case.party_hash == CIPHER.lookup_hash("850314-1234567")
    assert fines.party_identifier_masked(case, notice, CIPHER) == "850314-1******"
    receivable = notices.receivable_of(db_session, notice.id)
    assert receivable is not None and receivable.payer_ref == CIPHER.lookup_hash("8503141234567").hex()
    [document] = fines.documents(db_session, notice.id)
    data = document.data
    # 시행령 §3①: ① name and address (encrypted apart) ② facts, amount, law ③ authority ④ opinion right and deadline
    # ⑤ self-payment reduction with the amount ⑤의2 paying it ends the case ⑥ hardship reduction
    assert CIPHER.decrypt_json(document.addressee_enc, context=notice.notice_no.encode())["address"]["postal_code"]
    assert data["facts"]["notice_no"] == notice.notice_no and data["facts"]["law"] == "도로교통법 §160③"
    assert data["amount"] == 40_000
    assert data["authority"] == {"name": "종로구청장", "address": "서울특별시 종로구 삼봉로 43 (종로구청)"}
    assert data["opinion"]["deadline"] == "2025-12-08" and data["opinion"]["rule"] == "opinion_period:*@2008-06-22"
    assert data["self_payment"]["reduced_amount"] == 32_000 and "종료" in data["self_payment"]["ends_case"]
    assert data["hardship"]["available"] and "minor" in data["hardship"]["grounds"]
    assert (document.deadline, case.opinion_deadline, case.reduced_until) == (date(2025, 12, 8),) * 3
    # no personal data in clear anywhere but the ciphertexts
    stored = json.dumps([data, [t.detail for t in fines.timeline(db_session, notice)]], ensure_ascii=False, default=str)
    assert "김민준" not in stored and "850314" not in stored
    missing = case_of(db_session, unregistered, now)
    assert (missing.stage, missing.party_enc) == ("synced", None)
    assert "owner_not_found" in [t.what for t in fines.timeline(db_session, unregistered)]
    # a second run finds nothing more to do
    assert look_up_owners(db_session, registry, CIPHER, now).queued == []


def test_an_owner_answer_for_a_notice_back_in_review_is_not_applied_and_the_owner_is_asked_again_later(
    db_session, make
):
    from models import outbox

    notice = make.parking(kst(date(2025, 11, 20)), plate="23가4567")
    now = kst(date(2025, 11, 24), 10)
    asked = fines.request_owner_lookups(db_session, now, jurisdiction="11110")
    assert notice.notice_no in asked.queued
    notice.status = notices.UNDER_REVIEW  # a correction flagged it for review before the registry answered
    db_session.flush()

    report = deliver(db_session, now, outside(CIPHER, registry=FakeRegistry()))

    assert report.outcomes["registry.lookup:stale"] >= 1
    case = case_of(db_session, notice, now)
    assert (case.stage, case.party_enc, case.owner_lookup_requested_at) == ("synced", None, None)
    notice.status = notices.ISSUED  # the clerk confirmed it
    db_session.flush()
    again = look_up_owners(db_session, FakeRegistry(), CIPHER, now, jurisdiction="11110")
    assert notice.notice_no in again.noticed
    keys = db_session.scalars(
        select(outbox.OutboxRow.idempotency_key).where(outbox.OutboxRow.payload["notice_no"].astext == notice.notice_no)
    ).all()
    assert sorted(keys) == [f"registry.lookup:{notice.notice_no}:1", f"registry.lookup:{notice.notice_no}:2"]


def test_the_reduced_price_holds_until_the_later_of_the_slip_and_advance_notice_deadlines(db_session, make, registry):
    observed = kst(date(2025, 11, 20))
    notice = make.parking(observed)
    assert notice.opinion_deadline == date(2025, 12, 4)  # the schedule gives 14 days
    look_up_owners(db_session, registry, CIPHER, kst(date(2025, 11, 25)))
    case = case_of(db_session, notice, kst(date(2025, 11, 25)))
    assert case.reduced_until == date(2025, 12, 9)

    paid_at = kst(date(2025, 12, 9), 23)  # after the slip's deadline, on the 사전통지's last day
    pay(db_session, notice, 32_000, paid_at)

    assert [k for k, _ in entries(db_session, notice)] == ["charge", "reduction", "payment"]
    assert entries(db_session, notice)[1] == ("reduction", -8_000)
    assert (notice.status, case.stage) == ("paid", "paid")


def test_a_reduced_payment_after_both_deadlines_is_partial_and_the_case_goes_on(db_session, make, registry):
    notice = make.parking(kst(date(2025, 11, 20)))
    look_up_owners(db_session, registry, CIPHER, kst(date(2025, 11, 25)))
    pay(db_session, notice, 32_000, kst(date(2025, 12, 10)))
    case = case_of(db_session, notice, kst(date(2025, 12, 10)))
    assert (notice.status, case.stage, entries(db_session, notice)) == (
        "issued",
        "advance_noticed",
        [("charge", 40_000), ("payment", -32_000)],
    )


def test_a_person_notice_starts_advance_noticed_and_an_rrn_failing_the_checksum_is_kept(db_session, make):
    bad = "900101-1234560"
    assert not fines.rrn_checksum_ok(bad)
    notice = make.person(kst(date(2025, 11, 20)), rrn=bad, name="홍길동")
    now = kst(date(2025, 11, 21))

    assert fines.ensure_cases(db_session, now) >= 1
    case = case_of(db_session, notice, now)

    assert (case.stage, case.party_name_masked) == ("advance_noticed", "홍*동")
    assert case.party_hash == CIPHER.lookup_hash(bad) == notice.rrn_hash
    assert case.reduced_until == notice.opinion_deadline
    receivable = notices.receivable_of(db_session, notice.id)
    assert receivable is not None and receivable.payer_ref == CIPHER.lookup_hash(bad).hex()
    shown = json.dumps([t.detail for t in fines.timeline(db_session, notice)], ensure_ascii=False, default=str)
    assert "홍길동" not in shown and "900101" not in shown


# --- 3. opinions and reductions ---------------------------------------------------------------------------------


def test_a_hardship_reduction_posts_with_its_rule_and_the_combined_price_ends_the_case(db_session, make):
    notice = make.person(kst(date(2025, 11, 20)))
    now = kst(date(2025, 11, 22))
    case = case_of(db_session, notice, now)

    fines.claim_hardship(db_session, case, notice, fines.ClaimHardship(["minor"], "미성년자 확인"), CLERK, now)

    receivable = notices.receivable_of(db_session, notice.id)
    assert receivable is not None
    reduction = ledger.entries(db_session, receivable.id)[-1]
    assert (reduction.kind, reduction.amount) == ("reduction", -50_000)
    assert reduction.memo is not None and "hardship_reduction:minor@2010-01-16" in reduction.memo
    assert (case.fine_amount, case.self_payment_amount) == (50_000, 40_000)  # 100,000 → 50,000 → 40,000

    pay(db_session, notice, 40_000, kst(date(2025, 11, 29)))
    assert [e for e in entries(db_session, notice)] == [
        ("charge", 100_000),
        ("reduction", -50_000),
        ("reduction", -10_000),
        ("payment", -40_000),
    ]
    assert (notice.status, case.stage) == ("paid", "paid")


def test_an_opinion_is_decided_reject_reduce_or_cancel_and_each_is_audited(db_session, make):
    now = kst(date(2025, 11, 22))
    rejected, reduced, cancelled = (
        make.person(kst(date(2025, 11, 20)), name=n) for n in ("가나다", "라마바", "사아자")
    )
    for notice, decision in (
        (rejected, fines.DecideOpinion("reject", "이유 없음")),
        (reduced, fines.DecideOpinion("accept_reduce", "일부 인정", 60_000)),
        (cancelled, fines.DecideOpinion("accept_cancel", "위반 아님")),
    ):
        case = case_of(db_session, notice, now)
        opinion = fines.SubmitOpinion("억울합니다", "oral", speaker="홍길동")
        fines.submit_opinion(db_session, case, notice, opinion, CLERK, now)
        assert case.stage == "opinion_submitted"
        fines.decide_opinion(db_session, case, notice, decision, CLERK, now)
    assert case_of(db_session, rejected, now).stage == "advance_noticed"
    assert case_of(db_session, reduced, now).stage == "advance_noticed"
    assert entries(db_session, reduced)[-1] == ("reduction", -40_000)
    assert case_of(db_session, reduced, now).self_payment_amount == 48_000
    assert (case_of(db_session, cancelled, now).stage, cancelled.status) == ("cancelled", "cancelled")
    assert ledger.balance(db_session, notices.receivable_of(db_session, cancelled.id).id) == 0
    whats = [(t.what, (t.detail or {}).get("speaker")) for t in fines.timeline(db_session, rejected)]
    assert ("submit_opinion", "홍*동") in whats and ("reject_opinion", None) in whats


# --- 4. imposition in bulk --------------------------------------------------------------------------------------


def test_an_approved_bulk_decision_imposes_through_a_signed_callback_and_adopts_the_receivables(
    db_session, make, registry, approval
):
    parking = make.parking(kst(date(2025, 9, 1)))
    person = make.person(kst(date(2025, 9, 1)))
    look_up_owners(db_session, registry, CIPHER, kst(date(2025, 9, 3)), channel="electronic")
    receivable_ids = {n.notice_no: notices.receivable_of(db_session, n.id).id for n in (parking, person)}
    now = kst(date(2025, 10, 1))

    batch = impose(db_session, approval, now)

    assert (batch.status, batch.imposed_count, batch.skipped_count) == ("applied", 2, 0)
    assert batch.decided_by == "김결재"
    for notice in (parking, person):
        case = case_of(db_session, notice, now)
        assert (case.stage, case.imposed_on, case.due_date) == ("imposed", date(2025, 10, 1), date(2025, 11, 30))
        assert case.due_rule == "imposition_due:*@2008-06-22"
        # the receivable opened at sync is adopted: no new one, no new charge
        count = db_session.scalar(select(func.count()).where(ledger.Receivable.notice_id == notice.id))
        assert count == 1 and notices.receivable_of(db_session, notice.id).id == receivable_ids[notice.notice_no]
        assert [k for k, _ in entries(db_session, notice)] == ["charge"]
        [bill] = [d for d in fines.documents(db_session, notice.id) if d.kind == "imposition_notice"]
        assert bill.deadline == date(2025, 11, 30)
        assert bill.data["payment"]["due_date"] == "2025-11-30"
        assert bill.data["objection"]["period_days"] == 60 and bill.data["objection"]["rule"]
        assert bill.data["non_payment"]["surcharge"]["rate"] == "0.030000"
    # electronic: received when sent; the person's slip was handed over, its imposition notice goes by mail
    assert case_of(db_session, parking, now).imposition_received_on == date(2025, 10, 1)
    [bill] = [d for d in fines.documents(db_session, parking.id) if d.kind == "imposition_notice"]
    assert bill.data["objection"]["deadline"] == "2025-11-30"  # received 10-01, + 60 days
    assert case_of(db_session, person, now).imposition_received_on is None
    # the same callback again changes nothing
    again = fines.apply_decision(
        db_session, approval.service.status(batch.submission_id), CIPHER, now, approval_name="sandbox"
    )
    assert again is not None and again.imposed_count == 2
    with pytest.raises(fines.NothingToImpose):
        fines.propose_imposition(db_session, "11110", CLERK, now)


def test_a_case_paid_between_proposal_and_approval_is_skipped_never_imposed(db_session, make, approval):
    paid_later = make.person(kst(date(2025, 9, 1)), name="가나다")
    still_open = make.person(kst(date(2025, 9, 1)), name="라마바")
    now = kst(date(2025, 10, 1))
    batch = fines.propose_imposition(db_session, "11110", CLERK, now)
    assert {no for _, no in fines.batch_items(db_session, batch.id)} >= {paid_later.notice_no, still_open.notice_no}
    doc = fines.batch_document(db_session, batch)
    submission_id = approval.service.submit(
        ApprovalRequest(
            doc.title,
            doc.document_type,
            doc.reference_id,
            doc.amount_total,
            doc.count,
            "clerk",
            f"{approval.receiver.url}/cb",
        )  # fmt: skip
    )
    fines.mark_submitted(db_session, batch, "sandbox", submission_id, now)

    pay(db_session, paid_later, 100_000, kst(date(2025, 10, 2)))  # the full amount, after the proposal
    approval.decide(submission_id)
    headers, body = approval.receiver.wait_for(submission_id)
    applied = fines.apply_decision(
        db_session, approval.service.verify_callback(headers, body), CIPHER, kst(date(2025, 10, 3)),
        approval_name="sandbox",
    )  # fmt: skip

    assert applied is not None
    outcomes = {no: (item.outcome, item.skip_reason) for item, no in fines.batch_items(db_session, batch.id)}
    assert outcomes[paid_later.notice_no] == ("skipped", "the case is paid")
    assert outcomes[still_open.notice_no] == ("imposed", None)
    assert case_of(db_session, paid_later, now).stage == "paid"
    assert case_of(db_session, paid_later, now).imposed_on is None


def test_a_batch_is_bounded_and_the_cases_left_over_go_into_the_next_one(db_session, make):
    made = [make.person(kst(date(2025, 9, 1)), name=f"묶음{n}").notice_no for n in range(3)]
    now = kst(date(2025, 10, 1))
    first = fines.propose_imposition(db_session, "11110", CLERK, now, limit=2)
    second = fines.propose_imposition(db_session, "11110", CLERK, now, limit=2)
    taken = [[no for _, no in fines.batch_items(db_session, b.id)] for b in (first, second)]
    assert len(taken[0]) == 2 and set(made) <= set(taken[0]) | set(taken[1])
    assert not set(taken[0]) & set(taken[1])


def test_a_rejected_bulk_decision_imposes_nothing_and_the_cases_may_be_proposed_again(db_session, make, approval):
    notice = make.person(kst(date(2025, 9, 1)))
    now = kst(date(2025, 10, 1))
    batch = impose(db_session, approval, now, decision="reject")
    assert batch.status == "rejected"
    assert case_of(db_session, notice, now).stage == "advance_noticed"
    again = fines.propose_imposition(db_session, "11110", CLERK, now)
    assert notice.notice_no in {no for _, no in fines.batch_items(db_session, again.id)}


def test_no_imposition_five_years_and_one_day_after_the_violation(db_session, make):
    notice = make.person(kst(date(2020, 3, 10)))
    last_day = kst(date(2025, 3, 10))
    book = rules.load_rulebook(db_session)
    case = case_of(db_session, notice, last_day)
    assert fines.ineligibility(db_session, case, notice, date(2025, 3, 10), book) is None

    reason = fines.ineligibility(db_session, case, notice, date(2025, 3, 11), book)

    assert reason is not None and "제척기간" in reason and "imposition_limit:*@2008-06-22" in reason
    with pytest.raises(fines.NothingToImpose):
        fines.propose_imposition(db_session, "11110", CLERK, kst(date(2025, 3, 11)))
    batch = fines.propose_imposition(db_session, "11110", CLERK, last_day)
    assert notice.notice_no in {no for _, no in fines.batch_items(db_session, batch.id)}


# --- 5. objection and court -------------------------------------------------------------------------------------


@pytest.fixture
def imposed(db_session, make, approval):
    """Two person cases imposed on 2025-10-01, their notices received on 2025-10-06."""
    first, second = make.person(kst(date(2025, 9, 1)), name="가나다"), make.person(kst(date(2025, 9, 1)), name="라마바")
    now = kst(date(2025, 10, 1))
    impose(db_session, approval, now)
    for notice in (first, second):
        fines.record_imposition_receipt(db_session, case_of(db_session, notice, now), date(2025, 10, 6), CLERK,
                                        kst(date(2025, 10, 7)))  # fmt: skip
    return first, second


def test_an_objection_on_day_60_is_accepted_and_on_day_61_refused(db_session, imposed):
    notice, _ = imposed
    case = case_of(db_session, notice, kst(date(2025, 12, 6)))
    assert fines.objection_deadline(db_session, case).day == date(2025, 12, 5)  # received 10-06 + 60 days

    with pytest.raises(fines.ObjectionLate) as late:
        fines.file_objection(db_session, case, notice, date(2025, 12, 6), "이의", CLERK, kst(date(2025, 12, 6)))
    assert late.value.code == "objection_late" and late.value.extra["rule"] == "objection_period:*@2008-06-22"
    assert case.stage == "imposed"

    fines.file_objection(db_session, case, notice, date(2025, 12, 5), "이의", CLERK, kst(date(2025, 12, 6)))
    assert (case.stage, case.objected_on, case.referral_deadline) == ("objected", date(2025, 12, 5), date(2025, 12, 19))


def test_an_unreferred_objection_is_listed_overdue_then_referred_late_and_decided(db_session, imposed):
    from models.base import Scope

    notice, other = imposed
    filed = kst(date(2025, 10, 10))
    for n in (notice, other):
        fines.file_objection(db_session, case_of(db_session, n, filed), n, date(2025, 10, 10), "이의", CLERK, filed)
    assert fines.overdue_referrals(db_session, Scope.everything(), date(2025, 10, 24), 100, None) == []
    overdue = fines.overdue_referrals(db_session, Scope.only("11110"), date(2025, 10, 25), 100, None)
    assert {no for _, no in overdue} >= {notice.notice_no, other.notice_no}

    case = case_of(db_session, notice, kst(date(2025, 10, 25)))
    fines.refer_to_court(db_session, case, "서울중앙지방법원", "의견서 송부", CLERK, kst(date(2025, 10, 25)))
    assert case.stage == "referred"
    assert [t.detail for t in fines.timeline(db_session, notice) if t.what == "refer"][0]["late_by_days"] == 1
    decided = kst(date(2025, 12, 1))
    fines.record_court_decision(
        db_session, case, notice, fines.CourtDecision("reduced", date(2025, 12, 1), "감액 결정", 70_000), CLERK, decided
    )
    assert (case.stage, case.court_amount, case.due_date) == ("decided", 70_000, date(2026, 1, 30))
    assert ("reduction", -30_000) in entries(db_session, notice)
    # collectible again: the arrears engine caught the clock up to its business date (surcharges, if overdue by then)
    balance = ledger.balance(db_session, notices.receivable_of(db_session, notice.id).id)
    assert balance >= 70_000
    pay(db_session, notice, balance, kst(date(2025, 12, 10)))
    assert (case.stage, notice.status) == ("paid", "paid")
    arrears_events = [(t.what, (t.detail or {}).get("kind")) for t in fines.timeline(db_session, notice)
                      if t.source == "arrears"]  # fmt: skip
    assert arrears_events[:3] == [
        ("collection_started", None),
        ("hold_started", "objection"),
        ("hold_ended", "objection"),
    ]

    other_case = case_of(db_session, other, decided)
    fines.refer_to_court(db_session, other_case, "서울중앙지방법원", "의견서 송부", CLERK, decided)
    fines.record_court_decision(
        db_session, other_case, other, fines.CourtDecision("dismissed", date(2025, 12, 1), "불처벌"), CLERK, decided
    )
    assert (other_case.stage, other.status) == ("closed", "cancelled")
    assert ledger.balance(db_session, notices.receivable_of(db_session, other.id).id) == 0
    told = db_session.scalars(select(ChangeLog).where(ChangeLog.key == other.notice_no).order_by(ChangeLog.id)).all()
    assert told[-1].entity == "notice_status" and told[-1].data["status"] == "closed"  # PROTOCOL.md §3


def test_a_withdrawn_objection_restores_the_imposition(db_session, imposed):
    notice, _ = imposed
    now = kst(date(2025, 10, 20))
    case = case_of(db_session, notice, now)
    fines.file_objection(db_session, case, notice, date(2025, 10, 20), "이의", CLERK, now)
    fines.withdraw_objection(db_session, case, notice, "취하", CLERK, now)
    assert (case.stage, case.objected_on, case.due_date) == ("imposed", None, date(2025, 11, 30))


def test_hardship_is_refused_when_the_party_has_another_fine_in_arrears(db_session, make, imposed):
    old, _ = imposed  # 홍길동's RRN by default: imposed 2025-10-01, due 2025-11-30, unpaid
    fresh = make.person(kst(date(2025, 12, 2)), name="가나다")  # the same RRN
    now = kst(date(2025, 12, 3))
    case = case_of(db_session, fresh, now)
    assert fines.other_unpaid(db_session, case, date(2025, 12, 3)) == sorted([n.notice_no for n in imposed])

    with pytest.raises(rules.ReductionRefused) as refused:
        fines.claim_hardship(db_session, case, fresh, fines.ClaimHardship(["minor"], "미성년자"), CLERK, now)

    assert refused.value.code == "reduction_refused" and old.notice_no in refused.value.extra["other_unpaid"]
    assert entries(db_session, fresh) == [("charge", 100_000)]


def test_each_invalid_transition_is_refused_and_changes_nothing(db_session, make, imposed):
    notice, _ = imposed
    now = kst(date(2025, 10, 8))
    case = case_of(db_session, notice, now)
    version = case.version
    for attempt in (
        lambda: fines.submit_opinion(db_session, case, notice, fines.SubmitOpinion("늦은 의견"), CLERK, now),
        lambda: fines.cancel_case(db_session, case, notice, "취소", CLERK, now),
        lambda: fines.refer_to_court(db_session, case, "법원", "통보", CLERK, now),
        lambda: fines.withdraw_objection(db_session, case, notice, "취하", CLERK, now),
        lambda: fines.record_court_decision(
            db_session, case, notice, fines.CourtDecision("dismissed", date(2025, 10, 8), "x"), CLERK, now
        ),
        lambda: fines.claim_hardship(db_session, case, notice, fines.ClaimHardship(["minor"], "x"), CLERK, now),
    ):
        with pytest.raises(InvalidTransition) as refused:
            attempt()
        assert refused.value.code == "invalid_transition"
    assert (case.stage, case.version) == ("imposed", version)
    fresh = make.parking(kst(date(2025, 10, 1)))
    synced = case_of(db_session, fresh, now)
    with pytest.raises(InvalidTransition):
        fines.file_objection(db_session, synced, fresh, date(2025, 10, 8), "이의", CLERK, now)
    with pytest.raises(InvalidInput):
        fines.decide_opinion(db_session, synced, fresh, fines.DecideOpinion("maybe", "x"), CLERK, now)


def test_case_events_are_append_only(db_session, make):
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    notice = make.person(kst(date(2025, 11, 20)))
    case_of(db_session, notice, kst(date(2025, 11, 21)))
    db_session.flush()
    for sql in ("UPDATE fine_case_events SET reason = 'edited'", "DELETE FROM fine_case_events"):
        with pytest.raises(DBAPIError) as caught:
            with db_session.begin_nested():
                db_session.execute(text(sql))
        assert "append-only" in str(caught.value)


# --- school zones (도로교통법 시행령 별표: raised on 2021-05-11) --------------------------------------------------


@pytest.mark.parametrize("day, amount", [(date(2021, 5, 10), 80_000), (date(2021, 5, 11), 120_000)])
def test_a_school_zone_car_notice_is_priced_by_the_schedule_in_force_that_day(db_session, make, day, amount):
    row = protocol.select_schedule(schedule_rules(db_session, "P03"), "P03", "car", None, day)
    assert row is not None
    printed = protocol.compute_amounts(row, kst(day))
    assert (printed.amount, printed.reduced_amount) == (amount, amount * 8 // 10)
    notice = make.parking(kst(day), code="P03")
    assert (notice.amount, entries(db_session, notice)) == (amount, [("charge", amount)])


def test_the_timeline_merges_history_case_events_and_ledger_entries(db_session, make, registry):
    notice = make.parking(kst(date(2025, 11, 20)))
    look_up_owners(db_session, registry, CIPHER, kst(date(2025, 11, 21)))
    pay(db_session, notice, 32_000, kst(date(2025, 11, 22)))
    whats = [(t.source, t.what) for t in fines.timeline(db_session, notice)]
    for expected in (
        ("notice", "issued"),
        ("notice", "synced"),
        ("case", "opened"),
        ("case", "owner_found"),
        ("case", "advance_notice"),
        ("notice", "paid"),
        ("case", "pay"),
        ("ledger", "ledger.charge"),
        ("ledger", "ledger.reduction"),
        ("ledger", "ledger.payment"),
    ):
        assert expected in whats


# --- the race for real: payments and the approval on their own connections, committed ---------------------------


def test_payments_racing_the_approval_on_other_connections_are_either_imposed_first_or_skipped(clone_db, approval):
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    engine = create_engine(clone_db())
    try:
        with Session(engine) as session:
            register_writer(session)  # a test's setup transaction writes changes after other rows
            device, _ = register_device(session, RegisterDevice("11110", "경합 단말"), Actor.system(),
                                        kst(date(2025, 9, 1)), timedelta(hours=1))  # fmt: skip
            officer = session.scalar(select(User).where(User.login == "officer.11110.1"))
            maker = Maker(session, device.id, officer.id)
            numbers = [maker.person(kst(date(2025, 9, 1)), name=f"경합{n}").notice_no for n in range(4)]
            now = kst(date(2025, 10, 1))
            batch = fines.propose_imposition(session, "11110", CLERK, now)
            doc = fines.batch_document(session, batch)
            submission_id = approval.service.submit(
                ApprovalRequest(
                    doc.title,
                    doc.document_type,
                    doc.reference_id,
                    doc.amount_total,
                    doc.count,
                    "clerk",
                    f"{approval.receiver.url}/cb",
                )  # fmt: skip
            )
            fines.mark_submitted(session, batch, "sandbox", submission_id, now)
            batch_id = batch.id
            session.commit()
        approval.decide(submission_id)
        decision = approval.service.status(submission_id)
        start = threading.Barrier(len(numbers) + 1)
        errors: list[BaseException] = []

        def run(work: Any) -> None:
            try:
                with Session(engine) as session:
                    register_writer(session)  # as the server's unit of work does
                    start.wait(10)
                    work(session)
                    session.commit()
            except BaseException as exc:  # reported by the test below
                errors.append(exc)

        def approve(session: Any) -> None:
            fines.apply_decision(session, decision, CIPHER, now, approval_name="sandbox")

        def payer(number: str) -> Any:
            def work(session: Any) -> None:
                notice = notices.find_notice(session, number)
                assert notice is not None
                pay(session, notice, 100_000, kst(date(2025, 10, 1), 15))

            return work

        threads = [threading.Thread(target=run, args=(approve,))]
        threads += [threading.Thread(target=run, args=(payer(number),)) for number in numbers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not errors, errors

        with Session(engine) as session:
            outcomes = {no: item.outcome for item, no in fines.batch_items(session, batch_id)}
            for number in numbers:
                notice = notices.find_notice(session, number)
                assert notice is not None
                case = fines.case_of(session, notice, now)
                whats = [t.what for t in fines.timeline(session, notice) if t.source == "case"]
                assert (case.stage, notice.status) == ("paid", "paid")
                assert ledger.balance(session, notices.receivable_of(session, notice.id).id) == 0
                if outcomes[number] == "imposed":  # the approval came first: imposed, then paid
                    assert whats.index("impose") < whats.index("pay")
                else:  # the payment came first: skipped, never imposed
                    assert outcomes[number] == "skipped" and "impose" not in whats
    finally:
        engine.dispose()


def test_the_device_can_no_longer_void_or_correct_a_notice_once_its_fine_is_imposed(db_session, make, imposed):
    from sync.push.engine import push
    from sync.push.outcome import SyncSettings

    notice, _ = imposed
    now = kst(date(2025, 10, 8))

    def event(seq: int, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        return {"event_id": str(uuid.uuid4()), "seq": seq, "type": kind, "notice_no": notice.notice_no,
                "occurred_at": now.isoformat(), "base_version": notice.version,
                "data": {"prev_hash": "0" * 64, **data}}  # fmt: skip

    body = {
        "batch_id": str(uuid.uuid4()),
        "events": [
            event(1, protocol.NOTICE_VOIDED, {"reason_code": "wrong_vehicle"}),
            event(2, protocol.NOTICE_CORRECTED, {"reason": "오기", "memo": "정정"}),
        ],
    }
    answer = push(db_session, make.device_id, body, now=now, cipher=CIPHER,
                  settings=SyncSettings(), pay_base_url="http://localhost")  # fmt: skip

    assert [(r["status"], r["problems"][0]["code"]) for r in answer["results"]] == [
        ("rejected", "invalid_transition"),
        ("rejected", "invalid_transition"),
    ]
    assert (notice.status, case_of(db_session, notice, now).stage) == ("issued", "imposed")


def device_statuses(session, notice: notices.Notice) -> list[str]:
    from models.feed import ChangeLog, device_scope

    rows = session.scalars(
        select(ChangeLog.data)
        .where(
            ChangeLog.scope == device_scope(notice.device_id),
            ChangeLog.entity == "notice_status",
            ChangeLog.key == notice.notice_no,
        )
        .order_by(ChangeLog.id)
    )
    return [row["status"] for row in rows]


def test_the_issuing_device_is_told_each_later_stage_of_its_notice(db_session, imposed):
    """PROTOCOL.md §3 ``notice_status``: imposed, objected, in_court, imposed again after the court confirmed, then
    overdue, each with the version the device knows (the notice row itself does not change)."""
    notice, _ = imposed
    version = notice.version
    assert device_statuses(db_session, notice)[-1] == "imposed"
    filed = kst(date(2025, 10, 10))
    case = case_of(db_session, notice, filed)
    fines.file_objection(db_session, case, notice, date(2025, 10, 10), "이의", CLERK, filed)
    fines.refer_to_court(db_session, case, "서울중앙지방법원", "의견서 송부", CLERK, filed)
    decided = kst(date(2025, 12, 1))
    fines.record_court_decision(
        db_session, case, notice, fines.CourtDecision("confirmed", date(2025, 12, 1), "확정", 100_000), CLERK, decided
    )
    told = device_statuses(db_session, notice)
    # the new due date (2026-01-30) is before the business date (today): overdue at once
    assert told == ["issued", "imposed", "objected", "in_court", "imposed", "overdue"]
    assert notice.version == version
