"""The payment details the server prints on a mailed document (``services.payment_links``): the QR it signs opens
the same page as the slip's, the payment number names the notice, and the virtual account is the receivable's."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
from flask import Flask

import protocol
from models import notices, payment_refs
from server import wiring
from server.runtime import unit_of_work
from tests.support.device import Device, fresh_plate


def test_the_server_signed_link_opens_the_notice_page_and_names_the_account(client: httpx.Client, app: Flask) -> None:
    device = Device.enrolled(client)
    event = device.issue_parking(plate=fresh_plate())
    device.push_ok([event])
    notice_no = event["notice_no"]
    with app.test_request_context(), unit_of_work() as session:
        notice = notices.find_notice(session, notice_no)
        assert notice is not None
        info = wiring.payment_links(app.extensions["jingsu"]).info(session, notice)
        receivable = notices.receivable_of(session, notice.id)
        assert receivable is not None
        account = payment_refs.find_account(session, info.account_no)
        assert account is not None and account.receivable_id == receivable.id
    assert payment_refs.notice_no_of_payment_no(info.payment_no) == notice_no
    assert (info.bank_name, info.account_holder) == ("신한은행", "서울특별시")
    payload = protocol.parse_qr_url(info.qr_text)
    assert payload is not None and payload.notice_no == notice_no
    assert protocol.verify_qr(device.qr_key, payload)  # signed with the issuing device's key, as the slip is
    url = urlsplit(info.qr_text)
    page = client.get(f"{url.path}?{url.query}")
    assert page.status_code == 200 and notice_no in page.text
    # the page offers the same account and number for a bank transfer
    assert info.account_no in page.text and info.payment_no_text in page.text
    forged = client.get(f"{url.path}?{url.query[:-1]}{'A' if url.query[-1] != 'A' else 'B'}")
    assert forged.status_code == 403
