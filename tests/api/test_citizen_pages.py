"""Citizen pages behind the signed QR link: the amount breakdown as of today (from the ledger), the receipt page and
its PDF, and the opinion form within the period — Korean, and no personal data beyond a masked plate or name."""

from __future__ import annotations

import io
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import httpx
import pypdfium2
import pytest
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

import protocol
from models import arrears, ledger, payments
from models import notices as notice_ops
from models.base import Actor
from models.fines.tables import FineCase, FineCaseEvent
from server import create_app
from server.citizen import form_token
from tests.support.device import Device
from tests.support.pages import element, local

NAME, RRN, PLATE = "홍길동", "900101-1234567", "12가3456"


@pytest.fixture
def device(client: httpx.Client) -> Device:
    return Device.enrolled(client, "11110")


def pushed(device: Device, event: dict) -> str:
    assert device.push_ok([event])["results"][0]["status"] == "accepted"
    return local(event["data"]["qr"])


def won(text: str) -> int:
    return int(text.replace(",", "").replace("원", "").strip())


def lines_of(html: str) -> dict[str, int]:
    return {key: won(amount) for key, amount in re.findall(r'id="(line-[a-z-]+)">([^<]*)<', html)}


def receivable_id(connection: Connection, notice_no: str) -> int:
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        notice = notice_ops.find_notice(session, notice_no)
        assert notice is not None
        receivable = notice_ops.receivable_of(session, notice.id)
        assert receivable is not None
        return receivable.id


def ledger_totals(connection: Connection, rid: int) -> tuple[dict[tuple[str, str], int], int]:
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        return ledger.totals_by_head(session, rid), ledger.balance(session, rid)


def pay(connection: Connection, notice_no: str, amount: int, at: datetime) -> str:
    """A payment the gateway confirmed, posted as its callback would; returns the txn_id."""
    txn_id = uuid.uuid4().hex
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        received = payments.ReceivedPayment("sandbox", txn_id, "qr", notice_no, amount, at)
        payments.post_payment(session, received, Actor(label="gateway:sandbox"), at)
        session.commit()
    return txn_id


def client_at(connection: Connection, test_config, now: datetime) -> httpx.Client:
    app = create_app(test_config, bind=connection, clock=lambda: now)
    return httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://localhost")


def with_path(link: str, suffix: str, **extra: str) -> str:
    parts = urlsplit(link)
    query = "&".join(f"{k}={v}" for k, v in [*parse_qsl(parts.query), *extra.items()])
    return f"{parts.path}{suffix}?{query}"


def assert_no_personal_data(html: str) -> None:
    for secret in (NAME, RRN, RRN.replace("-", ""), PLATE, "010-1234-5678", "01012345678"):
        assert secret not in html


# --- the breakdown ----------------------------------------------------------------------------------------------


def test_a_fresh_notice_breaks_the_amount_due_into_principal_and_the_self_payment_reduction_with_its_last_day(
    client, device
):
    link = pushed(device, device.issue_parking(code="P01", vehicle_type="car", plate=PLATE))
    html = client.get(link).text
    lines = lines_of(html)
    assert lines["line-principal"] == 40_000
    assert lines["line-self-payment"] == -8_000
    assert lines["line-due"] == 32_000 == won(element(html, "due-today"))
    assert "까지 납부 시" in html
    assert "line-surcharge" not in lines
    assert_no_personal_data(html)
    assert "12가34**" in html


