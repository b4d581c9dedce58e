"""Paying on a phone in the browser tests (Playwright's page as ``phone``, the ``axe`` fixture)."""

from __future__ import annotations

from typing import Any


def pay_by_phone(phone: Any, axe: Any, qr: str, label: str, method: str = "카드로 결제하기") -> str:
    """Open the QR, press 납부하기, pay at the gateway (card or transfer), come back; returns the text of the last
    page."""
    phone.goto(qr)
    axe(phone, f"{label}-landing")
    due = phone.locator("#due-today").inner_text()
    phone.locator("#pay").click()
    phone.wait_for_load_state()
    assert "결제하기" in phone.content(), "the gateway's payment page"
    phone.get_by_role("button", name=method, exact=True).click()
    phone.wait_for_url("**/done**")
    axe(phone, f"{label}-done")
    return f"{due}\n{phone.locator('main').inner_text()}"
