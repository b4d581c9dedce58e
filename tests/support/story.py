"""The payment story's shared parts: the gateway sandbox and a live server that uses it (fixtures, registered by the
e2e and browser conftest.py), paying a notice through the citizen page, and the clerk's view of a notice."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from sandboxes.launcher import start_gateway as start_sandbox
from sandboxes.launcher import stop as stop_sandbox
from tests.conftest import free_port


@pytest.fixture
def gateway() -> Iterator[tuple[str, str]]:
    """The payment gateway sandbox on a free port: (base URL, its signing key)."""
    key = secrets.token_hex(32)
    port = free_port()
    proc = start_sandbox(port, key)
    try:
        yield f"http://127.0.0.1:{port}", key
    finally:
        stop_sandbox(proc)


@pytest.fixture
def server(live_server, gateway):
    url, key = gateway
    return live_server(env={"JINGSU_GATEWAY_URL": url, "JINGSU_GATEWAY_KEY": key})


def clerk_notice(client: httpx.Client, token: str, notice_no: str) -> dict:
    response = client.get(f"/api/v1/notices/{notice_no}", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()


def pay_through_the_citizen_page(citizen: httpx.Client, qr: str) -> tuple[str, str]:
    """Scan, open, press 납부하기, approve at the gateway, come back; returns (txn_id, the page shown at the end)."""
    page = citizen.get(qr)
    assert page.status_code == 200, page.text
    form = re.search(r'<form method="post" action="([^"]+)" id="pay-form">(.*?)</form>', page.text, re.S)
    assert form, "the QR page has a pay button"
    hidden = dict(re.findall(r'<input type="hidden" name="(\w)" value="([^"]*)">', form.group(2)))
    started = citizen.post(urljoin(qr, form.group(1)), data=hidden)
    assert started.status_code == 303, started.text
    at_gateway = citizen.get(started.headers["location"])
    assert at_gateway.status_code == 200 and "결제하기" in at_gateway.text
    txn_id = urlsplit(started.headers["location"]).path.rsplit("/", 1)[-1]
    approved = citizen.post(started.headers["location"] + "/approve")
    assert approved.status_code == 303
    back = citizen.get(approved.headers["location"])
    assert back.status_code == 200
    return txn_id, back.text
