"""The citizen documents besides the parking slip: their plain-data inputs and the words each one prints.

=====================  ==============================================  =========================================
document               what it is                                      formats
=====================  ==============================================  =========================================
``PersonNotice``       현장 사전통지: the smoking/littering slip; the    ESC/POS 58/80 mm, PNG, PDF (80 mm and A4)
                       offender is present, so the slip *is* the
                       사전통지 (시행령 §3①)
``AdvanceNotice``      사전통지서 mailed to a vehicle's owner           A4 window envelope: PDF, PNG
``ImpositionNotice``   과태료 부과 고지서 (법 §17, 시행령 §4)             A4 window envelope: PDF, PNG
``DemandNotice``       독촉장 (지방행정제재법 §8, 시행령 §6)              A4 window envelope: PDF, PNG
``Receipt``            영수증: who paid what, when, how, the            A4 PDF/PNG; ESC/POS 80 mm, PNG, PDF 80 mm
                       allocation per head and the balance left
=====================  ==============================================  =========================================

Like ``printing.slip``, this module decides *what* a document says; ``printing.a4`` (A4 pages) and
``printing.field`` (belt printer, via the slip machinery) decide *where*. Statutory numbers (rates, days,
percentages, measures) are never written here: the caller computes them from its rule tables and passes them as
data, so a rule change needs no change in ``printing``.

Personal data on print: a document addressed to its party shows the party's full name (the post needs it and
시행령 §3① ① requires it); a resident registration number is **always** masked to birth date and sex digit
(``900101-1******``), whatever the caller passes; a ``Receipt`` masks the payer's name (``홍*동``), since anyone
may pay for the debtor (지방행정제재법 §7의8) and receipts are handed over at counters.

Every document and part validates itself on construction and raises ``InvalidDocumentError`` (an
``InvalidSlipError``, so a ``ValueError``) naming the first bad field (a part names its own field, e.g.
``payment_no`` of ``PaymentInfo``); a missing part (``addressee=None``) is refused as ``is missing``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from printing.errors import InvalidSlipError
from printing.slip import (
    PAYMENT_NO_LENGTH,
    QR_CAPTION,
    VEHICLE_TYPE_LABELS,
    Field,
    SlipContent,
    format_date_ko,
    format_datetime_seoul,
    format_won,
    group_payment_no,
    is_payment_no,
    reduction_percent,
)
from protocol.amounts import seoul_date
from protocol.masking import mask_name

# the 전자납부번호 (LAW.md §3) as printed: 19 digits in the groups of the published sample (5-1-2-2-9)


class InvalidDocumentError(InvalidSlipError):
    """A document field holds a value no document may carry; ``field`` names it."""


# --- shared parts --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Authority:
    """The issuing authority (부과권자): its name, the title signed under the document, where it is.

    ``head`` is the signing title (``서울특별시 종로구청장``); without it ``name`` is used.
    """

    name: str
    address: str
    head: str | None = None
    department: str | None = None
    phone: str | None = None
    postal_code: str | None = None

    def __post_init__(self) -> None:
        _text(self, "name", "address")
        _optional_text(self, "head", "department", "phone")
        _postal_code(self.postal_code, "postal_code")

    @property
    def signature(self) -> str:
        return self.head or self.name


@dataclass(frozen=True, kw_only=True, slots=True)
class Addressee:
    """The party a document is addressed to (성명 또는 명칭, 주소).

    ``rrn`` (주민등록번호) or ``business_no`` (사업자등록번호) are optional; the RRN is printed masked only
    (``mask_rrn``), so passing the full number is safe.
    """

    name: str
    address: str
    postal_code: str | None = None
    rrn: str | None = None
    business_no: str | None = None

    def __post_init__(self) -> None:
        _text(self, "name", "address")
        _postal_code(self.postal_code, "postal_code")
        if self.rrn is not None:
            mask_rrn(self.rrn)  # raises on a value that is no RRN
        _optional_text(self, "business_no")


@dataclass(frozen=True, kw_only=True, slots=True)
class PaymentInfo:
    """How to pay this document: the 19-digit 전자납부번호, the 가상계좌 (bank and account number, given as data)
    and the signed payment QR (a URL, printed byte for byte)."""

    payment_no: str
    bank_name: str
    account_no: str
    qr_text: str
    account_holder: str | None = None

    def __post_init__(self) -> None:
        # the number is built and checked by its issuer (``protocol.payment_number``); printing only shows 19 digits
        if not is_payment_no(self.payment_no):
            raise InvalidDocumentError("payment_no", f"must be {PAYMENT_NO_LENGTH} digits")
        _text(self, "bank_name", "account_no")
        if not all(char.isdigit() or char == "-" for char in self.account_no) or not self.account_no.isascii():
            raise InvalidDocumentError("account_no", "must be digits and hyphens")
        _qr_text(self.qr_text)
        _optional_text(self, "account_holder")

    @property
    def payment_no_text(self) -> str:
        return group_payment_no(self.payment_no)

    @property
    def account_text(self) -> str:
        text = f"{self.bank_name} {self.account_no}"
        return f"{text} (예금주 {self.account_holder})" if self.account_holder else text


@dataclass(frozen=True, kw_only=True, slots=True)
class Facts:
    """The violation (위반사실): what, when, where, under which law; a vehicle for vehicle fines."""

    notice_no: str
    violation_code: str
    violation_name: str
    observed_at: datetime
    place: str
    legal_basis: str
    plate: str | None = None
    vehicle_type: str | None = None

    def __post_init__(self) -> None:
        if not (len(self.notice_no) == 15 and self.notice_no.isascii() and self.notice_no.isdigit()):
            raise InvalidDocumentError("notice_no", "must be 15 digits")
        _text(self, "violation_code", "violation_name", "place", "legal_basis")
        if not isinstance(self.observed_at, datetime) or self.observed_at.utcoffset() is None:
            raise InvalidDocumentError("observed_at", "must be a timezone-aware datetime")
        _optional_text(self, "plate")
        if self.vehicle_type is not None and self.vehicle_type not in VEHICLE_TYPE_LABELS:
            raise InvalidDocumentError("vehicle_type", f"must be one of {sorted(VEHICLE_TYPE_LABELS)} or None")

    def rows(self, *, compact: bool = False) -> list[Field]:
        """The facts as labelled rows; ``compact`` puts the vehicle type beside the plate (A4 pages)."""
        rows = [Field("고지번호", self.notice_no)]
        vehicle = VEHICLE_TYPE_LABELS[self.vehicle_type] if self.vehicle_type else None
        if self.plate and vehicle and compact:
            rows.append(Field("차량번호", f"{self.plate} ({vehicle})"))
        else:
            if self.plate:
                rows.append(Field("차량번호", self.plate))
            if vehicle:
                rows.append(Field("차종", vehicle))
        rows += [
            Field("위반일시", format_datetime_seoul(self.observed_at)),
            Field("위반장소", self.place),
            Field("위반내용", f"{self.violation_code} {self.violation_name}"),
            Field("적용법령", self.legal_basis),
        ]
        return rows


@dataclass(frozen=True, kw_only=True, slots=True)
class Allocation:
    """One head a payment was applied to (충당), e.g. ``Allocation(head="가산금", amount=1_200)``."""

    head: str
    amount: int

    def __post_init__(self) -> None:
        _text(self, "head")
        _won(self, "amount", minimum=0)


# --- the documents -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class PersonNotice:
    """현장 사전통지 (smoking, littering …): the slip handed to the offender, which is the 사전통지 itself.

    Carries every item of 시행령 §3①: ① name and address (``offender``; its RRN masked), ② facts, amount and
    law, ③ the authority's name and address, ④ the opinion right and ``opinion_deadline``, ⑤ the self-payment
    reduction with ``reduced_amount``, ⑤의2 paying it ends the case, ⑥ the hardship reduction of up to
    ``hardship_reduction_percent``. Amounts are whole won; the deadline is an inclusive Asia/Seoul date.
    """

    authority: Authority
    offender: Addressee
    facts: Facts
    amount: int
    reduced_amount: int
    opinion_deadline: date
    hardship_reduction_percent: int
    payment: PaymentInfo
    issued_at: datetime
    officer_name: str | None = None
    reprint: int = 0

    def __post_init__(self) -> None:
        _require(self, "authority", Authority)
        _require(self, "offender", Addressee)
        _require(self, "facts", Facts)
        _require(self, "payment", PaymentInfo)
        _amounts(self)
        _day(self, "opinion_deadline")
        _aware(self, "issued_at")
        _percent(self, "hardship_reduction_percent")
        _optional_text(self, "officer_name")
        if not _is_int(self.reprint) or self.reprint < 0:
            raise InvalidDocumentError("reprint", "must be a count >= 0")


@dataclass(frozen=True, kw_only=True, slots=True)
class AdvanceNotice:
    """사전통지서 (법 §16, 시행령 §3①) mailed to the party, e.g. a vehicle's owner after a parking slip.

    ``reduced_until`` is the last day the ``reduced_amount`` may be paid (for parking, the later of the slip's
    and this notice's deadline; never before ``opinion_deadline``).
    """

    document_no: str
    issued_on: date
    authority: Authority
    addressee: Addressee
    facts: Facts
    amount: int
    reduced_amount: int
    opinion_deadline: date
    reduced_until: date
    hardship_reduction_percent: int
    payment: PaymentInfo

    def __post_init__(self) -> None:
        _text(self, "document_no")
        _day(self, "issued_on", "opinion_deadline", "reduced_until")
        _require(self, "authority", Authority)
        _require(self, "addressee", Addressee)
        _require(self, "facts", Facts)
        _require(self, "payment", PaymentInfo)
        _amounts(self)
        _percent(self, "hardship_reduction_percent")
        if self.opinion_deadline <= self.issued_on:
            raise InvalidDocumentError("opinion_deadline", "must be after issued_on")
        if self.reduced_until < self.opinion_deadline:
            raise InvalidDocumentError("reduced_until", "must not be before opinion_deadline")


@dataclass(frozen=True, kw_only=True, slots=True)
class ImpositionNotice:
    """과태료 부과 고지서 (법 §17, 시행령 §4): ① party ② facts, amount, law ③ authority ④ ``due_date``,
    ``payment_methods`` and ``collector`` (수납기관) ⑤ what non-payment costs and brings (``surcharge_percent``
    가산금 once, ``monthly_surcharge_percent`` 중가산금 per full month up to ``monthly_surcharge_max_months``,
    ``measures``) ⑥ the objection period (``objection_days`` from receipt) and how to object.

    Rates are percent as ``Decimal`` (``Decimal("1.2")``); ``amount_after_due`` (optional) is the amount owed the
    day after the due date, as the caller's rules compute it.
    """

    document_no: str
    issued_on: date
    authority: Authority
    addressee: Addressee
    facts: Facts
    amount: int
    due_date: date
    payment: PaymentInfo
    payment_methods: tuple[str, ...]
    collector: str
    surcharge_percent: Decimal
    monthly_surcharge_percent: Decimal
    monthly_surcharge_max_months: int
    measures: tuple[str, ...]
    objection_days: int
    amount_after_due: int | None = None

    def __post_init__(self) -> None:
        _text(self, "document_no", "collector")
        _day(self, "issued_on", "due_date")
        _require(self, "authority", Authority)
        _require(self, "addressee", Addressee)
        _require(self, "facts", Facts)
        _require(self, "payment", PaymentInfo)
        _won(self, "amount", minimum=1)
        if self.due_date <= self.issued_on:
            raise InvalidDocumentError("due_date", "must be after issued_on")
        _texts(self, "payment_methods", "measures")
        _rate(self, "surcharge_percent", "monthly_surcharge_percent")
        _count(self, "monthly_surcharge_max_months", "objection_days")
        if self.amount_after_due is not None:
            _won(self, "amount_after_due", minimum=self.amount)


@dataclass(frozen=True, kw_only=True, slots=True)
class DemandNotice:
    """독촉장 (지방행정제재법 §8, 시행령 §6; 질서법 §24 for 과태료): the year imposed, the 과목, the amount with its
    surcharges, the new ``due_date`` and the place of payment (``collector``).

    The caller checks the statutory windows (issued within N days of ``original_due_date``, ``due_date`` within M
    days of issue) from its rules; this document only refuses dates in the wrong order. ``measures`` are what
    follows non-payment by ``due_date`` (압류 …), ``enforcement_basis`` the law that says so.
    """

    document_no: str
    issued_on: date
    authority: Authority
    addressee: Addressee
    notice_no: str
    imposed_year: int
    revenue_item: str
    principal: int
    surcharge: int
    monthly_surcharge: int
    original_due_date: date
    due_date: date
    payment: PaymentInfo
    collector: str
    measures: tuple[str, ...]
    enforcement_basis: str
    enforcement_cost: int = 0
    violation: str | None = None

    def __post_init__(self) -> None:
        _text(self, "document_no", "revenue_item", "collector", "enforcement_basis")
        _day(self, "issued_on", "original_due_date", "due_date")
        _require(self, "authority", Authority)
        _require(self, "addressee", Addressee)
        _require(self, "payment", PaymentInfo)
        if not (len(self.notice_no) == 15 and self.notice_no.isascii() and self.notice_no.isdigit()):
            raise InvalidDocumentError("notice_no", "must be 15 digits")
        if not _is_int(self.imposed_year) or not 2000 <= self.imposed_year <= 2099:
            raise InvalidDocumentError("imposed_year", "must be a year 2000..2099")
        _won(self, "principal", minimum=1)
        _won(self, "surcharge", minimum=0)
        _won(self, "monthly_surcharge", minimum=0)
        _won(self, "enforcement_cost", minimum=0)
        if self.issued_on <= self.original_due_date:
            raise InvalidDocumentError("issued_on", "a demand notice follows the original due date")
        if self.due_date <= self.issued_on:
            raise InvalidDocumentError("due_date", "must be after issued_on")
        _texts(self, "measures")
        _optional_text(self, "violation")

    @property
    def total(self) -> int:
        return self.principal + self.surcharge + self.monthly_surcharge + self.enforcement_cost


@dataclass(frozen=True, kw_only=True, slots=True)
class Receipt:
    """영수증: ``payer_name`` paid ``amount_paid`` at ``paid_at`` by ``method`` against ``notice_no``; the payment
    was applied per head as ``allocations`` (they must add up to ``amount_paid``), leaving ``balance``."""

    receipt_no: str
    authority: Authority
    payer_name: str
    notice_no: str
    revenue_item: str
    paid_at: datetime
    method: str
    amount_paid: int
    allocations: tuple[Allocation, ...]
    balance: int
    payment: PaymentInfo

    def __post_init__(self) -> None:
        _text(self, "receipt_no", "payer_name", "revenue_item", "method")
        _require(self, "authority", Authority)
        _require(self, "payment", PaymentInfo)
        if not (len(self.notice_no) == 15 and self.notice_no.isascii() and self.notice_no.isdigit()):
            raise InvalidDocumentError("notice_no", "must be 15 digits")
        _aware(self, "paid_at")
        _won(self, "amount_paid", minimum=1)
        _won(self, "balance", minimum=0)
        if not isinstance(self.allocations, tuple) or not self.allocations:
            raise InvalidDocumentError("allocations", "must be a non-empty tuple of Allocation")
        for allocation in self.allocations:
            if not isinstance(allocation, Allocation):
                raise InvalidDocumentError("allocations", "must hold Allocation values")
        if sum(allocation.amount for allocation in self.allocations) != self.amount_paid:
            raise InvalidDocumentError("allocations", "must add up to amount_paid")


Document = PersonNotice | AdvanceNotice | ImpositionNotice | DemandNotice | Receipt
DOCUMENT_TYPES = (PersonNotice, AdvanceNotice, ImpositionNotice, DemandNotice, Receipt)


# --- masking -------------------------------------------------------------------------------------------------------


def mask_rrn(rrn: str) -> str:
    """주민등록번호 for print: birth date and the 7th (century/sex) digit, the rest as ``*``: ``900101-1******``.

    Accepts 13 digits with or without the hyphen, or an already masked value. The checksum is not checked (numbers
    issued since 2020-10-05 have none). Raises ``InvalidDocumentError`` for anything else.
    """
    if not isinstance(rrn, str):
        raise InvalidDocumentError("rrn", "must be a string")
    compact = rrn.strip().replace("-", "")
    head, tail = compact[:7], compact[7:]
    if len(compact) != 13 or not (head.isascii() and head.isdigit()):
        raise InvalidDocumentError("rrn", "must be 13 digits (YYMMDD-NNNNNNN) or masked as YYMMDD-N******")
    if not (tail.isascii() and tail.isdigit()) and set(tail) != {"*"}:
        raise InvalidDocumentError("rrn", "must be 13 digits (YYMMDD-NNNNNNN) or masked as YYMMDD-N******")
    return f"{head[:6]}-{head[6]}******"


# --- Korean text helpers -------------------------------------------------------------------------------------------


def format_percent(rate: Decimal | int) -> str:
    """A percentage without trailing zeros: ``Decimal("1.20")`` → ``"1.2%"``, ``3`` → ``"3%"``."""
    text = format(Decimal(rate).normalize(), "f")
    return f"{text}%"


# --- what each document says ---------------------------------------------------------------------------------------
# Two shapes: ``SlipContent`` (printing.slip) for the belt printer, ``A4Content`` for the A4 window envelope.


@dataclass(frozen=True, slots=True)
class TableSection:
    """A titled label | value table."""

    heading: str
    fields: tuple[Field, ...]


@dataclass(frozen=True, slots=True)
class NoteSection:
    """A titled list of sentences."""

    heading: str
    sentences: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EnvelopeAddress:
    """What shows through the envelope window: postal code, address lines, the addressee's name line."""

    postal_code: str | None
    address: str
    name_line: str


@dataclass(frozen=True, slots=True)
class A4Content:
    """The words of one A4 document in reading order, independent of where ``printing.a4`` puts them.

    ``sender``: the return-address lines; ``addressee``: the window block (``None`` for a document that is not
    mailed, e.g. a receipt); ``summary``: the payment box beside the window (amount, deadline, 전자납부번호,
    가상계좌), printed above the QR; ``sections``: the body under the title.
    """

    title: str
    document_no: str
    issued_on: str
    sender: tuple[str, ...]
    addressee: EnvelopeAddress | None
    summary: tuple[Field, ...]
    sections: tuple[TableSection | NoteSection, ...]
    qr_text: str
    qr_caption: str
    signature: str
    reprint_mark: str | None = None


TITLE_PERSON = "과태료 부과 사전통지서"
TITLE_ADVANCE = "과태료 부과 사전통지서"
TITLE_IMPOSITION = "과태료 부과 고지서"
TITLE_DEMAND = "독촉장"
TITLE_RECEIPT = "영수증"
RECEIPT_QR_CAPTION = "QR코드로 납부내역을 확인하세요"
NOT_MAILED_NOTE = "(발송용 아님)"


def slip_content_of(document: PersonNotice | Receipt) -> SlipContent:
    """The belt-printer content of a field document (``PersonNotice``) or a ``Receipt``, for
    ``escpos.render_escpos_content``, ``png.render_content_png`` and ``pdf.render_content_pdf``.

    Raises ``TypeError`` for a document that has no belt-printer form.
    """
    if isinstance(document, PersonNotice):
        return _person_slip(document)
    if isinstance(document, Receipt):
        return _receipt_slip(document)
    raise TypeError(f"{type(document).__name__} has no belt-printer form; use printing.a4")


def a4_content(document: Document) -> A4Content:
    """The A4 content of any document. Raises ``TypeError`` for anything else."""
    if isinstance(document, PersonNotice):
        return _person_a4(document)
    if isinstance(document, AdvanceNotice):
        return _advance_a4(document)
    if isinstance(document, ImpositionNotice):
        return _imposition_a4(document)
    if isinstance(document, DemandNotice):
        return _demand_a4(document)
    if isinstance(document, Receipt):
        return _receipt_a4(document)
    raise TypeError(f"not a document: {type(document).__name__}")


def _party_rows(party: Addressee) -> list[Field]:
    rows = [Field("성명", party.name)]
    if party.rrn:
        rows.append(Field("주민등록번호", mask_rrn(party.rrn)))
    if party.business_no:
        rows.append(Field("사업자등록번호", party.business_no))
    rows.append(Field("주소", party.address))
    return rows


def _payment_rows(payment: PaymentInfo) -> list[Field]:
    return [Field("전자납부번호", payment.payment_no_text), Field("가상계좌", payment.account_text)]


def _sender(authority: Authority) -> tuple[str, ...]:
    lines = [authority.name + (f" {authority.department}" if authority.department else "")]
    address = authority.address
    if authority.postal_code:
        address = f"({authority.postal_code}) {address}"
    lines.append(address)
    if authority.phone:
        lines.append(f"전화 {authority.phone}")
    return tuple(lines)


def _envelope(party: Addressee) -> EnvelopeAddress:
    return EnvelopeAddress(postal_code=party.postal_code, address=party.address, name_line=f"{party.name} 귀하")


def _advance_sentences(
    authority: Authority,
    amount: int,
    reduced_amount: int,
    opinion_deadline: date,
    reduced_until: date,
    hardship_percent: int,
) -> list[str]:
    """시행령 §3① ④ ⑤ ⑤의2 ⑥ in words."""
    deadline = format_date_ko(opinion_deadline)
    until = format_date_ko(reduced_until)
    reduced = format_won(reduced_amount)
    percent = reduction_percent(amount, reduced_amount)
    return [
        f"의견제출기한({deadline})까지 {authority.name}({authority.address})에 서면 또는 구두로 의견을 제출할 수 "
        "있으며, 기한까지 제출하지 않으면 의견이 없는 것으로 봅니다 (질서위반행위규제법 제16조).",
        f"{until}까지 자진납부하면 과태료의 {percent}%가 감경된 {reduced}을 납부할 수 있습니다"
        " (질서위반행위규제법 제18조).",
        "감경된 금액을 납부하면 과태료 부과 및 징수 절차가 종료되며, 이후 의견 제출이나 이의제기를 할 수 없습니다.",
        "국민기초생활보장 수급자, 한부모가족 보호대상자, 장애의 정도가 심한 장애인, 상이등급 1~3급 국가유공자, "
        f"미성년자는 의견제출기한까지 신청하면 과태료의 {hardship_percent}% 범위에서 감경받을 수 있습니다"
        " (질서위반행위규제법 시행령 제2조의2). 다만, 다른 과태료를 체납하고 있으면 감경되지 않습니다.",
        "의견제출기한이 지나면 과태료가 부과되며, 부과 고지서를 따로 보내드립니다.",
    ]


def _pay_sentence() -> str:
    return (
        "전자납부번호로 인터넷·모바일·은행에서 납부하거나, 가상계좌로 이체하거나, QR코드를 스캔하여 납부할 수 있습니다."
    )


def _person_slip(notice: PersonNotice) -> SlipContent:
    percent = reduction_percent(notice.amount, notice.reduced_amount)
    fields = [Field("고지번호", notice.facts.notice_no)]
    fields += _party_rows(notice.offender)
    fields += notice.facts.rows()[1:]
    fields += [
        Field("과태료 금액", format_won(notice.amount), emphasis=True),
        Field(
            "자진납부 감경금액",
            format_won(notice.reduced_amount),
            emphasis=True,
            note=f"(의견제출기한까지 납부 시 {percent}% 감경)",
        ),
        Field("의견제출기한", format_date_ko(notice.opinion_deadline)),
        *_payment_rows(notice.payment),
    ]
    sentences = _advance_sentences(
        notice.authority,
        notice.amount,
        notice.reduced_amount,
        notice.opinion_deadline,
        notice.opinion_deadline,
        notice.hardship_reduction_percent,
    )
    sentences.append(_pay_sentence())
    issuer = [Field("발행기관", notice.authority.name), Field("주소", notice.authority.address)]
    if notice.authority.phone:
        issuer.append(Field("전화", notice.authority.phone))
    if notice.officer_name:
        issuer.append(Field("단속원", notice.officer_name))
    issuer.append(Field("발행일시", format_datetime_seoul(notice.issued_at)))
    return SlipContent(
        title=TITLE_PERSON,
        reprint_mark=f"재발행 {notice.reprint}" if notice.reprint > 0 else None,
        fields=tuple(fields),
        notices_heading="안내",
        notices=tuple(sentences),
        issuer=tuple(issuer),
        qr_text=notice.payment.qr_text,
        qr_caption=QR_CAPTION,
    )


def _receipt_fields(receipt: Receipt) -> list[Field]:
    fields = [
        Field("영수번호", receipt.receipt_no),
        Field("납부자", mask_name(receipt.payer_name)),
        Field("고지번호", receipt.notice_no),
        Field("전자납부번호", receipt.payment.payment_no_text),
        Field("과목", receipt.revenue_item),
        Field("납부일시", format_datetime_seoul(receipt.paid_at)),
        Field("납부방법", receipt.method),
        Field("납부금액", format_won(receipt.amount_paid), emphasis=True),
    ]
    fields += [Field(f"충당: {allocation.head}", format_won(allocation.amount)) for allocation in receipt.allocations]
    fields.append(Field("납부 후 잔액", format_won(receipt.balance), emphasis=True))
    return fields


def _receipt_sentences(receipt: Receipt) -> list[str]:
    sentences = [f"위 금액을 정히 영수합니다. ({receipt.authority.name})"]
    if receipt.balance:
        sentences.append(f"남은 금액 {format_won(receipt.balance)}은 전자납부번호 또는 가상계좌로 납부할 수 있습니다.")
    else:
        sentences.append("이 고지의 납부할 금액이 모두 납부되었습니다.")
    sentences.append("QR코드로 이 납부내역이 맞는지 확인할 수 있습니다.")
    return sentences


def _receipt_slip(receipt: Receipt) -> SlipContent:
    fields = _receipt_fields(receipt)
    fields.append(Field("가상계좌", receipt.payment.account_text))
    issuer = [Field("수납기관", receipt.authority.name), Field("주소", receipt.authority.address)]
    if receipt.authority.phone:
        issuer.append(Field("전화", receipt.authority.phone))
    return SlipContent(
        title=TITLE_RECEIPT,
        reprint_mark=None,
        fields=tuple(fields),
        notices_heading="안내",
        notices=tuple(_receipt_sentences(receipt)),
        issuer=tuple(issuer),
        qr_text=receipt.payment.qr_text,
        qr_caption=RECEIPT_QR_CAPTION,
    )


def _person_amount_rows(amount: int, reduced_amount: int, reduced_until: date, opinion_deadline: date) -> list[Field]:
    percent = reduction_percent(amount, reduced_amount)
    return [
        Field("과태료 금액", format_won(amount), emphasis=True),
        Field(
            "자진납부 감경금액",
            format_won(reduced_amount),
            emphasis=True,
            note=f"({format_date_ko(reduced_until)}까지 납부 시 {percent}% 감경)",
        ),
        Field("의견제출기한", format_date_ko(opinion_deadline)),
    ]


def _summary(first: Field, deadline: Field, payment: PaymentInfo) -> tuple[Field, ...]:
    return (first, deadline, *_payment_rows(payment))


def _person_a4(notice: PersonNotice) -> A4Content:
    slip = _person_slip(notice)
    deadline = notice.opinion_deadline
    return A4Content(
        title=TITLE_PERSON,
        document_no=notice.facts.notice_no,
        issued_on=format_date_ko(seoul_date(notice.issued_at)),
        sender=_sender(notice.authority),
        addressee=_envelope(notice.offender),
        summary=_summary(
            Field("감경금액", format_won(notice.reduced_amount), emphasis=True),
            Field("의견제출기한", format_date_ko(deadline)),
            notice.payment,
        ),
        sections=(
            TableSection("당사자", tuple(_party_rows(notice.offender))),
            TableSection(
                "위반사실 및 과태료",
                (
                    *notice.facts.rows(compact=True),
                    *_person_amount_rows(notice.amount, notice.reduced_amount, deadline, deadline),
                ),
            ),
            NoteSection("안내", slip.notices),
        ),
        qr_text=notice.payment.qr_text,
        qr_caption=QR_CAPTION,
        signature=notice.authority.signature,
        reprint_mark=slip.reprint_mark,
    )


def _advance_a4(notice: AdvanceNotice) -> A4Content:
    sentences = _advance_sentences(
        notice.authority,
        notice.amount,
        notice.reduced_amount,
        notice.opinion_deadline,
        notice.reduced_until,
        notice.hardship_reduction_percent,
    )
    sentences.append(_pay_sentence())
    rows = _person_amount_rows(notice.amount, notice.reduced_amount, notice.reduced_until, notice.opinion_deadline)
    return A4Content(
        title=TITLE_ADVANCE,
        document_no=notice.document_no,
        issued_on=format_date_ko(notice.issued_on),
        sender=_sender(notice.authority),
        addressee=_envelope(notice.addressee),
        summary=_summary(
            Field("감경금액", format_won(notice.reduced_amount), emphasis=True),
            Field("감경 납부기한", format_date_ko(notice.reduced_until)),
            notice.payment,
        ),
        sections=(
            TableSection("당사자", tuple(_party_rows(notice.addressee))),
            TableSection("위반사실 및 과태료", (*notice.facts.rows(compact=True), *rows)),
            NoteSection("안내", tuple(sentences)),
        ),
        qr_text=notice.payment.qr_text,
        qr_caption=QR_CAPTION,
        signature=notice.authority.signature,
    )


def _imposition_a4(notice: ImpositionNotice) -> A4Content:
    due = format_date_ko(notice.due_date)
    authority = notice.authority
    amounts = [Field("부과금액", format_won(notice.amount), emphasis=True), Field("납부기한", due, emphasis=True)]
    if notice.amount_after_due is not None:
        amounts.append(Field("납기 후 금액", format_won(notice.amount_after_due), note="(가산금 포함)"))
    non_payment = (
        f"납부기한({due})까지 납부하지 않으면 체납된 과태료의 {format_percent(notice.surcharge_percent)}에 해당하는 "
        "가산금이 부과됩니다 (질서위반행위규제법 제24조제1항).",
        "납부기한이 지난 날부터 1개월이 지날 때마다 체납된 과태료의 "
        f"{format_percent(notice.monthly_surcharge_percent)}에 해당하는 중가산금이 "
        f"{notice.monthly_surcharge_max_months}개월까지 더해집니다 (같은 조 제2항).",
        f"계속 납부하지 않으면 {', '.join(notice.measures)} 등의 처분을 받을 수 있습니다"
        " (질서위반행위규제법 제24조제3항, 제52조부터 제55조까지).",
    )
    objection = (
        f"이 고지서를 받은 날부터 {notice.objection_days}일 이내에 {authority.name}({authority.address})에 서면으로 "
        "이의제기할 수 있습니다 (질서위반행위규제법 제20조).",
        "이의제기가 있으면 이 과태료 부과처분은 효력을 잃으며, 관할 법원의 과태료 재판으로 결정됩니다.",
    )
    return A4Content(
        title=TITLE_IMPOSITION,
        document_no=notice.document_no,
        issued_on=format_date_ko(notice.issued_on),
        sender=_sender(authority),
        addressee=_envelope(notice.addressee),
        summary=_summary(
            Field("납부할 금액", format_won(notice.amount), emphasis=True), Field("납부기한", due), notice.payment
        ),
        sections=(
            TableSection("당사자", tuple(_party_rows(notice.addressee))),
            TableSection(
                "위반사실 및 부과내용",
                (
                    *notice.facts.rows(compact=True),
                    *amounts,
                    Field("납부방법", ", ".join(notice.payment_methods)),
                    Field("수납기관", notice.collector),
                ),
            ),
            NoteSection("납부하지 않을 경우", non_payment),
            NoteSection("이의제기", objection),
        ),
        qr_text=notice.payment.qr_text,
        qr_caption=QR_CAPTION,
        signature=authority.signature,
    )


def _demand_a4(notice: DemandNotice) -> A4Content:
    due = format_date_ko(notice.due_date)
    facts = [Field("고지번호", notice.notice_no), Field("부과연도", f"{notice.imposed_year}년")]
    facts.append(Field("과목", notice.revenue_item))
    if notice.violation:
        facts.append(Field("위반내용", notice.violation))
    facts.append(Field("당초 납부기한", format_date_ko(notice.original_due_date)))
    amounts = [
        Field("부과금액", format_won(notice.principal)),
        Field("가산금", format_won(notice.surcharge)),
        Field("중가산금", format_won(notice.monthly_surcharge)),
    ]
    if notice.enforcement_cost:
        amounts.append(Field("체납처분비", format_won(notice.enforcement_cost)))
    amounts += [
        Field("합계", format_won(notice.total), emphasis=True),
        Field("독촉 납부기한", due, emphasis=True),
        Field("납부장소", notice.collector),
    ]
    sentences = (
        f"위 금액을 독촉 납부기한({due})까지 납부하여 주십시오. {_pay_sentence()}",
        f"독촉 납부기한까지 납부하지 않으면 {', '.join(notice.measures)} 등의 체납처분을 받게 됩니다"
        f" ({notice.enforcement_basis}).",
        "중가산금은 납부하실 때까지 매월 더해질 수 있으므로, 납부하시는 날의 금액은 위 금액과 다를 수 있습니다.",
        "이미 납부하셨다면 이 독촉장은 무시하셔도 됩니다.",
    )
    return A4Content(
        title=TITLE_DEMAND,
        document_no=notice.document_no,
        issued_on=format_date_ko(notice.issued_on),
        sender=_sender(notice.authority),
        addressee=_envelope(notice.addressee),
        summary=_summary(
            Field("납부할 금액", format_won(notice.total), emphasis=True),
            Field("독촉 납부기한", due),
            notice.payment,
        ),
        sections=(
            TableSection("당사자", tuple(_party_rows(notice.addressee))),
            TableSection("체납내역", tuple(facts)),
            TableSection("납부할 금액", tuple(amounts)),
            NoteSection("안내", sentences),
        ),
        qr_text=notice.payment.qr_text,
        qr_caption=QR_CAPTION,
        signature=notice.authority.signature,
    )


def _receipt_a4(receipt: Receipt) -> A4Content:
    return A4Content(
        title=TITLE_RECEIPT,
        document_no=receipt.receipt_no,
        issued_on=format_date_ko(seoul_date(receipt.paid_at)),  # dates of law are Seoul dates
        sender=_sender(receipt.authority),
        addressee=None,
        summary=_summary(
            Field("납부금액", format_won(receipt.amount_paid), emphasis=True),
            Field("납부 후 잔액", format_won(receipt.balance)),
            receipt.payment,
        ),
        sections=(
            TableSection("납부내역", tuple(_receipt_fields(receipt))),
            NoteSection("안내", tuple(_receipt_sentences(receipt))),
        ),
        qr_text=receipt.payment.qr_text,
        qr_caption=RECEIPT_QR_CAPTION,
        signature=receipt.authority.signature,
    )


# --- validation helpers --------------------------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(obj: object, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if not isinstance(value, str) or not value.strip():
            raise InvalidDocumentError(name, "must be non-empty text")


def _optional_text(obj: object, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise InvalidDocumentError(name, "must be non-empty text or None")


def _texts(obj: object, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if not isinstance(value, tuple) or not value:
            raise InvalidDocumentError(name, "must be a non-empty tuple of text")
        if not all(isinstance(item, str) and item.strip() for item in value):
            raise InvalidDocumentError(name, "must hold non-empty text only")


def _postal_code(value: str | None, name: str) -> None:
    if value is not None and not (len(value) == 5 and value.isascii() and value.isdigit()):
        raise InvalidDocumentError(name, "must be a 5-digit 우편번호 or None")


def _require(obj: object, name: str, kind: type) -> None:
    if not isinstance(getattr(obj, name), kind):
        missing = getattr(obj, name) is None
        raise InvalidDocumentError(name, "is missing" if missing else f"must be a {kind.__name__}")


def _won(obj: object, name: str, *, minimum: int) -> None:
    value = getattr(obj, name)
    if not _is_int(value):
        raise InvalidDocumentError(name, "must be a whole number of won")
    if value < minimum:
        raise InvalidDocumentError(name, f"must be at least {minimum} won, got {value}")


def _amounts(obj: PersonNotice | AdvanceNotice) -> None:
    _won(obj, "amount", minimum=1)
    if not _is_int(obj.reduced_amount) or not 0 < obj.reduced_amount <= obj.amount:
        raise InvalidDocumentError("reduced_amount", "must be a whole number of won in 1..amount")


def _day(obj: object, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if not isinstance(value, date) or isinstance(value, datetime):
            raise InvalidDocumentError(name, "must be a date")


def _aware(obj: object, name: str) -> None:
    value = getattr(obj, name)
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidDocumentError(name, "must be a timezone-aware datetime")


def _percent(obj: object, name: str) -> None:
    value = getattr(obj, name)
    if not _is_int(value) or not 0 < value < 100:
        raise InvalidDocumentError(name, "must be a whole percent in 1..99")


def _rate(obj: object, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if not isinstance(value, Decimal) or not value.is_finite() or not 0 < value < 100:
            raise InvalidDocumentError(name, "must be a Decimal percent in (0, 100)")


def _count(obj: object, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if not _is_int(value) or value <= 0:
            raise InvalidDocumentError(name, "must be a positive whole number")


def _qr_text(value: object) -> None:
    if not (isinstance(value, str) and value and all(0x21 <= ord(ch) <= 0x7E for ch in value)):
        raise InvalidDocumentError("qr_text", "must be a non-empty printable ASCII URL without spaces")
