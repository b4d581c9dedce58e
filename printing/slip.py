"""The notice slip: its plain-data input (``Slip``), the Korean text helpers, and the content every format prints.

``slip_content`` is the one place that decides *what* a slip says (title, fields, the statutory sentences of
질서위반행위규제법 시행령 §3①, issuer, QR); ``escpos``, ``png`` and ``pdf`` only decide *where* it goes, so every
format carries the same words.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from printing.errors import InvalidSlipError

NoticeKind = Literal["parking", "person"]
VehicleType = Literal["car", "van"]

SEOUL_TZ = "Asia/Seoul"
QR_CAPTION = "QR코드를 스캔하여 납부하세요"
TITLES: dict[str, str] = {
    "parking": "주정차위반 단속 안내",  # a notice of fact; the formal 사전통지 is mailed to the owner later
    "person": "과태료 부과 사전통지서",  # the offender is present: this slip is the 사전통지
}
VEHICLE_TYPE_LABELS: dict[str, str] = {"car": "승용", "van": "승합"}
# the 19-digit 전자납부번호 (LAW.md §3), printed in the groups of the published sample: 48310-2-23-41-510664999.
# Built and checked by its issuer (``protocol.payment_number``); printing only shows 19 digits.
PAYMENT_NO_LENGTH = 19
PAYMENT_NO_GROUPS = (5, 1, 2, 2, 9)


def group_payment_no(payment_no: str) -> str:
    """The payment number in its printed groups, separated by hyphens."""
    groups, start = [], 0
    for width in PAYMENT_NO_GROUPS:
        groups.append(payment_no[start : start + width])
        start += width
    return "-".join(groups)


def is_payment_no(value: object) -> bool:
    return isinstance(value, str) and len(value) == PAYMENT_NO_LENGTH and value.isascii() and value.isdigit()


@dataclass(frozen=True, kw_only=True, slots=True)
class Slip:
    """Everything printed on one notice, as plain values (no ORM objects, no config).

    Amounts are whole won; ``opinion_deadline`` is the inclusive Asia/Seoul date; ``observed_at`` must be
    timezone-aware (printed in Asia/Seoul); ``qr_text`` is the signed payment URL of PROTOCOL.md §5, printed
    byte for byte; ``reprint`` counts reprints (0 = the original; "재발행 N" is printed when N > 0).
    A parking slip needs ``plate``; a person slip needs ``offender_name``.

    Raises ``InvalidSlipError`` (a ``ValueError``) naming the first field that no notice may carry.
    """

    notice_no: str
    kind: NoticeKind
    violation_code: str
    violation_name: str
    amount: int
    reduced_amount: int
    opinion_deadline: date
    observed_at: datetime
    place: str
    office_name: str
    qr_text: str
    plate: str | None = None
    vehicle_type: VehicleType | None = None
    offender_name: str | None = None
    offender_address: str | None = None
    office_address: str | None = None
    office_phone: str | None = None
    officer_name: str | None = None
    legal_basis: str | None = None
    payment_no: str | None = None  # 19 digits; a device derives it from the notice number and the revenue item
    reprint: int = 0

    def __post_init__(self) -> None:
        if not (len(self.notice_no) == 15 and self.notice_no.isascii() and self.notice_no.isdigit()):
            raise InvalidSlipError("notice_no", "must be 15 digits")
        if self.kind not in TITLES:
            raise InvalidSlipError("kind", f"must be one of {sorted(TITLES)}")
        for name in ("violation_code", "violation_name", "place", "office_name"):
            if not str(getattr(self, name)).strip():
                raise InvalidSlipError(name, "must not be empty")
        if not _is_int(self.amount) or self.amount <= 0:
            raise InvalidSlipError("amount", "must be a positive whole number of won")
        if not _is_int(self.reduced_amount) or not 0 < self.reduced_amount <= self.amount:
            raise InvalidSlipError("reduced_amount", "must be a whole number of won in 1..amount")
        if not isinstance(self.opinion_deadline, date) or isinstance(self.opinion_deadline, datetime):
            raise InvalidSlipError("opinion_deadline", "must be a date")
        if not isinstance(self.observed_at, datetime) or self.observed_at.utcoffset() is None:
            raise InvalidSlipError("observed_at", "must be a timezone-aware datetime")
        if self.vehicle_type is not None and self.vehicle_type not in VEHICLE_TYPE_LABELS:
            raise InvalidSlipError("vehicle_type", f"must be one of {sorted(VEHICLE_TYPE_LABELS)} or None")
        if self.kind == "parking" and not (self.plate and self.plate.strip()):
            raise InvalidSlipError("plate", "a parking notice needs the vehicle number")
        if self.kind == "person" and not (self.offender_name and self.offender_name.strip()):
            raise InvalidSlipError("offender_name", "a person notice (사전통지) needs the offender's name")
        if not (self.qr_text and all(0x21 <= ord(ch) <= 0x7E for ch in self.qr_text)):
            raise InvalidSlipError("qr_text", "must be a non-empty printable ASCII URL without spaces")
        if not _is_int(self.reprint) or self.reprint < 0:
            raise InvalidSlipError("reprint", "must be a count >= 0")
        if self.payment_no is not None and not is_payment_no(self.payment_no):
            raise InvalidSlipError("payment_no", f"must be {PAYMENT_NO_LENGTH} digits")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- Korean text helpers -------------------------------------------------------------------------------------------


def format_won(amount: int) -> str:
    """Whole won with thousands separators: ``40000`` → ``"40,000원"``."""
    return f"{amount:,}원"


def format_date_ko(day: date) -> str:
    """A date the Korean way, zero-padded: ``date(2026, 12, 9)`` → ``"2026년 12월 09일"``."""
    return f"{day.year}년 {day.month:02d}월 {day.day:02d}일"


def format_datetime_seoul(moment: datetime) -> str:
    """An aware datetime as Asia/Seoul wall time to the minute: ``"2026-11-25 14:03"``.

    Raises ``ValueError`` for a naive datetime (its zone would be a guess).
    """
    if moment.utcoffset() is None:
        raise ValueError("datetime must be timezone-aware")
    return moment.astimezone(ZoneInfo(SEOUL_TZ)).strftime("%Y-%m-%d %H:%M")


def reduction_percent(amount: int, reduced_amount: int) -> int:
    """The 자진납부 감경 rate the two amounts imply, in whole percent (40,000 → 32,000 gives 20)."""
    return round((amount - reduced_amount) * 100 / amount)


# --- what a slip says ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Field:
    """One labelled line of a slip; ``emphasis`` marks amounts; ``note`` is a smaller line under the value."""

    label: str
    value: str
    emphasis: bool = False
    note: str | None = None


@dataclass(frozen=True, slots=True)
class SlipContent:
    """The words of a slip in reading order, independent of the output format."""

    title: str
    reprint_mark: str | None
    fields: tuple[Field, ...]
    notices_heading: str
    notices: tuple[str, ...]
    issuer: tuple[Field, ...]
    qr_text: str
    qr_caption: str


def slip_content(slip: Slip) -> SlipContent:
    """The content of ``slip``: the same title, fields and sentences for ESC/POS, PNG and PDF.

    The sentences cover 시행령 §3① items ④ (opinion right and deadline), ⑤ (self-payment reduction and the reduced
    amount), ⑤의2 (paying the reduced amount ends the case) and ⑥ (the §2의2 hardship reduction); a parking slip
    also says that the formal 사전통지 goes to the vehicle's owner.
    """
    deadline = format_date_ko(slip.opinion_deadline)
    reduced = format_won(slip.reduced_amount)
    percent = reduction_percent(slip.amount, slip.reduced_amount)

    fields: list[Field] = [Field("고지번호", slip.notice_no)]
    if slip.kind == "person":
        fields.append(Field("성명", slip.offender_name or ""))
        if slip.offender_address:
            fields.append(Field("주소", slip.offender_address))
    if slip.plate:
        fields.append(Field("차량번호", slip.plate))
    if slip.vehicle_type:
        fields.append(Field("차종", VEHICLE_TYPE_LABELS[slip.vehicle_type]))
    fields += [
        Field("위반일시", format_datetime_seoul(slip.observed_at)),
        Field("위반장소", slip.place),
        Field("위반내용", f"{slip.violation_code} {slip.violation_name}"),
    ]
    if slip.legal_basis:
        fields.append(Field("적용법령", slip.legal_basis))
    fields += [
        Field("과태료 금액", format_won(slip.amount), emphasis=True),
        Field(
            "자진납부 감경금액",
            reduced,
            emphasis=True,
            note=f"(의견제출기한까지 납부 시 {percent}% 감경)",
        ),
        Field("의견제출기한", deadline),
    ]
    if slip.payment_no:
        fields.append(Field("전자납부번호", group_payment_no(slip.payment_no)))

    notices: list[str] = []
    if slip.kind == "parking":
        notices.append(
            "이 안내문은 위반사실을 알리는 것이며, 과태료 부과 사전통지서는 차량 소유자에게 따로 보내드립니다."
        )
    notices += [
        f"의견제출기한({deadline})까지 자진납부하면 과태료의 {percent}%가 감경된 {reduced}을 납부할 수 있습니다"
        " (질서위반행위규제법 제18조).",
        "감경된 금액을 납부하면 과태료 부과 및 징수 절차가 종료되며, 이후 의견 제출이나 이의제기를 할 수 없습니다.",
        "국민기초생활보장 수급자, 한부모가족 보호대상자, 장애의 정도가 심한 장애인, 상이등급 1~3급 국가유공자, "
        "미성년자는 의견제출기한까지 신청하면 과태료의 50% 범위에서 감경받을 수 있습니다"
        " (질서위반행위규제법 시행령 제2조의2). 다만, 다른 과태료를 체납하고 있으면 감경되지 않습니다.",
        f"의견제출기한({deadline})까지 서면 또는 구두로 의견을 제출할 수 있으며, 기한까지 제출하지 않으면 의견이 "
        "없는 것으로 봅니다 (질서위반행위규제법 제16조).",
    ]

    issuer: list[Field] = [Field("발행기관", slip.office_name)]
    if slip.office_address:
        issuer.append(Field("주소", slip.office_address))
    if slip.office_phone:
        issuer.append(Field("전화", slip.office_phone))
    if slip.officer_name:
        issuer.append(Field("단속원", slip.officer_name))

    return SlipContent(
        title=TITLES[slip.kind],
        reprint_mark=f"재발행 {slip.reprint}" if slip.reprint > 0 else None,
        fields=tuple(fields),
        notices_heading="안내",
        notices=tuple(notices),
        issuer=tuple(issuer),
        qr_text=slip.qr_text,
        qr_caption=QR_CAPTION,
    )
