"""SEN, the treasury bank's real-time receipt feed: one JSON message per receipt, pushed over HTTP and signed.

    POST /api/v1/treasury/sen
    X-SEN-Timestamp: <unix seconds>
    X-SEN-Signature: hex HMAC-SHA256(sen_key, "<timestamp>." + body bytes)
    {"bank_code": "088", "receipt_id": "R0001", "kind": "deposit" | "cancel",
     "channel": "virtual_account" | "bank" | "settlement", "reference": "…", "amount": 32000,
     "received_at": "2026-11-25T14:00:00+09:00", "original_receipt_id": null}

A timestamp more than ``MAX_SKEW`` away from our clock is refused (a replayed message); the same receipt sent again
is harmless anyway (one row per (bank, receipt id)).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta
from typing import Any

from models.treasury.message import CHANNELS, KINDS, MAX_AMOUNT, RECEIPT_ID, BankReport

MAX_SKEW = timedelta(minutes=5)


class SenError(ValueError):
    """A SEN message that is not one: ``errors`` maps each bad field to what is wrong."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items()))
        self.errors = errors


def sign(key: str, timestamp: str, body: bytes) -> str:
    return hmac.new(key.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(key: str, timestamp: str | None, signature: str | None, body: bytes, now: datetime) -> bool:
    """Whether the message is signed with ``key`` and its timestamp is within ``MAX_SKEW`` of ``now``."""
    if not key or not timestamp or not signature or not timestamp.isascii() or not timestamp.isdigit():
        return False
    if len(timestamp) > 12 or abs(now.timestamp() - int(timestamp)) > MAX_SKEW.total_seconds():
        return False
    return hmac.compare_digest(sign(key, timestamp, body), signature.strip().lower())


def _printable(value: str) -> bool:
    return value.isascii() and value.isprintable()


def parse_message(body: Any) -> BankReport:
    """The receipt a SEN message reports; raises ``SenError`` naming every bad field."""
    errors: dict[str, list[str]] = {}
    if not isinstance(body, dict):
        raise SenError({"body": ["a JSON object"]})

    def text(name: str, *, required: bool = True, max_len: int = 30) -> str | None:
        value = body.get(name)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value or len(value) > max_len or not _printable(value):
            errors[name] = [f"printable ASCII of 1–{max_len} characters"]
            return None
        return value

    bank_code = text("bank_code", max_len=3)
    if bank_code is not None and not (len(bank_code) == 3 and bank_code.isdigit()):
        errors["bank_code"] = ["3 digits"]
    receipt_id = text("receipt_id", max_len=20)
    if receipt_id is not None and not RECEIPT_ID.fullmatch(receipt_id):
        errors["receipt_id"] = ["letters, digits or hyphens"]
    kind = body.get("kind")
    if kind not in KINDS:
        errors["kind"] = [f"one of {', '.join(KINDS)}"]
    channel = body.get("channel")
    if channel not in CHANNELS:
        errors["channel"] = [f"one of {', '.join(CHANNELS)}"]
    reference = text("reference", required=kind != "cancel") or ""
    amount = body.get("amount")
    if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < amount < MAX_AMOUNT:
        errors["amount"] = ["a positive integer of won"]
    received_at: datetime | None = None
    raw_at = body.get("received_at")
    try:
        received_at = datetime.fromisoformat(raw_at) if isinstance(raw_at, str) else None
    except ValueError:
        received_at = None
    if received_at is None or received_at.tzinfo is None:
        errors["received_at"] = ["an ISO 8601 time with its offset"]
    original = text("original_receipt_id", required=kind == "cancel", max_len=20)
    if original is not None and not RECEIPT_ID.fullmatch(original):
        errors["original_receipt_id"] = ["letters, digits or hyphens"]
    if kind == "deposit" and original is not None:
        errors["original_receipt_id"] = ["only a cancellation names an original receipt"]
    unknown = set(body) - {
        "bank_code",
        "receipt_id",
        "kind",
        "channel",
        "reference",
        "amount",
        "received_at",
        "original_receipt_id",
    }
    for name in sorted(unknown):
        errors[name] = ["unknown field"]
    if errors:
        raise SenError(errors)
    assert bank_code and receipt_id and received_at is not None and isinstance(amount, int)
    return BankReport(bank_code, receipt_id, str(kind), str(channel), reference, amount, received_at, original)


def message(report: BankReport) -> dict[str, Any]:
    """The SEN body of a report (the sandbox and tests send it)."""
    return report.as_dict()
