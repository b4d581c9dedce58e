"""Notice numbers (PROTOCOL.md §2): sigungu (5) + block year (2) + serial (7) + Luhn check digit, and the one Luhn
implementation of the project (the payment number's check digit uses it too)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

NOTICE_NO_LENGTH = 15
_NOTICE_NO_RE = re.compile(r"^[0-9]{15}$")


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