def test_an_overdue_notice_shows_the_surcharges_and_payments_the_ledger_holds_and_they_add_up_to_the_balance(
    client, connection, test_config, device
):
    """Imposed with a due date 20 days after issue; a hundred days later 가산금 and two 중가산금 months are posted."""
    link = pushed(device, device.issue_parking(code="P01", vehicle_type="car"))
    notice_no = urlsplit(link).path.rsplit("/", 1)[1]
    rid = receivable_id(connection, notice_no)
    now = datetime.now(UTC) + timedelta(days=100)
    today = protocol.seoul_date(now)
    due = protocol.seoul_date(datetime.now(UTC)) + timedelta(days=20)
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        arrears.start_collection(session, rid, due, on=due - timedelta(days=20), surcharge_rule="fine_act")
        arrears.catch_up_receivable(session, rid, today, Actor.system())
        session.commit()
    pay(connection, notice_no, 10_000, now)

    totals, balance = ledger_totals(connection, rid)
    with client_at(connection, test_config, now) as phone:
        html = phone.get(link).text
    lines = lines_of(html)
    assert lines["line-principal"] == totals[(ledger.PRINCIPAL, "charge")] == 40_000
    assert lines["line-surcharge"] == totals[(ledger.SURCHARGE, "surcharge")] > 0
    assert lines["line-monthly-surcharge"] == totals[(ledger.MONTHLY_SURCHARGE, "surcharge")] > 0
    assert lines["line-paid"] == sum(v for (_h, kind), v in totals.items() if kind == "payment") == -10_000
    assert "line-self-payment" not in lines  # past the opinion period: no 자진납부 price
    due_today = lines.pop("line-due")
    assert sum(lines.values()) == balance == due_today == won(element(html, "due-today"))


# --- the receipt ------------------------------------------------------------------------------------------------


def test_the_receipt_shows_what_was_paid_when_how_its_allocation_and_the_balance_left(client, connection, device):
    link = pushed(device, device.issue_person(name=NAME, rrn=RRN))
    notice_no = urlsplit(link).path.rsplit("/", 1)[1]
    amount = won(element(client.get(link).text, "due-today"))
    txn_id = pay(connection, notice_no, amount, datetime.now(UTC))

    response = client.get(with_path(link, "/receipt", txn_id=txn_id))
    assert response.status_code == 200
    html = response.text
    assert f"{amount:,}원" in html
    assert element(html, "method") == "QR 전자납부"
    assert element(html, "payer") == "홍*동"
    assert won(element(html, "balance-after")) == 0
    assert won(element(html, "self-payment-reduction")) > 0
    assert "과태료" in html and "납부일시" in html
    assert_no_personal_data(html)
    # the done page links here with the same signed fields
    done = client.get(with_path(link, "/done", txn_id=txn_id)).text
    assert f"/p/{notice_no}/receipt?" in done


def test_every_citizen_page_sends_headers_that_keep_its_link_to_itself(client, connection, device):
    link = pushed(device, device.issue_person(name=NAME, rrn=RRN))
    notice_no = urlsplit(link).path.rsplit("/", 1)[1]
    amount = won(element(client.get(link).text, "due-today"))
    txn_id = pay(connection, notice_no, amount, datetime.now(UTC))
    answers = {
        "page": client.get(link),
        "done": client.get(with_path(link, "/done", txn_id=txn_id)),
        "receipt": client.get(with_path(link, "/receipt", txn_id=txn_id)),
        "receipt.pdf": client.get(with_path(link, "/receipt.pdf", txn_id=txn_id)),
        "opinion": client.get(with_path(link, "/opinion")),
        "forged link": client.get(link.replace("s=", "s=x")),
    }
    for name, response in answers.items():
        headers = response.headers
        assert headers.get("referrer-policy") == "no-referrer", name
        assert headers.get("cache-control") == "no-store", name
        assert headers.get("x-frame-options") == "DENY", name
        csp = headers.get("content-security-policy", "")
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, name
    assert answers["forged link"].status_code >= 400
    assert "referrer-policy" not in client.get("/healthz").headers  # only the citizen pages carry a capability


def test_the_done_page_never_shows_another_notices_payment(client, connection, device):
    paid_link = pushed(device, device.issue_person(name=NAME, rrn=RRN))
    paid_no = urlsplit(paid_link).path.rsplit("/", 1)[1]
    amount = won(element(client.get(paid_link).text, "due-today"))
    txn_id = pay(connection, paid_no, amount, datetime.now(UTC))
    other_link = pushed(device, device.issue_person(name=NAME, rrn=RRN))

    done = client.get(with_path(other_link, "/done", txn_id=txn_id)).text

    assert element(done, "pay-result") == "결제 확인 중입니다"  # as for a payment this page does not know
    assert txn_id not in done and 'id="paid-amount"' not in done and "receipt-link" not in done
    own = client.get(with_path(paid_link, "/done", txn_id=txn_id)).text
    assert element(own, "pay-result") == "납부가 완료되었습니다" and txn_id in own


