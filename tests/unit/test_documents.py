"""printing.documents, printing.a4, printing.field: the citizen documents besides the parking slip.

Every document in every format carries its legal content, the 전자납부번호, the 가상계좌 and the signed QR: PDF
text is extracted and pages rasterised with PDFium (pypdfium2), QR codes decoded with zxing-cpp, ESC/POS read back
with ``escpos_reader``. The window-envelope address is located by the PDF's own character boxes.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest import mock

import pypdfium2 as pdfium
import pytest
import zxingcpp
from PIL import Image
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm

from printing import a4
from printing.a4 import WINDOW, render_document_png, render_documents_pdf, write_documents_pdf
from printing.documents import (
    Addressee,
    AdvanceNotice,
    Allocation,
    Authority,
    DemandNotice,
    Document,
    Facts,
    ImpositionNotice,
    InvalidDocumentError,
    PaymentInfo,
    PersonNotice,
    Receipt,
    a4_content,
    mask_rrn,
    slip_content_of,
)
from printing.errors import InvalidSlipError
from printing.escpos import PAPER
from printing.escpos_reader import read_escpos
from printing.field import render_document_escpos, render_document_slip_pdf, render_document_slip_png
from protocol import payment_number
from protocol.masking import mask_name
from tests.support.text import assert_shows, normalised

QR_TEXT = "http://127.0.0.1:5000/p/111102600000012?a=40000&r=32000&d=20261209&s=ARSEEJOQ3QFKWGCT"
PAYMENT_NO = payment_number.build(agency=11110, kind=2, year=2026, item=41, serial=12)
PAYMENT_NO_PRINTED = payment_number.format(PAYMENT_NO)
RRN = "900101-1876543"
RRN_MASKED = "900101-1******"

AUTHORITY = Authority(
    name="서울특별시 종로구청",
    head="서울특별시 종로구청장",
    department="주차관리과",
    address="서울특별시 종로구 삼봉로 43",
    postal_code="03153",
    phone="02-2148-1114",
)
PAYMENT = PaymentInfo(
    payment_no=PAYMENT_NO,
    bank_name="우리은행",
    account_no="1005-123-456789",
    account_holder="서울특별시 종로구",
    qr_text=QR_TEXT,
)
OWNER = Addressee(
    name="홍길동",
    address="서울특별시 종로구 종로 1, 101동 1001호 (종로동, 종로아파트)",
    postal_code="03154",
    rrn=RRN,
)
PARKING_FACTS = Facts(
    notice_no="111102600000012",
    violation_code="P01",
    violation_name="일반도로 주정차위반",
    observed_at=datetime(2026, 11, 25, 5, 3, tzinfo=UTC),  # 14:03 in Seoul
    place="서울특별시 종로구 세종대로 175 세종문화회관 앞",
    legal_basis="도로교통법 제32조, 제160조제3항",
    plate="12가3456",
    vehicle_type="car",
)
PERSON = PersonNotice(
    authority=AUTHORITY,
    offender=OWNER,
    facts=Facts(
        notice_no="111102600000013",
        violation_code="S01",
        violation_name="금연구역 흡연",
        observed_at=datetime(2026, 11, 25, 5, 3, tzinfo=UTC),
        place="서울특별시 종로구 세종대로 175",
        legal_basis="국민건강증진법 제34조",
    ),
    amount=100_000,
    reduced_amount=80_000,
    opinion_deadline=date(2026, 12, 9),
    hardship_reduction_percent=50,
    payment=PAYMENT,
    issued_at=datetime(2026, 11, 25, 5, 4, tzinfo=UTC),
    officer_name="김단속",
)
ADVANCE = AdvanceNotice(
    document_no="주차관리과-2026-000123",
    issued_on=date(2026, 11, 30),
    authority=AUTHORITY,
    addressee=OWNER,
    facts=PARKING_FACTS,
    amount=40_000,
    reduced_amount=32_000,
    opinion_deadline=date(2026, 12, 14),
    reduced_until=date(2026, 12, 16),
    hardship_reduction_percent=50,
    payment=PAYMENT,
)
IMPOSITION = ImpositionNotice(
    document_no="주차관리과-2026-000456",
    issued_on=date(2026, 12, 20),
    authority=AUTHORITY,
    addressee=OWNER,
    facts=PARKING_FACTS,
    amount=40_000,
    due_date=date(2027, 2, 18),
    payment=PAYMENT,
    payment_methods=("전자납부번호(인터넷·모바일·은행)", "가상계좌", "QR코드", "신용·체크카드"),
    collector="시금고 우리은행 (전국 지점)",
    surcharge_percent=Decimal("3"),
    monthly_surcharge_percent=Decimal("1.2"),
    monthly_surcharge_max_months=60,
    measures=("재산 압류 등 체납처분", "관허사업 제한", "신용정보 제공", "감치", "자동차 등록번호판 영치"),
    objection_days=60,
    amount_after_due=41_200,
)
DEMAND = DemandNotice(
    document_no="세외수입과-2027-000789",
    issued_on=date(2027, 3, 10),
    authority=AUTHORITY,
    addressee=OWNER,
    notice_no="111102600000012",
    imposed_year=2026,
    revenue_item="과태료 (주정차위반)",
    violation="P01 일반도로 주정차위반",
    principal=40_000,
    surcharge=1_200,
    monthly_surcharge=480,
    original_due_date=date(2027, 2, 18),
    due_date=date(2027, 3, 30),
    payment=PAYMENT,
    collector="시금고 우리은행 (전국 지점)",
    measures=("재산 압류",),
    enforcement_basis="질서위반행위규제법 제24조제3항",
)
RECEIPT = Receipt(
    receipt_no="R-2027-0000123",
    authority=AUTHORITY,
    payer_name="홍길동",
    notice_no="111102600000012",
    revenue_item="과태료 (주정차위반)",
    paid_at=datetime(2027, 3, 12, 1, 30, tzinfo=UTC),  # 10:30 in Seoul
    method="가상계좌 입금 (우리은행)",
    amount_paid=30_000,
    allocations=(
        Allocation(head="가산금", amount=1_200),
        Allocation(head="중가산금", amount=480),
        Allocation(head="과태료", amount=28_320),
    ),
    balance=11_680,
    payment=PAYMENT,
)
ALL: tuple[Document, ...] = (PERSON, ADVANCE, IMPOSITION, DEMAND, RECEIPT)
MAILED: tuple[Document, ...] = (PERSON, ADVANCE, IMPOSITION, DEMAND)

EVERY_DOCUMENT_SHOWS = (PAYMENT_NO_PRINTED, "우리은행 1005-123-456789", "서울특별시 종로구청")
ADVANCE_NOTICE_ITEMS = (  # 시행령 §3① ① – ⑥
    "홍길동",
    RRN_MASKED,
    "서울특별시 종로구 종로 1, 101동 1001호",
    "서울특별시 종로구 삼봉로 43",
    "의견을 제출할 수 있으며",
    "의견이 없는 것으로 봅니다",
    "이의제기를 할 수 없습니다",
    "50% 범위에서 감경",
    "시행령 제2조의2",
)
FACTS: dict[str, tuple[str, ...]] = {
    "PersonNotice": (
        "과태료 부과 사전통지서",
        "111102600000013",
        "S01 금연구역 흡연",
        "국민건강증진법 제34조",
        "2026-11-25 14:03",
        "100,000원",
        "80,000원",
        "20% 감경",
        "2026년 12월 09일",
        *ADVANCE_NOTICE_ITEMS,
    ),
    "AdvanceNotice": (
        "과태료 부과 사전통지서",
        "주차관리과-2026-000123",
        "2026년 11월 30일",
        "12가3456",
        "P01 일반도로 주정차위반",
        "도로교통법 제32조, 제160조제3항",
        "40,000원",
        "32,000원",
        "2026년 12월 14일",  # opinion deadline
        "2026년 12월 16일까지 납부 시 20% 감경",  # the reduced price holds until the later deadline
        *ADVANCE_NOTICE_ITEMS,
    ),
    "ImpositionNotice": (  # 시행령 §4
        "과태료 부과 고지서",
        "홍길동",
        RRN_MASKED,
        "12가3456",
        "P01 일반도로 주정차위반",
        "40,000원",
        "2027년 02월 18일",
        "41,200원",
        "신용·체크카드",
        "시금고 우리은행 (전국 지점)",
        "3%에 해당하는 가산금",
        "1.2%에 해당하는 중가산금이 60개월까지",
        "재산 압류 등 체납처분",
        "자동차 등록번호판 영치",
        "60일 이내에",
        "이의제기할 수 있습니다",
        "효력을 잃으며",
    ),
    "DemandNotice": (  # 지방행정제재법 시행령 §6
        "독촉장",
        "2026년",
        "과태료 (주정차위반)",
        "40,000원",
        "1,200원",
        "480원",
        "41,680원",
        "2027년 02월 18일",
        "2027년 03월 30일",
        "시금고 우리은행 (전국 지점)",
        "재산 압류 등의 체납처분",
        "질서위반행위규제법 제24조제3항",
    ),
    "Receipt": (
        "영수증",
        "R-2027-0000123",
        "홍*동",
        "111102600000012",
        "2027-03-12 10:30",
        "가상계좌 입금 (우리은행)",
        "30,000원",
        "충당: 가산금 1,200원",
        "충당: 중가산금 480원",
        "충당: 과태료 28,320원",
        "11,680원",
    ),
}


def facts_of(document: Document) -> tuple[str, ...]:
    return FACTS[type(document).__name__] + EVERY_DOCUMENT_SHOWS


def decoded_qr(image: Image.Image) -> list[str]:
    return [barcode.text for barcode in zxingcpp.read_barcodes(image.convert("L"))]


def pdf_text_and_images(data: bytes, scale: float = 3) -> list[tuple[str, Image.Image]]:
    document = pdfium.PdfDocument(data)
    return [
        (document[i].get_textpage().get_text_range(), document[i].render(scale=scale).to_pil())
        for i in range(len(document))
    ]


def assert_fonts_embedded(data: bytes) -> None:
    """Every font the PDF names is a TrueType subset whose outlines are in the file (no base-14 fallback)."""
    base_fonts = re.findall(rb"/BaseFont /([^\s/]+)", data)
    assert base_fonts, "no fonts at all"
    assert all(re.fullmatch(rb"[A-Z]{6}\+\w+", name) for name in base_fonts), base_fonts  # subset-tagged
    assert data.count(b"/Type /FontDescriptor") == data.count(b"/FontFile2") == len(base_fonts)


# --- A4: every document as PDF and PNG -----------------------------------------------------------------------------


@pytest.mark.parametrize("document", ALL, ids=lambda d: type(d).__name__)
def test_a4_pdf_page_has_every_fact_the_payment_data_and_a_qr_that_decodes_to_the_signed_url(
    document: Document,
) -> None:
    data = render_documents_pdf([document])

    [(text, image)] = pdf_text_and_images(data)
    assert_shows(normalised([text]), facts_of(document))
    assert decoded_qr(image) == [QR_TEXT]
    assert_fonts_embedded(data)
    assert b"/Subtype /Image" not in data  # the QR is vector


@pytest.mark.parametrize("document", ALL, ids=lambda d: type(d).__name__)
def test_a4_png_preview_is_the_page_and_its_qr_decodes(document: Document) -> None:
    image = Image.open(io.BytesIO(render_document_png(document, dpi=150)))

    assert image.format == "PNG"
    assert abs(image.width - A4[0] / 72 * 150) <= 1 and abs(image.height - A4[1] / 72 * 150) <= 1
    assert decoded_qr(image) == [QR_TEXT]


@pytest.mark.parametrize("document", MAILED, ids=lambda d: type(d).__name__)
def test_the_address_block_sits_inside_the_envelope_window_and_nothing_else_does(document: Document) -> None:
    page = pdfium.PdfDocument(render_documents_pdf([document]))[0]
    textpage = page.get_textpage()
    height = A4[1]
    # the window in PDF coordinates (origin bottom-left)
    left, right = WINDOW.x, WINDOW.right
    bottom, top = height - WINDOW.bottom, height - WINDOW.top

    for needle in ("(03154)", "서울특별시 종로구 종로 1,", "홍길동 귀하"):
        found = textpage.search(needle).get_next()
        assert found is not None, needle
        start, count = found
        for index in range(start, start + count):
            if textpage.get_text_range(index, 1).isspace():
                continue
            x0, y0, x1, y1 = textpage.get_charbox(index)
            assert left <= x0 and x1 <= right and bottom <= y0 and y1 <= top, (needle, index)

    inside = normalised([textpage.get_text_bounded(left, bottom, right, top)])
    assert inside == "(03154) 서울특별시 종로구 종로 1, 101동 1001호 (종로동, 종로아파트) 홍길동 귀하"


def test_the_window_is_the_documented_one_20mm_from_the_left_45_to_90mm_from_the_top() -> None:
    assert (round(WINDOW.x / mm), round(WINDOW.top / mm), round(WINDOW.bottom / mm)) == (20, 45, 90)


def test_the_sender_stands_above_the_window() -> None:
    textpage = pdfium.PdfDocument(render_documents_pdf([IMPOSITION]))[0].get_textpage()
    start, _ = textpage.search("발신 서울특별시 종로구청").get_next()
    assert textpage.get_charbox(start)[1] > A4[1] - WINDOW.top  # bottom of the glyph above the window's top


def test_a_receipt_is_not_mailed_so_it_has_no_window_address() -> None:
    content = a4_content(RECEIPT)
    assert content.addressee is None
    text = normalised([pdf_text_and_images(render_documents_pdf([RECEIPT]))[0][0]])
    assert "귀하" not in text and "발신" not in text


# --- personal data on print ----------------------------------------------------------------------------------------


def test_a_full_rrn_is_never_printed_in_any_format() -> None:
    outputs = [normalised([text]) for text, _ in pdf_text_and_images(render_documents_pdf(ALL), scale=1)]
    outputs += [normalised(read_escpos(render_document_escpos(PERSON, width)).lines) for width in PAPER]
    outputs += [normalised([text]) for text, _ in pdf_text_and_images(render_document_slip_pdf([PERSON]), scale=1)]
    for output in outputs:
        assert "1876543" not in output.replace("-", "")
    assert all(RRN_MASKED in output for output in outputs[:4])  # the four documents addressed to the party


def test_the_receipt_masks_the_payers_name() -> None:
    text = normalised([pdf_text_and_images(render_documents_pdf([RECEIPT]), scale=1)[0][0]])
    escpos = normalised(read_escpos(render_document_escpos(RECEIPT)).lines)
    for output in (text, escpos):
        assert "홍*동" in output and "홍길동" not in output


def test_masking_helpers() -> None:
    assert mask_rrn("9001011876543") == mask_rrn(RRN) == mask_rrn(RRN_MASKED) == RRN_MASKED
    assert (mask_name("홍길동"), mask_name("남궁민수"), mask_name("홍길"), mask_name("김")) == (
        "홍*동",
        "남**수",
        "홍*",
        "김",
    )
    for bad in ("900101-123456", "90010A-1234567", "900101-12345**"):
        with pytest.raises(InvalidDocumentError):
            mask_rrn(bad)


# --- the belt printer: PersonNotice and Receipt --------------------------------------------------------------------


@pytest.mark.parametrize("width_mm", [80, 58])
@pytest.mark.parametrize("document", [PERSON, RECEIPT], ids=lambda d: type(d).__name__)
def test_escpos_reads_back_with_every_fact_and_the_signed_qr(document: Document, width_mm: int) -> None:
    assert isinstance(document, PersonNotice | Receipt)
    data = render_document_escpos(document, width_mm)
    printed = read_escpos(data)

    assert_shows(normalised(printed.lines), facts_of(document))
    assert printed.qr_payloads == [QR_TEXT]
    assert printed.cut
    assert max(printed.line_widths) <= PAPER[width_mm].columns
    assert render_document_escpos(document, width_mm) == data  # deterministic


@pytest.mark.parametrize("width_px", [576, 384])
@pytest.mark.parametrize("document", [PERSON, RECEIPT], ids=lambda d: type(d).__name__)
def test_slip_png_preview_qr_decodes(document: Document, width_px: int) -> None:
    assert isinstance(document, PersonNotice | Receipt)
    image = Image.open(io.BytesIO(render_document_slip_png(document, width_px)))
    assert image.width == width_px
    assert decoded_qr(image) == [QR_TEXT]


def test_slip_pdf_has_an_80mm_page_per_document_with_text_qr_and_embedded_fonts() -> None:
    done: list[int] = []
    data = render_document_slip_pdf([PERSON, RECEIPT], progress=done.append)

    pages = pdf_text_and_images(data)
    assert done == [1, 2] and len(pages) == 2
    for document, (text, image) in zip([PERSON, RECEIPT], pages):
        assert_shows(normalised([text]), facts_of(document))
        assert decoded_qr(image) == [QR_TEXT]
    assert round(pdfium.PdfDocument(data)[0].get_size()[0] / mm) == 80
    assert_fonts_embedded(data)


def test_only_the_field_documents_have_a_belt_printer_form() -> None:
    with pytest.raises(TypeError):
        slip_content_of(IMPOSITION)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        render_document_escpos(DEMAND, 80)  # type: ignore[arg-type]


def test_a_reprinted_person_notice_says_so() -> None:
    assert "재발행 1" in read_escpos(render_document_escpos(replace(PERSON, reprint=1))).lines


# --- statutory numbers come from data ------------------------------------------------------------------------------


def test_rates_days_and_percentages_are_printed_from_the_documents_data() -> None:
    older = replace(
        IMPOSITION,
        surcharge_percent=Decimal("5"),
        monthly_surcharge_percent=Decimal("1.20"),
        monthly_surcharge_max_months=48,
        objection_days=30,
    )
    text = normalised([pdf_text_and_images(render_documents_pdf([older]), scale=1)[0][0]])
    assert_shows(text, ("5%에 해당하는 가산금", "1.2%에 해당하는 중가산금이 48개월까지", "30일 이내에"))
    person = normalised(read_escpos(render_document_escpos(replace(PERSON, hardship_reduction_percent=30))).lines)
    assert "30% 범위에서 감경" in person


# --- print runs ----------------------------------------------------------------------------------------------------


def test_a_merged_run_of_300_documents_gives_300_pages_in_order_and_reports_progress() -> None:
    def documents() -> Any:  # a generator: the run never holds its inputs as a list
        for n in range(300):
            yield replace(IMPOSITION, document_no=f"주차관리과-2026-{n:06d}") if n % 3 else ALL[n // 3 % len(ALL)]

    done: list[int] = []
    data = render_documents_pdf(documents(), progress=done.append)

    document = pdfium.PdfDocument(data)
    assert len(document) == 300
    assert done == list(range(1, 301))
    assert "주차관리과-2026-000299" in document[299].get_textpage().get_text_range()
    for index in (0, 1, 150, 299):
        assert decoded_qr(document[index].render(scale=2).to_pil()) == [QR_TEXT]
    assert render_documents_pdf(documents()) == data  # deterministic: same documents, same bytes
    assert_fonts_embedded(data)


def test_pages_deflated_as_they_finish_read_the_same_as_reportlabs_own_encoding() -> None:
    with mock.patch.object(a4, "_compress_last_page", lambda canvas: None):
        plain = render_documents_pdf(ALL)
    ours = render_documents_pdf(ALL)

    assert len(ours) < len(plain)
    assert [text for text, _ in pdf_text_and_images(ours, scale=1)] == [
        text for text, _ in pdf_text_and_images(plain, scale=1)
    ]


def test_write_documents_pdf_streams_to_a_file_and_counts_pages(tmp_path: Path) -> None:
    path = tmp_path / "run.pdf"
    with path.open("wb") as out:
        assert write_documents_pdf(iter(ALL), out) == len(ALL)
    assert path.read_bytes() == render_documents_pdf(ALL)


@pytest.mark.parametrize(
    "call",
    [
        lambda: render_documents_pdf([]),
        lambda: render_document_png(IMPOSITION, dpi=20),
    ],
)
def test_a_run_needs_documents_and_a_sane_resolution(call: Callable[[], bytes]) -> None:
    with pytest.raises(ValueError):
        call()


def test_something_that_is_not_a_document_is_refused() -> None:
    with pytest.raises(TypeError):
        render_documents_pdf(["not a document"])  # type: ignore[list-item]


def test_a_document_that_does_not_fit_is_refused_never_cut_off() -> None:
    long_address = replace(OWNER, address="서울특별시 종로구 종로 1 " * 16)
    with pytest.raises(ValueError, match="window"):
        render_documents_pdf([replace(IMPOSITION, addressee=long_address)])
    long_place = replace(PARKING_FACTS, place="세종대로 175 " * 120)
    with pytest.raises(ValueError, match="does not fit"):
        render_documents_pdf([replace(IMPOSITION, facts=long_place)])


# --- bad input -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: replace(IMPOSITION, amount=-40_000), "amount"),
        (lambda: replace(IMPOSITION, amount=0), "amount"),
        (lambda: replace(IMPOSITION, addressee=None), "addressee"),
        (lambda: replace(ADVANCE, addressee=None), "addressee"),
        (lambda: replace(PAYMENT, payment_no=PAYMENT_NO[:-1]), "payment_no"),
        (lambda: replace(PAYMENT, payment_no=PAYMENT_NO[:-1] + "x"), "payment_no"),
        (lambda: replace(PAYMENT, qr_text="http://x/p/1 2"), "qr_text"),
        (lambda: replace(PAYMENT, account_no="1005-계좌"), "account_no"),
        (lambda: replace(PERSON, reduced_amount=120_000), "reduced_amount"),
        (lambda: replace(PERSON, issued_at=datetime(2026, 11, 25, 14, 4)), "issued_at"),
        (lambda: replace(PERSON, hardship_reduction_percent=0), "hardship_reduction_percent"),
        (lambda: replace(ADVANCE, reduced_until=date(2026, 12, 1)), "reduced_until"),
        (lambda: replace(ADVANCE, opinion_deadline=date(2026, 11, 30)), "opinion_deadline"),
        (lambda: replace(IMPOSITION, due_date=date(2026, 12, 1)), "due_date"),
        (lambda: replace(IMPOSITION, surcharge_percent=3), "surcharge_percent"),
        (lambda: replace(IMPOSITION, measures=()), "measures"),
        (lambda: replace(IMPOSITION, amount_after_due=39_000), "amount_after_due"),
        (lambda: replace(DEMAND, issued_on=date(2027, 2, 18)), "issued_on"),
        (lambda: replace(DEMAND, surcharge=-1), "surcharge"),
        (lambda: replace(DEMAND, notice_no="1111026"), "notice_no"),
        (lambda: replace(RECEIPT, allocations=(Allocation(head="과태료", amount=29_999),)), "allocations"),
        (lambda: replace(RECEIPT, balance=-1), "balance"),
        (lambda: Allocation(head="과태료", amount=-1), "amount"),
        (lambda: replace(OWNER, postal_code="0315"), "postal_code"),
        (lambda: replace(OWNER, rrn="123"), "rrn"),
        (lambda: replace(OWNER, name=" "), "name"),
        (lambda: replace(PARKING_FACTS, observed_at=datetime(2026, 11, 25, 14, 3)), "observed_at"),
        (lambda: replace(AUTHORITY, address=""), "address"),
    ],
)
def test_bad_input_is_refused_naming_the_field(build: Callable[[], object], field: str) -> None:
    with pytest.raises(InvalidDocumentError) as raised:
        build()
    assert raised.value.field == field
    assert isinstance(raised.value, InvalidSlipError) and isinstance(raised.value, ValueError)


def test_the_receipts_issue_date_is_the_seoul_date_of_the_payment() -> None:
    # paid at 08:41 in Seoul on 12 March, still 11 March in UTC (issue 13 §1.14)
    early = replace(RECEIPT, paid_at=datetime(2027, 3, 11, 23, 41, tzinfo=UTC))
    assert a4_content(early).issued_on == "2027년 03월 12일"
