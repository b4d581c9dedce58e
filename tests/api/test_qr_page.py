"""The citizen's payment page behind the QR printed on a notice (PROTOCOL.md §5): Korean, phone-sized, and it shows
amounts only for a link whose signature checks out — before the notice has synced as well as after."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest

import protocol
from server import create_app
from tests.support.device import Device
from tests.support.pages import element, local

AMOUNT_IN_WON = re.compile(r"[0-9][0-9,]*\s*원")


def with_fields(url: str, **fields: str | None) -> str:
    """``url`` with query fields replaced (``None`` removes one)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    for name, value in fields.items():
        if value is None:
            query.pop(name)
        else:
            query[name] = value
    return f"{parts.path}?{urlencode(query)}"


def error_page_problems(response: httpx.Response, status: int | None = None) -> list[str]:
    """What keeps ``response`` from being an HTML 4xx page (of ``status``) with not one amount on it."""
    wrong = []
    if not 400 <= response.status_code < 500 or status not in (None, response.status_code):
        wrong.append(f"status {response.status_code}, expected {status or 'a 4xx'}")
    if not response.headers["content-type"].startswith("text/html"):
        wrong.append(f"content-type {response.headers['content-type']}")
    if '<html lang="ko">' not in response.text:
        wrong.append("not a Korean page")
    shown = AMOUNT_IN_WON.findall(response.text) + [a for a in ("40000", "32000") if a in response.text]
    if shown:
        wrong.append(f"amounts on the page: {shown}")
    return wrong


def assert_error_pages(client: httpx.Client, links: dict[str, str], status: int | None = None) -> None:
    failures = [
        f"{name}: {wrong}" for name, link in links.items() for wrong in error_page_problems(client.get(link), status)
    ]
    if failures:
        pytest.fail("\n".join(failures))


@pytest.fixture
def device(client: httpx.Client) -> Device:
    return Device.enrolled(client, "11110")


@pytest.fixture
def synced_link(client: httpx.Client, device: Device) -> str:
    """The QR of a P01 car notice (40,000원, 32,000원 within the opinion period) the server has received."""
    event = device.issue_parking(code="P01", vehicle_type="car")
    assert device.push_ok([event])["results"][0]["status"] == "accepted"
    return local(event["data"]["qr"])


def test_a_synced_notice_shows_its_violation_and_the_reduced_amount_due_today_in_korean(client, synced_link):
    response = client.get(synced_link)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert element(html, "violation") == "일반 주정차 위반"
    assert element(html, "due-today") == "32,000원"
    assert element(html, "amount") == "40,000원"
    assert element(html, "reduced-amount") == "32,000원"
    assert "오늘 납부하실 금액" in html
    assert "최대 50%까지 감경" in html  # the 시행령 §2의2 maximum, read from the statutory rule rows


def test_the_hardship_maximum_follows_the_rule_rows(client, synced_link, connection):
    from sqlalchemy import text

    connection.execute(text("UPDATE statutory_rules SET rate = 0.6 WHERE rule = 'hardship_reduction'"))
    assert "최대 60%까지 감경" in client.get(synced_link).text
    connection.execute(text("DELETE FROM statutory_rules WHERE rule = 'hardship_reduction'"))
    html = client.get(synced_link).text
    assert "감경을 신청하실 수 있습니다" in html and "최대" not in html  # no row: no number is invented


def test_the_page_is_korean_and_phone_sized(client, synced_link):
    html = client.get(synced_link).text
    assert '<html lang="ko">' in html
    viewport = re.search(r'<meta name="viewport" content="([^"]*)"', html)
    assert viewport and "width=device-width" in viewport.group(1)


def test_the_page_shows_no_personal_data_beyond_a_masked_plate(client, device):
    event = device.issue_parking(plate="12가3456")
    device.push_ok([event])
    html = client.get(local(event["data"]["qr"])).text
    assert "12가3456" not in html
    assert "12가34**" in html


def test_a_lower_case_signature_is_accepted(client, synced_link):
    signature = dict(parse_qsl(urlsplit(synced_link).query))["s"]
    response = client.get(with_fields(synced_link, s=signature.lower()))
    assert response.status_code == 200
    assert element(response.text, "due-today") == "32,000원"


def test_a_tampered_link_shows_an_error_page_without_amounts(client, synced_link):
    signature = dict(parse_qsl(urlsplit(synced_link).query))["s"]
    flipped = ("B" if signature[0] == "A" else "A") + signature[1:]
    assert_error_pages(
        client,
        {
            "amount changed, signature kept": with_fields(synced_link, a="4000"),
            "reduced amount changed": with_fields(synced_link, r="3200"),
            "deadline changed": with_fields(synced_link, d="20991231"),
            "signature changed": with_fields(synced_link, s=flipped),
        },
    )


def test_a_link_signed_by_the_device_for_other_amounts_than_the_synced_notice_shows_no_amounts(client, device):
    """A valid signature over amounts the server did not receive for that number (a misprint, a forged print)."""
    event = device.issue_parking()
    device.push_ok([event])
    printed = protocol.parse_qr_url(event["data"]["qr"])
    assert printed is not None
    other = protocol.qr_url("", device.qr_key, event["notice_no"], 4_000, 3_200, printed.deadline)
    assert_error_pages(client, {"other amounts": other})


