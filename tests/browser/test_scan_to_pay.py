"""A citizen scans the slip's QR with a phone and pays (issue 6's browser proof): for a notice the device already
synced, and for one still waiting on the device. Real gunicorn, the gateway sandbox process, Debian's chromium."""

from __future__ import annotations

import httpx

from tests.support.device import Device, staff_token
from tests.support.phone import pay_by_phone
from tests.support.story import clerk_notice


def test_scan_to_pay_a_synced_notice_on_a_phone(server, phone, axe) -> None:
    api = httpx.Client(base_url=server.url, timeout=15)
    device = Device.enrolled(api, "11110")
    event = device.issue_parking(plate="12가3456")
    device.push_ok([event])

    shown = pay_by_phone(phone, axe, event["data"]["qr"], "synced")

    assert "32,000원" in shown
    clerk = staff_token(api, "clerk.11110")
    notice = clerk_notice(api, clerk, event["notice_no"])
    assert notice["status"] == "paid"
    assert [(p["channel"], p["status"], p["amount"]) for p in notice["payments"]] == [("card", "paid", 32000)]
    # the page after paying shows the plate only masked
    phone.goto(event["data"]["qr"])
    assert "납부가 완료되었습니다" in phone.content()
    assert "12가3456" not in phone.content()


def test_scan_to_pay_a_notice_the_device_has_not_synced_yet(server, phone, axe) -> None:
    api = httpx.Client(base_url=server.url, timeout=15)
    device = Device.enrolled(api, "11110")
    event = device.issue_parking(plate="34나5678")  # printed in the street; the device is still offline

    phone.goto(event["data"]["qr"])
    assert "전송 대기 중" in phone.content()
    shown = pay_by_phone(phone, axe, event["data"]["qr"], "unsynced", "계좌이체로 결제하기")
    assert "32,000원" in shown

    device.push_ok([event])  # the device comes back: the money waiting in suspense is matched at once
    clerk = staff_token(api, "clerk.11110")
    notice = clerk_notice(api, clerk, event["notice_no"])
    assert notice["status"] == "paid"
    assert [(p["channel"], p["status"], p["amount"]) for p in notice["payments"]] == [("transfer", "paid", 32000)]


def test_the_accessibility_check_fails_a_page_with_a_serious_violation(phone, axe) -> None:
    phone.set_content('<html lang="ko"><body><main><button id="x"></button></main></body></html>')
    try:
        axe(phone, "known-bad")
    except AssertionError as exc:
        assert "button-name" in str(exc)
    else:
        raise AssertionError("axe let a nameless button through")
