"""Sync protocol v1: the pure rules that the server and every device must compute identically.

PROTOCOL.md is the contract; this module is its executable part. The device (``pda_client``) imports it and never
copies it, the server uses it to recompute and verify what devices send. Nothing here touches a database, a clock
or the network, and nothing here may import from the rest of the project.

- notice numbers: sigungu (5) + block year (2) + serial (7) + Luhn check digit (§2)
- amounts: reduced amount and opinion deadline from an effective-dated schedule row (§2, §3)
- the payment QR and its HMAC signature (§5)
- the per-device event hash chain (§2)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

PROTOCOL_VERSION = 1
SEOUL = ZoneInfo("Asia/Seoul")
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

NOTICE_NO_LENGTH = 15
_NOTICE_NO_RE = re.compile(r"^[0-9]{15}$")


# --- notice numbers ---------------------------------------------------------------------------------------------


def luhn_check_digit(payload: str) -> str:
    """The standard Luhn check digit of a digit string: doubling starts at its rightmost digit."""
    if not payload.isdigit():
        raise ValueError("Luhn payload must be digits")
    total = 0
    for position, char in enumerate(reversed(payload)):
        digit = int(char)
        if position % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return str((10 - total % 10) % 10)


@dataclass(frozen=True)
class NoticeNo:
    """A parsed notice number."""

    jurisdiction: str
    year2: str
    serial: int

    def __str__(self) -> str:
        return format_notice_no(self.jurisdiction, self.year2, self.serial)


def format_notice_no(jurisdiction: str, year2: str | int, serial: int) -> str:
    """Build the 15-digit notice number: sigungu (5) + block year (2) + serial (7) + Luhn digit."""
    year = f"{int(year2):02d}"
    if len(jurisdiction) != 5 or not jurisdiction.isdigit():
        raise ValueError("jurisdiction must be a 5-digit sigungu code")
    if not 0 <= serial <= 9_999_999:
        raise ValueError("serial must fit in 7 digits")
    payload = f"{jurisdiction}{year}{serial:07d}"
    return payload + luhn_check_digit(payload)


def parse_notice_no(value: Any) -> NoticeNo | None:
    """Parse a notice number; ``None`` when it is not 15 digits with a valid check digit."""
    return _parse_notice_no(value) if isinstance(value, str) else None


@lru_cache(maxsize=4096)  # a sync batch asks about the same numbers several times
def _parse_notice_no(value: str) -> NoticeNo | None:
    if not _NOTICE_NO_RE.fullmatch(value):  # fullmatch: "$" also matches before "\n"
        return None
    if luhn_check_digit(value[:14]) != value[14]:
        return None
    return NoticeNo(jurisdiction=value[:5], year2=value[5:7], serial=int(value[7:14]))


# --- dates and amounts ------------------------------------------------------------------------------------------

# Times a device may send: any offset, within these years as Seoul dates. Wide enough for a clock reset to 1970 (the
# notice is kept and flagged), narrow enough that Seoul dates, deadlines and PostgreSQL never overflow.
TIME_RANGE = (1900, 9000)
TIME_RANGE_TEXT = f"between the years {TIME_RANGE[0]} and {TIME_RANGE[1]}"


def time_in_range(moment: datetime) -> bool:
    """Whether ``moment`` is aware and its year in Seoul is within ``TIME_RANGE``."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        return False
    try:
        year = moment.astimezone(SEOUL).year
    except OverflowError:
        return False
    return TIME_RANGE[0] <= year <= TIME_RANGE[1]


def seoul_date(moment: datetime) -> date:
    """The Asia/Seoul calendar date of an aware datetime (dates of law are Seoul dates)."""
    if moment.tzinfo is None:
        raise ValueError("datetime must carry an offset")
    return moment.astimezone(SEOUL).date()


def truncate_to_unit(amount: Decimal | int, unit: int) -> int:
    """Truncate a non-negative amount of won down to a multiple of ``unit`` (단수 절사)."""
    if unit <= 0:
        raise ValueError("rounding unit must be positive")
    value = Decimal(amount)
    return int((value / unit).to_integral_value(rounding=ROUND_FLOOR)) * unit