def test_a_link_missing_a_field_shows_a_400_page_without_amounts(client, synced_link):
    assert_error_pages(client, {f"without {name}": with_fields(synced_link, **{name: None}) for name in "ards"}, 400)


def test_a_malformed_field_shows_a_400_page_never_a_500(client, synced_link):
    malformed = {
        "an amount past int()'s digit limit": {"a": "9" * 5000},
        "a superscript digit (str.isdigit says yes, int says no)": {"a": "²"},
        "full-width digits": {"a": "４００００"},
        "a short date": {"d": "2026121"},
        "no such date": {"d": "20261399"},
        "a signature that is not base32": {"s": "not base32!"},
    }
    links = {name: with_fields(synced_link, **fields) for name, fields in malformed.items()}
    assert_error_pages(client, {**links, "a field given twice": f"{synced_link}&a=1"}, 400)


def test_a_notice_not_yet_synced_shows_the_signed_amounts(client, device):
    """Printed offline, never pushed: the number is from the device's block and the QR signed with its key."""
    notice_no = device.next_number()
    deadline = (datetime.now(timezone(timedelta(hours=9))) + timedelta(days=14)).date()
    link = protocol.qr_url("", device.qr_key, notice_no, 40_000, 32_000, deadline)
    response = client.get(link)
    assert response.status_code == 200
    html = response.text
    assert element(html, "notice-no") == notice_no
    assert element(html, "amount") == "40,000원"
    assert element(html, "reduced-amount") == "32,000원"
    assert element(html, "due-today") == "32,000원"
    assert "전송 대기 중" in html


def test_a_link_signed_with_another_devices_key_shows_no_amounts(client, device):
    other = Device.enrolled(client, "11110")
    notice_no = device.next_number()
    link = protocol.qr_url("", other.qr_key, notice_no, 40_000, 32_000, datetime.now().date() + timedelta(days=14))
    assert_error_pages(client, {"another device's key": link})


def test_a_number_outside_any_block_is_a_404_page(client, device):
    numbers = {
        "outside every block": protocol.format_notice_no("11110", "26", 9_999_999),
        "another year's series": protocol.format_notice_no("11680", "99", 1),
        "a bad check digit": "111102600000013",
        "not a number": "12345",
    }
    deadline = datetime.now().date() + timedelta(days=14)
    links = {name: protocol.qr_url("", device.qr_key, no, 40_000, 32_000, deadline) for name, no in numbers.items()}
    assert_error_pages(client, links, 404)


def test_after_the_opinion_deadline_the_full_amount_is_due(client, connection, test_config, synced_link):
    later = datetime.now(UTC) + timedelta(days=60)
    app = create_app(test_config, bind=connection, clock=lambda: later)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://localhost") as after_deadline:
        response = after_deadline.get(synced_link)
    assert response.status_code == 200
    assert element(response.text, "due-today") == "40,000원"
    assert "감경이 적용되지 않습니다" in response.text


def test_the_reduced_price_holds_until_the_later_deadline_of_the_formal_advance_notice(
    client, connection, test_config, device
):
    """A parking owner's 사전통지 gives its own opinion period: the page offers the reduced amount until the later of
    the two deadlines, as the ledger will take it (DESIGN.md §3.2)."""
    from sqlalchemy.orm import Session

    from adapters.registry import Address, Owner
    from models import fines
    from models.base import Actor, Scope
    from models.crypto import PiiCipher

    event = device.issue_parking(code="P01", vehicle_type="car")
    device.push_ok([event])
    slip_deadline = date.fromisoformat(event["data"]["opinion_deadline"])
    sent = datetime.now(UTC) + timedelta(days=10)  # the owner was found and noticed ten days later
    session = Session(bind=connection, join_transaction_mode="create_savepoint")
    cipher = PiiCipher(test_config.pii_key, test_config.lookup_key)
    notice, case = fines.find_case(session, Scope.everything(), event["notice_no"], sent)
    owner = Owner(
        plate=event["data"]["vehicle"]["plate"],
        kind="person",
        name="김소유",
        rrn="800101-1234567",
        business_no=None,
        address=Address("03154", "서울특별시 종로구 세종대로 209"),
        vehicle_type="car",
        since=date(2015, 3, 1),
    )
    fines.set_owner(session, case, notice, owner, cipher, sent, Actor.system())
    fines.send_advance_notice(session, case, notice, cipher, sent, Actor.system())
    session.commit()
    later_deadline = max(slip_deadline, case.reduced_until)
    assert later_deadline > slip_deadline

    day_after_slip = datetime.combine(slip_deadline + timedelta(days=1), datetime.min.time(), protocol.SEOUL)
    app = create_app(test_config, bind=connection, clock=lambda: day_after_slip + timedelta(hours=12))
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://localhost") as phone:
        page = phone.get(local(event["data"]["qr"]))
    assert page.status_code == 200
    assert element(page.text, "due-today") == "32,000원"
    assert element(page.text, "deadline") == later_deadline.strftime("%Y년 %m월 %d일")