def test_the_receipt_pdf_is_a_korean_a4_receipt_with_the_name_masked(client, connection, device):
    link = pushed(device, device.issue_person(name=NAME, rrn=RRN))
    notice_no = urlsplit(link).path.rsplit("/", 1)[1]
    amount = won(element(client.get(link).text, "due-today"))
    txn_id = pay(connection, notice_no, amount, datetime.now(UTC))

    response = client.get(with_path(link, "/receipt.pdf", txn_id=txn_id))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert f'filename="receipt-{notice_no}.pdf"' in disposition
    assert "filename*=UTF-8''%EC%98%81%EC%88%98%EC%A6%9D-" in disposition  # 영수증-
    pdf = pypdfium2.PdfDocument(io.BytesIO(response.content))
    text = "".join(pdf[i].get_textpage().get_text_range() for i in range(len(pdf)))
    for wanted in ("영수증", "납부금액", "홍*동", notice_no, f"{amount:,}", "납부 후 잔액"):
        assert wanted in text, wanted
    assert NAME not in text and RRN not in text


def test_without_a_posted_payment_the_receipt_is_a_korean_404_page(client, device):
    link = pushed(device, device.issue_parking())
    for path in ("/receipt", "/receipt.pdf"):
        response = client.get(with_path(link, path))
        assert response.status_code == 404
        assert '<html lang="ko">' in response.text


def test_a_receipt_link_with_a_bad_signature_shows_nothing(client, connection, device):
    link = pushed(device, device.issue_person(name=NAME, rrn=RRN))
    bad = re.sub(r"s=[A-Za-z2-7]+", "s=AAAA", link)
    assert client.get(with_path(bad, "/receipt")).status_code == 403
    assert client.get(with_path(bad, "/receipt.pdf")).status_code == 403


# --- the opinion form -------------------------------------------------------------------------------------------


