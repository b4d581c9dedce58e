"""전자납부번호: the 19-digit payment number printed on every notice, built, checked, parsed and grouped for print.

**Provisional.** The official layout and check-digit rule belong to the KLID 세외수입정보시스템 interface
specification, which we do not have (LAW.md §3, §6 item 9). Until it is known we use the layout of the one
published sample (``48310-2-23-41-510664999``, vehicle 과태료) and a check digit of our own:

=========  =====  ======================================================================
segment    width  meaning
=========  =====  ======================================================================
agency     5      기관코드: the 5-digit 시군구 code (first 5 digits of the 법정동코드), e.g. 11110
kind       1      구분: 1 지방세, 2 세외수입 (the TAX_GB values of the interface messages)
year       2      연도: the last two digits of the year of imposition
item       2      과목: the revenue-item code, e.g. 41 주정차위반
serial     8      일련번호: the serial within (agency, kind, year, item)
check      1      검증번호: Luhn (mod 10) over the 18 digits before it
=========  =====  ======================================================================

The 일련번호 group of the sample is 9 digits; we read it as 8 serial digits plus the check digit. (The sample's
last digit is 9 where Luhn gives 4: the official rule is something else, or the sample carries no check digit.)
Everything about the layout lives in ``LAYOUT`` and ``check_digit``: when the official rule arrives, change those two
and nothing else (callers only use ``build``, ``parse``, ``check`` and ``format``). Luhn catches every single-digit
error and every transposition of adjacent digits except 09 ↔ 90.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.numbers import format_notice_no, luhn_check_digit, parse_notice_no

LENGTH = 19
CHECK_ALGORITHM = "luhn-mod10 (provisional, ours)"


@dataclass(frozen=True, slots=True)
class Segment:
    """One fixed-width group of digits of the payment number."""

    name: str
    width: int


LAYOUT: tuple[Segment, ...] = (
    Segment("agency", 5),
    Segment("kind", 1),
    Segment("year", 2),
    Segment("item", 2),
    Segment("serial", 8),
    Segment("check", 1),
)
# how ``format`` groups the digits for print: the groups of the published sample (5-1-2-2-9)
PRINT_GROUPS: tuple[int, ...] = (5, 1, 2, 2, 9)

assert sum(segment.width for segment in LAYOUT) == LENGTH == sum(PRINT_GROUPS)


class InvalidPaymentNumberError(ValueError):
    """A payment number of the wrong length, with a non-digit, or with a wrong check digit; ``field`` names the
    segment (or ``payment_no`` for the whole number)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class PaymentNumber:
    """A payment number split into its segments (digit strings, zero-padded to their widths)."""

    agency: str
    kind: str
    year: str
    item: str
    serial: str
    check: str

    @property
    def digits(self) -> str:
        """The 19 digits without separators."""
        return self.agency + self.kind + self.year + self.item + self.serial + self.check


def check_digit(payload: str) -> str:
    """The check digit of ``payload`` (the 18 digits before it): Luhn mod 10.

    Raises ``InvalidPaymentNumberError`` unless ``payload`` is exactly 18 ASCII digits.
    """
    if not (len(payload) == LENGTH - 1 and payload.isascii() and payload.isdigit()):
        raise InvalidPaymentNumberError("payment_no", f"the check digit needs {LENGTH - 1} digits, got {payload!r}")
    return luhn_check_digit(payload)


def build(*, agency: str | int, kind: str | int, year: str | int, item: str | int, serial: str | int) -> str:
    """The 19-digit payment number of these segments, check digit appended. ``year`` may be a full year (2026 →
    ``26``); integers are zero-padded to their segment's width.

    Raises ``InvalidPaymentNumberError`` naming the segment that is negative, not digits or too wide.
    """
    values = {"agency": agency, "kind": kind, "year": year, "item": item, "serial": serial}
    if isinstance(year, int) and year >= 100:
        values["year"] = year % 100
    digits = ""
    for segment in LAYOUT[:-1]:
        digits += _segment(segment, values[segment.name])
    return digits + check_digit(digits)


