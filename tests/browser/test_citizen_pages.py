"""The citizen pages on a phone (390 × 844): the amount breakdown, the receipt after paying, and the opinion form —
each checked by axe-core (no serious or critical violation) with a screenshot. Real gunicorn, the gateway sandbox
process, Debian's chromium."""

from __future__ import annotations

import time

import httpx

from tests.support.device import Device
from tests.support.phone import pay_by_phone


def test_the_breakdown_then_paying_then_the_receipt_on_a_phone(server, phone, axe) -> None:
    api = httpx.Client(base_url=server.url, timeout=15)
    device = Device.enrolled(api, "11110")
    event = device.issue_person(name="홍길동", rrn="900101-1234567")
    device.push_ok([event])

    phone.goto(event["data"]["qr"])
    axe(phone, "breakdown")
    assert phone.locator("#line-principal").inner_text() == "100,000원"
    assert phone.locator("#line-self-payment").inner_text() == "-20,000원"
    assert phone.locator("#line-due").inner_text() == phone.locator("#due-today").inner_text() == "80,000원"

    pay_by_phone(phone, axe, event["data"]["qr"], "pay")
    for _ in range(20):  # the gateway's callback may land a moment after the phone is sent back
        if phone.locator("#receipt-link").count():
            break
        time.sleep(0.25)
        phone.reload()
    phone.locator("#receipt-link").click()
    phone.wait_for_url("**/receipt?**")
    axe(phone, "receipt")
    main = phone.locator("main").inner_text()
    assert "80,000원" in main and "홍*동" in main and "신용카드 (QR 전자납부)" in main
    assert "홍길동" not in phone.content() and "900101" not in phone.content()
    assert phone.locator("#balance-after").inner_text() == "0원"
    pdf = api.get(phone.locator("#receipt-pdf").get_attribute("href"))
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"


def test_submitting_an_opinion_on_a_phone(server, phone, axe) -> None:
    api = httpx.Client(base_url=server.url, timeout=15)
    device = Device.enrolled(api, "11110")
    event = device.issue_person(name="김철수", rrn="850505-1234567")
    device.push_ok([event])

    phone.goto(event["data"]["qr"])
    phone.locator("#opinion-link").click()
    phone.wait_for_url("**/opinion?**")
    axe(phone, "opinion-form")
    phone.get_by_label("의견 내용 (필수)").fill("당시 몸이 아파 잠시 쉬고 있었습니다.")
    phone.get_by_label("연락받을 전화번호 (선택)").fill("010-2222-3333")
    phone.locator("#submit-opinion").click()
    phone.wait_for_load_state()
    assert "의견이 제출되었습니다" in phone.content()
    axe(phone, "opinion-done")
    assert "김철수" not in phone.content() and "010-2222-3333" not in phone.content()

    phone.goto(
        event["data"]["qr"].replace("/p/", "/p/", 1).split("?")[0] + "/opinion?" + event["data"]["qr"].split("?")[1]
    )
    assert "이미 제출하신 의견" in phone.content()
    axe(phone, "opinion-closed")