def form_fields(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([a-z])" value="([^"]*)">', html))


def stage_and_detail(connection: Connection, notice_no: str) -> tuple[str, dict | None]:
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        notice = notice_ops.find_notice(session, notice_no)
        assert notice is not None
        case = session.get(FineCase, notice.id)
        assert case is not None
        event = session.scalar(
            select(FineCaseEvent)
            .where(FineCaseEvent.notice_id == notice.id, FineCaseEvent.what == "submit_opinion")
            .order_by(FineCaseEvent.id.desc())
        )
        return case.stage, event.detail if event is not None else None


def test_an_opinion_within_the_period_is_recorded_as_the_citizens_and_the_case_waits_for_a_decision(
    client, connection, device
):
    link = pushed(device, device.issue_person(name=NAME, rrn=RRN))
    notice_no = urlsplit(link).path.rsplit("/", 1)[1]
    form = client.get(with_path(link, "/opinion"))
    assert form.status_code == 200
    assert 'name="t"' in form.text
    assert_no_personal_data(form.text)
    fields = form_fields(form.text)
    answer = client.post(
        f"/p/{notice_no}/opinion",
        data={**fields, "summary": "당시 긴급한 사정이 있었습니다.", "phone": "010-1234-5678"},
    )
    assert answer.status_code == 200, answer.text
    assert "의견이 제출되었습니다" in answer.text
    assert_no_personal_data(answer.text)
    stage, detail = stage_and_detail(connection, notice_no)
    assert stage == "opinion_submitted"
    assert detail is not None and detail["submitted_by"] == "citizen" and detail["channel"] == "electronic"
    assert "010" not in str(detail) and detail["contact_sealed"]  # the phone only sealed
    again = client.get(with_path(link, "/opinion"))
    assert again.status_code == 409
    assert "이미 제출하신 의견" in again.text


def test_an_opinion_without_a_valid_token_is_refused_and_nothing_changes(client, connection, device):
    link = pushed(device, device.issue_person(name=NAME, rrn=RRN))
    notice_no = urlsplit(link).path.rsplit("/", 1)[1]
    fields = form_fields(client.get(with_path(link, "/opinion")).text)
    issued, mac = fields["t"].split(".")
    forged = {
        "no token": {k: v for k, v in fields.items() if k != "t"},
        "a forged token": {**fields, "t": f"{issued}.{'0' * 64}"},
        "a token from another time": {**fields, "t": f"{int(issued) - 1}.{mac}"},
        "an expired token": {**fields, "t": f"{int(issued) - 7200}.{mac}"},
    }
    for name, data in forged.items():
        response = client.post(f"/p/{notice_no}/opinion", data={**data, "summary": "의견"})
        assert response.status_code == 403, name
        assert '<html lang="ko">' in response.text
    cross_site = client.post(
        f"/p/{notice_no}/opinion", data={**fields, "summary": "의견"}, headers={"Origin": "https://evil.example"}
    )
    assert cross_site.status_code == 403
    for metadata in ({}, {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "none"}):  # an opaque origin elsewhere
        opaque = client.post(f"/p/{notice_no}/opinion", data={**fields, "summary": "의견"},
                             headers={"Origin": "null", **metadata})  # fmt: skip
        assert opaque.status_code == 403, metadata
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        notice = notice_ops.find_notice(session, notice_no)
        assert notice is not None
        case = session.get(FineCase, notice.id)
        assert case is None or case.stage == "advance_noticed"


def test_an_expired_form_token_is_refused(client, connection, test_config, device):
    link = pushed(device, device.issue_person(name=NAME, rrn=RRN))
    notice_no = urlsplit(link).path.rsplit("/", 1)[1]
    fields = form_fields(client.get(with_path(link, "/opinion")).text)
    with client_at(connection, test_config, datetime.now(UTC) + timedelta(hours=2)) as later:
        response = later.post(f"/p/{notice_no}/opinion", data={**fields, "summary": "의견"})
    assert response.status_code == 403


def test_after_the_deadline_the_form_says_so_and_refuses(client, connection, test_config, device):
    event = device.issue_person(name=NAME, rrn=RRN)
    link = pushed(device, event)
    notice_no = event["notice_no"]
    fields = form_fields(client.get(with_path(link, "/opinion")).text)
    deadline = date.fromisoformat(event["data"]["opinion_deadline"])
    after = datetime.combine(deadline + timedelta(days=1), datetime.min.time(), protocol.SEOUL) + timedelta(hours=1)
    app = create_app(test_config, bind=connection, clock=lambda: after)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://localhost") as late:
        page = late.get(with_path(link, "/opinion"))
        assert page.status_code == 409
        assert "의견제출기한" in page.text and "지났습니다" in page.text
        assert 'id="opinion-form"' not in page.text
        with app.app_context():  # a token as fresh as can be: the refusal is the deadline's, not the token's
            token = form_token(notice_no, fields["s"], int(after.timestamp()))
        refused = late.post(f"/p/{notice_no}/opinion", data={**fields, "t": token, "summary": "늦은 의견"})
        assert refused.status_code == 409
        assert "지났습니다" in refused.text
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        notice = notice_ops.find_notice(session, notice_no)
        assert notice is not None
        case = session.get(FineCase, notice.id)
        assert case is None or case.stage != "opinion_submitted"


def test_after_paying_the_reduced_amount_the_form_refuses(client, connection, device):
    link = pushed(device, device.issue_person(name=NAME, rrn=RRN))
    notice_no = urlsplit(link).path.rsplit("/", 1)[1]
    fields = form_fields(client.get(with_path(link, "/opinion")).text)
    amount = won(element(client.get(link).text, "due-today"))
    pay(connection, notice_no, amount, datetime.now(UTC))
    page = client.get(with_path(link, "/opinion"))
    assert page.status_code == 409
    assert "납부되어" in page.text
    refused = client.post(f"/p/{notice_no}/opinion", data={**fields, "summary": "의견"})
    assert refused.status_code == 409
    assert stage_and_detail(connection, notice_no)[0] == "paid"


def test_an_empty_opinion_is_asked_again_in_korean(client, device):
    link = pushed(device, device.issue_person(name=NAME, rrn=RRN))
    notice_no = urlsplit(link).path.rsplit("/", 1)[1]
    fields = form_fields(client.get(with_path(link, "/opinion")).text)
    response = client.post(f"/p/{notice_no}/opinion", data={**fields, "summary": "  ", "phone": "12"})
    assert response.status_code == 422
    assert "의견 내용을 입력해 주세요" in response.text
    assert "전화번호 형식이 올바르지 않습니다" in response.text
