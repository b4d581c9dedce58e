"""Suspense payments (미확인 수납) through the real app: a clerk lists what matched nothing in their district, matches
it to the notice the payer meant (it posts once) or refunds it (who, when, why, the account sealed and masked);
a second decision is refused; another district sees nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from models import ledger, notices, payments
from models.base import Actor
from models.crypto import PiiCipher
from tests.conftest import TEST_LOOKUP_KEY, TEST_PII_KEY
from tests.support.device import Device, fresh_plate, staff_token

AT = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)


def bearer(client: httpx.Client, login: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {staff_token(client, login)}"}


def paid_into_suspense(connection: Connection, notice_no: str | None, amount: int) -> str:
    """Money the gateway confirmed for a number the ledger does not know: it waits in suspense."""
    txn_id = uuid.uuid4().hex
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        received = payments.ReceivedPayment("sandbox", txn_id, "qr", notice_no, amount, AT)
        result = payments.post_payment(session, received, Actor(label="gateway:sandbox"), AT)
        assert result.notice is None and result.payment.status == payments.PAID
        session.commit()
    return txn_id


def listed(client: httpx.Client, headers: dict[str, str], status: str = "open") -> list[dict]:
    response = client.get("/api/v1/suspense", params={"status": status}, headers=headers)
    assert response.status_code == 200, response.text
    items: list[dict] = response.json()["items"]
    return items


@pytest.fixture
def clerk(client: httpx.Client) -> dict[str, str]:
    return bearer(client, "clerk.11110")


def test_a_clerk_matches_a_misnumbered_payment_to_its_notice_and_it_posts_once(
    client: httpx.Client, connection: Connection, clerk: dict[str, str]
) -> None:
    device = Device.enrolled(client)
    event = device.issue_parking(plate=fresh_plate())
    device.push_ok([event])
    meant = event["notice_no"]
    wrong = "111102699999991"  # a well-formed 11110 number no device issued: the payer mistyped it
    txn_id = paid_into_suspense(connection, wrong, 40_000)

    mine = [item for item in listed(client, clerk) if item["reference"] == txn_id]
    assert len(mine) == 1
    item = mine[0]
    assert (item["reported_notice_no"], item["jurisdiction"], item["amount"], item["refund_due"]) == (
        wrong, "11110", 40_000, False
    )  # fmt: skip
    assert all(i["reference"] != txn_id for i in listed(client, bearer(client, "clerk.11680")))  # not theirs

    url = f"/api/v1/suspense/{item['id']}/match"
    response = client.post(url, json={"notice_no": meant, "note": "납부자 전화 확인: 번호 오기"}, headers=clerk)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["matched_notice_no"], body["match_note"]) == (
        "matched", meant, "납부자 전화 확인: 번호 오기"
    )  # fmt: skip
    again = client.post(url, json={"notice_no": meant, "note": "두 번"}, headers=clerk)
    assert again.status_code == 409 and again.json()["code"] == "invalid_transition"

    with Session(bind=connection) as session:
        notice = notices.find_notice(session, meant)
        assert notice is not None and notice.status == "paid"
        receivable = notices.receivable_of(session, notice.id)
        assert receivable is not None and ledger.balance(session, receivable.id) == 0
        entries = [(e.kind, e.amount) for e in ledger.entries(session, receivable.id)]
        assert entries.count(("payment", -40_000)) == 1
        assert payments.suspense_total(session, wrong) == 0


def test_a_clerk_refunds_unmatched_money_with_reason_and_a_masked_account(
    client: httpx.Client, connection: Connection, clerk: dict[str, str]
) -> None:
    txn_id = paid_into_suspense(connection, "111102699999983", 12_345)
    item = next(i for i in listed(client, clerk) if i["reference"] == txn_id)
    url = f"/api/v1/suspense/{item['id']}/refund"
    refund = {"reason": "3개월 미확인, 납부자 요청", "bank_name": "신한은행", "account_no": "110-123-456789",
              "holder": "홍길동"}  # fmt: skip
    response = client.post(url, json=refund, headers=clerk)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["refund_reason"], body["refund_account"]) == (
        "refunded", "3개월 미확인, 납부자 요청", "신한은행 ********6789"
    )  # fmt: skip
    assert "홍길동" not in response.text and "123456789" not in response.text
    assert client.post(url, json=refund, headers=clerk).status_code == 409
    assert any(i["reference"] == txn_id for i in listed(client, clerk, "refunded"))
    assert all(i["reference"] != txn_id for i in listed(client, clerk))

    with Session(bind=connection) as session:
        row = session.scalar(select(payments.SuspensePayment).where(payments.SuspensePayment.id == item["id"]))
        assert row is not None and row.refund_account_enc is not None and row.refunded_by is not None
        opened = PiiCipher(TEST_PII_KEY, TEST_LOOKUP_KEY).decrypt_json(
            row.refund_account_enc, context=f"suspense:{row.id}".encode()
        )
        assert opened == {"bank_name": "신한은행", "account_no": "110123456789", "holder": "홍길동"}


def test_bad_requests_are_refused_with_the_field(
    client: httpx.Client, connection: Connection, clerk: dict[str, str]
) -> None:
    txn_id = paid_into_suspense(connection, "111102699999975", 1_000)
    item = next(i for i in listed(client, clerk) if i["reference"] == txn_id)
    base = f"/api/v1/suspense/{item['id']}"
    bad_number = client.post(f"{base}/match", json={"notice_no": "12", "note": "x"}, headers=clerk)
    assert bad_number.status_code == 422 and "notice_no" in bad_number.json()["errors"]
    unknown = client.post(f"{base}/match", json={"notice_no": "111102699999967", "note": "x"}, headers=clerk)
    assert unknown.status_code == 404 and unknown.json()["field"] == "notice_no"
    short = client.post(f"{base}/refund", json={"reason": "r", "bank_name": "b", "account_no": "12-3",
                                                "holder": "h"}, headers=clerk)  # fmt: skip
    assert short.status_code == 422 and "account_no" in short.json()["errors"]
    assert client.post("/api/v1/suspense/0/match", json={"notice_no": "111102699999967", "note": "x"},
                       headers=clerk).status_code == 404  # fmt: skip
    assert client.get("/api/v1/suspense", params={"status": "lost"}, headers=clerk).status_code == 422
    officer = bearer(client, "officer.11110.1")
    assert client.get("/api/v1/suspense", headers=officer).status_code in (401, 403)
    assert listed(client, clerk)  # nothing above changed the row
    other = bearer(client, "clerk.11680")
    hidden = client.post(f"{base}/refund", json={"reason": "r", "bank_name": "b", "account_no": "1234567890",
                                                 "holder": "h"}, headers=other)  # fmt: skip
    assert hidden.status_code == 404


def test_an_unmatched_payment_is_due_for_refund_after_the_configured_age(
    client: httpx.Client, connection: Connection, clerk: dict[str, str]
) -> None:
    from models import suspense
    from models.base import Scope

    paid_into_suspense(connection, None, 5_000)  # named no number at all: city-wide only
    assert all(i["reported_notice_no"] is not None for i in listed(client, clerk))
    with Session(bind=connection) as session:
        later = datetime.now(UTC) + timedelta(days=31)
        items = suspense.list_suspense(session, Scope.everything(), later, timedelta(days=30))
        assert items and all(i.refund_due for i in items)
        assert suspense.refunds_due(session, later, timedelta(days=30)) == len(items)
        assert suspense.refunds_due(session, datetime.now(UTC), timedelta(days=30)) == 0
