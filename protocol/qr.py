"""The payment QR (PROTOCOL.md §5): its URL, HMAC signature, parsing and verification."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit


def qr_signature(qr_key: str, notice_no: str, amount: int, reduced: int, deadline: date) -> str:
    """First 16 characters of base32(HMAC-SHA256(qr_key, "<notice_no>|<a>|<r>|<YYYYMMDD>"))."""
    message = f"{notice_no}|{amount}|{reduced}|{deadline.strftime('%Y%m%d')}"
    digest = hmac.new(qr_key.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).digest()
    return base64.b32encode(digest).decode("ascii").rstrip("=")[:16]


def qr_url(pay_base_url: str, qr_key: str, notice_no: str, amount: int, reduced: int, deadline: date) -> str:
    """The exact text of the payment QR printed on a notice."""
    sig = qr_signature(qr_key, notice_no, amount, reduced, deadline)
    base = pay_base_url.rstrip("/")
    return f"{base}/p/{notice_no}?a={amount}&r={reduced}&d={deadline.strftime('%Y%m%d')}&s={sig}"


@dataclass(frozen=True)
class QrPayload:
    """The signed fields of a payment link."""

    notice_no: str
    amount: int
    reduced_amount: int
    deadline: date
    sig: str


def _is_ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def parse_qr_fields(notice_no: str, a: Any, r: Any, d: Any, s: Any) -> QrPayload | None:
    """Parse the query fields of a payment link; ``None`` when any is missing or malformed."""
    try:
        # ASCII digits only: str.isdigit() also takes "²" or "٣", which int() then refuses
        if not (isinstance(a, str) and _is_ascii_digits(a) and isinstance(r, str) and _is_ascii_digits(r)):
            return None
        if not (isinstance(d, str) and len(d) == 8 and _is_ascii_digits(d) and isinstance(s, str) and 0 < len(s) <= 64):
            return None
        deadline = datetime.strptime(d, "%Y%m%d").date()
    except ValueError:
        return None
    return QrPayload(notice_no=notice_no, amount=int(a), reduced_amount=int(r), deadline=deadline, sig=s)


def parse_qr_url(text: str) -> QrPayload | None:
    """Parse a printed QR text (a full payment URL); ``None`` when it is not one."""
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    match = re.fullmatch(r".*/p/([0-9]{15})", parts.path)
    if not match:
        return None
    query = parse_qs(parts.query, keep_blank_values=True)

    def one(name: str) -> str | None:
        values = query.get(name)
        return values[0] if values and len(values) == 1 else None

    return parse_qr_fields(match.group(1), one("a"), one("r"), one("d"), one("s"))


def verify_qr(qr_key: str, payload: QrPayload) -> bool:
    """True when ``payload.sig`` is the signature of its fields under ``qr_key`` (compared case-insensitively)."""
    expected = qr_signature(qr_key, payload.notice_no, payload.amount, payload.reduced_amount, payload.deadline)
    return hmac.compare_digest(expected.encode(), payload.sig.upper().encode())