def _segment(segment: Segment, value: str | int) -> str:
    if isinstance(value, bool):
        raise InvalidPaymentNumberError(segment.name, "must be digits")
    if isinstance(value, int):
        if value < 0:
            raise InvalidPaymentNumberError(segment.name, "must not be negative")
        text = str(value).zfill(segment.width)
    else:
        text = value
    if not (text.isascii() and text.isdigit()):
        raise InvalidPaymentNumberError(segment.name, f"must be digits, got {value!r}")
    if len(text) != segment.width:
        raise InvalidPaymentNumberError(segment.name, f"must be {segment.width} digit(s), got {len(text)}")
    return text


def normalise(text: str) -> str:
    """``text`` without the separators people and printers put in it (hyphens, spaces).

    Raises ``InvalidPaymentNumberError`` unless what remains is exactly 19 ASCII digits (the check digit is not
    verified here: see ``parse``).
    """
    if not isinstance(text, str):
        raise InvalidPaymentNumberError("payment_no", "must be a string of digits")
    digits = "".join(text.replace("-", " ").split())
    if digits and not (digits.isascii() and digits.isdigit()):
        raise InvalidPaymentNumberError("payment_no", f"must be digits (hyphens and spaces allowed), got {text!r}")
    if len(digits) != LENGTH:
        raise InvalidPaymentNumberError("payment_no", f"must be {LENGTH} digits, got {len(digits)}")
    return digits


def parse(text: str) -> PaymentNumber:
    """Split a payment number (with or without separators) into its segments.

    Raises ``InvalidPaymentNumberError`` for a wrong length, a non-digit, or a wrong check digit.
    """
    digits = normalise(text)
    expected = check_digit(digits[:-1])
    if digits[-1] != expected:
        raise InvalidPaymentNumberError("payment_no", f"check digit is {digits[-1]}, expected {expected}")
    parts: dict[str, str] = {}
    start = 0
    for segment in LAYOUT:
        parts[segment.name] = digits[start : start + segment.width]
        start += segment.width
    return PaymentNumber(**parts)


def check(text: str) -> bool:
    """Whether ``text`` is a well-formed payment number with a correct check digit (never raises)."""
    try:
        parse(text)
    except InvalidPaymentNumberError:
        return False
    return True


def format(text: str) -> str:  # shadows the builtin on purpose: callers write payment_number.format(...)
    """The payment number grouped for print, as on the published sample: ``48310-2-23-41-510664999``.

    Raises ``InvalidPaymentNumberError`` like ``parse``: a number that fails its check is never printed.
    """
    digits = parse(text).digits
    groups = []
    start = 0
    for width in PRINT_GROUPS:
        groups.append(digits[start : start + width])
        start += width
    return "-".join(groups)


# --- the payment number of a notice ----------------------------------------------------------------------------------

NON_TAX = 2  # 구분: 2 세외수입


def for_notice(notice_no: str, revenue_item: str) -> str:
    """The payment number of a notice, derived from it alone (so a device offline prints the same number the
    server expects): the notice number's jurisdiction, year and serial, 세외수입, and the revenue item (two digits;
    ``00`` for an item code that is not). Raises ``ValueError`` for a malformed notice number."""
    parsed = parse_notice_no(notice_no)
    if parsed is None:
        raise ValueError(f"not a notice number: {notice_no!r}")
    item = int(revenue_item) if revenue_item.isascii() and revenue_item.isdigit() and len(revenue_item) <= 2 else 0
    return build(agency=parsed.jurisdiction, kind=NON_TAX, year=parsed.year2, item=item, serial=parsed.serial)


def notice_no_of(text: str) -> str | None:
    """The notice number a payment number was built from (``for_notice``); ``None`` when the text is no valid
    payment number (length, non-digit, check digit) or not a notice's (another 구분, a serial beyond 7 digits)."""
    try:
        number = parse(text)
    except InvalidPaymentNumberError:
        return None
    if int(number.kind) != NON_TAX or int(number.serial) > 9_999_999:
        return None
    try:
        return format_notice_no(number.agency, number.year, int(number.serial))
    except ValueError:
        return None
