"""The sync protocol's vocabulary (PROTOCOL.md §2, §3): event types, per-event results, flags, reasons,
statuses, and the per-device event hash chain (canonical JSON, SHA-256)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

PROTOCOL_VERSION = 1
GENESIS_HASH = "0" * 64

# event types (§2)
NOTICE_ISSUED = "notice.issued"
NOTICE_VOIDED = "notice.voided"
NOTICE_CORRECTED = "notice.corrected"
NUMBER_SPOILED = "number.spoiled"
NOTICE_REPRINTED = "notice.reprinted"
EVENT_TYPES = (NOTICE_ISSUED, NOTICE_VOIDED, NOTICE_CORRECTED, NUMBER_SPOILED, NOTICE_REPRINTED)

# per-event results (§2)
ACCEPTED, DUPLICATE, CONFLICT, REJECTED, HELD = "accepted", "duplicate", "conflict", "rejected", "held"
FINAL_STATUSES = (ACCEPTED, CONFLICT, REJECTED)

# flags on accepted notices (§2)
FLAGS = (
    "possible_duplicate",
    "clock_skew",
    "late_sync",
    "photos_missing",
    "number_outside_block",
    "chain_broken",
    "amount_mismatch",
    "qr_mismatch",
)

VOID_REASONS = ("wrong_vehicle", "wrong_code", "driver_returned", "duplicate", "test_print", "other")
SPOIL_REASONS = ("printer_jam", "misprint", "other")
VEHICLE_TYPES = ("car", "van")
NOTICE_KINDS = ("parking", "person")
NOTICE_STATUSES = (
    "issued",
    "under_review",
    "voided",
    "cancelled",
    "noticed",
    "paid",
    "imposed",
    "objected",
    "in_court",
    "overdue",
    "closed",
)


def canonical_json(value: Any) -> bytes:
    """The canonical bytes the protocol hashes: sorted keys, no spaces, UTF-8.

    A lone surrogate (JSON may carry ``"\\ud800"``) is encoded as its three UTF-8-like bytes instead of raising:
    valid text hashes the same, and the server can still identify, answer and refuse such an event."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")


def event_hash(event: dict[str, Any]) -> str:
    """Hex SHA-256 of the whole event object as pushed, including its own ``data.prev_hash``."""
    return hashlib.sha256(canonical_json(event)).hexdigest()