def reduced_amount(amount: int, reduction_rate: str | Decimal, rounding_unit: int) -> int:
    """자진납부 감경: ``amount`` × (1 − rate), truncated to ``rounding_unit``; exact decimal, never float."""
    rate = Decimal(reduction_rate) if isinstance(reduction_rate, str) else reduction_rate
    if not Decimal(0) <= rate <= Decimal(1):
        raise ValueError("reduction rate must be within 0..1")
    return truncate_to_unit(Decimal(amount) * (Decimal(1) - rate), rounding_unit)


def opinion_deadline(observed_at: datetime, opinion_days: int) -> date:
    """의견제출기한: the Seoul date of ``observed_at`` plus ``opinion_days`` (inclusive last day)."""
    return seoul_date(observed_at) + timedelta(days=opinion_days)


@dataclass(frozen=True)
class ScheduleRow:
    """One effective-dated row of the fine schedule (§3 ``fine_schedule``)."""

    code: str
    amount: int
    reduction_rate: Decimal
    rounding_unit: int
    opinion_days: int
    valid_from: date
    valid_to: date | None = None
    vehicle_type: str | None = None
    zone: str | None = None

    @property
    def key(self) -> str:
        return schedule_key(self.code, self.vehicle_type, self.zone, self.valid_from)

    def applies_on(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day < self.valid_to)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> ScheduleRow:
        """Build a row from a pulled ``fine_schedule`` change's data."""
        return cls(
            code=data["code"],
            vehicle_type=data.get("vehicle_type"),
            zone=data.get("zone"),
            amount=int(data["amount"]),
            reduction_rate=Decimal(data["reduction_rate"]),
            rounding_unit=int(data["rounding_unit"]),
            opinion_days=int(data["opinion_days"]),
            valid_from=date.fromisoformat(data["valid_from"]),
            valid_to=date.fromisoformat(data["valid_to"]) if data.get("valid_to") else None,
        )


def schedule_key(code: str, vehicle_type: str | None, zone: str | None, valid_from: date) -> str:
    """``code:vehicle_type or -:zone or -@valid_from``, e.g. ``P01:car:-@2021-05-11``."""
    return f"{code}:{vehicle_type or '-'}:{zone or '-'}@{valid_from.isoformat()}"


def _specificity(row: ScheduleRow) -> int:
    # code + vehicle type + zone, then code + vehicle type, then code + zone, then code alone
    return (2 if row.vehicle_type else 0) + (1 if row.zone else 0)


def select_schedule(
    rows: list[ScheduleRow], code: str, vehicle_type: str | None, zone: str | None, on: date
) -> ScheduleRow | None:
    """The schedule row in force on ``on`` for a notice; the most specific match wins; ``None`` when none applies."""
    candidates = [
        row
        for row in rows
        if row.code == code
        and row.applies_on(on)
        and (row.vehicle_type is None or row.vehicle_type == vehicle_type)
        and (row.zone is None or row.zone == zone)
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda row: (_specificity(row), row.valid_from))


@dataclass(frozen=True)
class Amounts:
    """What a notice prints: the fine, the reduced amount and the opinion deadline, and the row they came from."""

    amount: int
    reduced_amount: int
    opinion_deadline: date
    schedule_key: str


def compute_amounts(row: ScheduleRow, observed_at: datetime) -> Amounts:
    """The printed amounts of a notice observed at ``observed_at`` under schedule ``row``."""
    return Amounts(
        amount=row.amount,
        reduced_amount=reduced_amount(row.amount, row.reduction_rate, row.rounding_unit),
        opinion_deadline=opinion_deadline(observed_at, row.opinion_days),
        schedule_key=row.key,
    )


# --- payment QR (§5) --------------------------------------------------------------------------------------------


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


# --- the event hash chain (§2) ----------------------------------------------------------------------------------


def canonical_json(value: Any) -> bytes:
    """The canonical bytes the protocol hashes: sorted keys, no spaces, UTF-8.

    A lone surrogate (JSON may carry ``"\\ud800"``) is encoded as its three UTF-8-like bytes instead of raising:
    valid text hashes the same, and the server can still identify, answer and refuse such an event."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")


def event_hash(event: dict[str, Any]) -> str:
    """Hex SHA-256 of the whole event object as pushed, including its own ``data.prev_hash``."""
    return hashlib.sha256(canonical_json(event)).hexdigest()
