"""printing/: every format (ESC/POS, PNG, PDF receipt and A4) carries the notice's facts and the signed QR.

ESC/POS is read back with ``printing.escpos_reader``; QR codes in the PNG and in PDF pages rasterised by PDFium
(``pypdfium2``, no system tools) are decoded with zxing-cpp and sampled module by module, so a mirrored or
flipped symbol fails even though scanners may still read it.
"""

from __future__ import annotations

import ast
import io
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest
import qrcode.util
import zxingcpp
from PIL import Image

from printing.errors import EscposParseError, FontNotFoundError, InvalidSlipError
from printing.escpos import PAPER, render_escpos
from printing.escpos_reader import read_escpos
from printing.fonts import find_font
from printing.layout import QrItem, TextItem, layout_receipt
from printing.pdf import render_pdf
from printing.png import render_png
from printing.qr import QUIET_ZONE_MODULES, qr_image, qr_matrix
from printing.slip import (
    Slip,
    format_date_ko,
    format_datetime_seoul,
    format_won,
    slip_content,
)
from printing.wrap import wrap_text
from tests.support.text import assert_shows, normalised

QR_TEXT = "http://127.0.0.1:5000/p/111102600000012?a=40000&r=32000&d=20261209&s=ARSEEJOQ3QFKWGCT"
PRINTING_DIR = Path(__file__).resolve().parents[2] / "printing"

PARKING = Slip(
    notice_no="111102600000012",
    kind="parking",
    violation_code="P01",
    violation_name="일반도로 주정차위반",
    amount=40_000,
    reduced_amount=32_000,
    opinion_deadline=date(2026, 12, 9),
    observed_at=datetime(2026, 11, 25, 5, 3, 41, tzinfo=UTC),  # 14:03 in Seoul
    place="서울특별시 종로구 세종대로 175 세종문화회관 앞",
    plate="12가3456",
    vehicle_type="car",
    office_name="서울특별시 종로구청",
    office_address="서울특별시 종로구 삼봉로 43",
    office_phone="02-2148-1114",
    officer_name="김단속",
    legal_basis="도로교통법 제32조",
    payment_no="1111022641000000017",  # protocol.payment_number.for_notice("111102600000012", "41")
    qr_text=QR_TEXT,
)
PERSON = replace(
    PARKING,
    kind="person",
    violation_code="S01",
    violation_name="금연구역 흡연",
    amount=100_000,
    reduced_amount=80_000,
    plate=None,
    vehicle_type=None,
    offender_name="홍길동",
    offender_address="서울특별시 종로구 종로 1",
    legal_basis="국민건강증진법 제34조",
)

# what every format must show for PARKING, after whitespace is normalised
PARKING_FACTS = (
    "주정차위반 단속 안내",
    "111102600000012",
    "12가3456",
    "승용",
    "2026-11-25 14:03",
    "서울특별시 종로구 세종대로 175 세종문화회관 앞",
    "P01 일반도로 주정차위반",
    "도로교통법 제32조",
    "40,000원",
    "32,000원",
    "20% 감경",
    "2026년 12월 09일",
    "전자납부번호",
    "11110-2-26-41-000000017",
    "서울특별시 종로구청",
    "서울특별시 종로구 삼봉로 43",
    "02-2148-1114",
    "김단속",
    "이의제기를 할 수 없습니다",
    "50% 범위에서 감경",
    "시행령 제2조의2",
    "의견을 제출할 수 있으며",
    "QR코드를 스캔하여 납부하세요",
)
PERSON_FACTS = (
    "과태료 부과 사전통지서",
    "홍길동",
    "서울특별시 종로구 종로 1",
    "S01 금연구역 흡연",
    "100,000원",
    "80,000원",
)


def sampled_modules(image: Image.Image, text: str) -> bytes:
    """Decode the one QR in ``image`` (it must say ``text``) and read its modules back at the module centres.

    Sampling runs in the symbol's own frame as zxing reports it, so the result equals ``qr_matrix(text)`` only
    when the printed symbol is upright and unmirrored.
    """
    grey = image.convert("L")
    found = zxingcpp.read_barcodes(grey)
    assert [barcode.text for barcode in found] == [text]
    corners = found[0].position
    top_left, top_right, bottom_left = corners.top_left, corners.top_right, corners.bottom_left
    size = qr_matrix(text).size
    modules = bytearray()
    for row in range(size):
        for column in range(size):
            across, down = (column + 0.5) / size, (row + 0.5) / size
            x = top_left.x + (top_right.x - top_left.x) * across + (bottom_left.x - top_left.x) * down
            y = top_left.y + (top_right.y - top_left.y) * across + (bottom_left.y - top_left.y) * down
            modules.append(1 if grey.getpixel((int(x), int(y))) < 128 else 0)
    return bytes(modules)


def pdf_pages(data: bytes) -> list[tuple[str, Image.Image]]:
    """Each page's extracted text and its rendering at 288 dpi (PDFium, via pypdfium2)."""
    document = pdfium.PdfDocument(data)
    pages = []
    for index in range(len(document)):
        page = document[index]
        pages.append((page.get_textpage().get_text_range(), page.render(scale=4).to_pil()))
    return pages


# --- the slip and its text helpers --------------------------------------------------------------------------------


def test_korean_text_helpers_format_won_dates_and_seoul_time() -> None:
    assert format_won(40_000) == "40,000원"
    assert format_won(1_234_560) == "1,234,560원"
    assert format_date_ko(date(2026, 12, 9)) == "2026년 12월 09일"
    assert format_datetime_seoul(datetime(2026, 11, 25, 14, 3, tzinfo=timezone(timedelta(hours=9)))) == (
        "2026-11-25 14:03"
    )
    assert format_datetime_seoul(datetime(2026, 12, 31, 15, 30, tzinfo=UTC)) == "2027-01-01 00:30"
    with pytest.raises(ValueError):
        format_datetime_seoul(datetime(2026, 11, 25, 14, 3))


@pytest.mark.parametrize(
    ("field", "overrides"),
    [
        ("notice_no", {"notice_no": "11110260000001"}),
        ("notice_no", {"notice_no": "11110260000001X"}),
        ("kind", {"kind": "drone"}),
        ("amount", {"amount": 0}),
        ("reduced_amount", {"reduced_amount": 50_000}),
        ("opinion_deadline", {"opinion_deadline": datetime(2026, 12, 9, tzinfo=UTC)}),
        ("observed_at", {"observed_at": datetime(2026, 11, 25, 14, 3)}),
        ("vehicle_type", {"vehicle_type": "truck"}),
        ("plate", {"plate": None}),
        ("qr_text", {"qr_text": "http://x/p/1 2"}),
        ("reprint", {"reprint": -1}),
        ("place", {"place": "  "}),
        ("payment_no", {"payment_no": "11110-2-26-41-000000017"}),  # digits only: printing groups them
        ("payment_no", {"payment_no": "１" * 19}),
    ],
)
def test_a_slip_with_an_impossible_field_is_refused_naming_the_field(field: str, overrides: dict[str, Any]) -> None:
    with pytest.raises(InvalidSlipError) as raised:
        replace(PARKING, **overrides)
    assert raised.value.field == field


def test_a_person_slip_needs_the_offenders_name() -> None:
    with pytest.raises(InvalidSlipError) as raised:
        replace(PERSON, offender_name=None)
    assert raised.value.field == "offender_name"


def test_wrap_text_breaks_at_spaces_and_splits_only_words_longer_than_a_line() -> None:
    assert wrap_text("가나 다라 마바", 5, len) == ["가나 다라", "마바"]
    assert wrap_text("가나다라마바사", 3, len) == ["가나다", "라마바", "사"]
    assert wrap_text("   ", 3, len) == [""]
    with pytest.raises(ValueError):
        wrap_text("가", 0.5, len)


# --- ESC/POS -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("width_mm", [80, 58])
def test_escpos_slip_reads_back_with_every_fact_and_the_signed_qr(width_mm: int) -> None:
    document = read_escpos(render_escpos(PARKING, width_mm))

    assert_shows(normalised(document.lines), PARKING_FACTS)
    assert document.qr_payloads == [QR_TEXT]
    assert document.cut
    assert max(document.line_widths) <= PAPER[width_mm].columns


def test_escpos_person_slip_is_the_advance_notice_with_name_and_address() -> None:
    text = normalised(read_escpos(render_escpos(PERSON)).lines)

    assert_shows(text, PERSON_FACTS)
    assert "주정차위반 단속 안내" not in text
    assert "차량번호" not in text


def test_escpos_58mm_paper_wraps_to_32_columns_where_80mm_uses_48() -> None:
    wide = read_escpos(render_escpos(PARKING, 80))
    narrow = read_escpos(render_escpos(PARKING, 58))

    assert max(wide.line_widths) == 48
    assert max(narrow.line_widths) == 32
    assert "-" * 32 in narrow.lines and "-" * 48 not in narrow.lines
    assert len(narrow.lines) > len(wide.lines)


def test_escpos_prints_reprint_count_only_on_reprints() -> None:
    assert "재발행 2" in read_escpos(render_escpos(replace(PARKING, reprint=2))).lines
    assert "재발행" not in normalised(read_escpos(render_escpos(PARKING)).lines)


def test_escpos_stream_uses_the_documented_korean_printer_commands() -> None:
    data = render_escpos(PARKING)

    assert data.startswith(b"\x1b@\x1c&")  # ESC @ init, FS & Kanji (double-byte CP949) mode
    assert "고지번호".encode("cp949") in data
    assert b"\x1d(k\x04\x00\x31\x41\x32\x00" in data  # QR model 2
    assert b"\x1d(k\x03\x00\x31\x45\x31" in data  # error correction M
    store = len(QR_TEXT) + 3
    assert bytes([0x1D, 0x28, 0x6B, store % 256, store // 256, 0x31, 0x50, 0x30]) + QR_TEXT.encode() in data
    assert b"\x1d(k\x03\x00\x31\x51\x30" in data  # print the symbol
    assert b"\x1d!\x11" in data and b"\x1d!\x01" in data  # double size title, double height amounts
    assert data.endswith(b"\x1dVB\x00")  # feed to the cutter and cut partially
    assert render_escpos(PARKING) == data


def test_escpos_field_data_cannot_smuggle_printer_commands() -> None:
    slip = replace(PARKING, place="세종대로\x1dVB\x00 175\n\x1b@앞")
    data = render_escpos(slip)
    document = read_escpos(data)

    assert data.count(b"\x1dV") == 1 and data.count(b"\x1b@") == 1
    assert "세종대로 VB 175 @앞" in normalised(document.lines)


def test_escpos_prints_characters_outside_cp949_as_question_marks() -> None:
    document = read_escpos(render_escpos(replace(PARKING, place="세종대로 175 🚗 앞")))
    assert "세종대로 175 ? 앞" in normalised(document.lines)


def test_escpos_refuses_paper_it_has_no_profile_for() -> None:
    with pytest.raises(ValueError):
        render_escpos(PARKING, width_mm=112)


@pytest.mark.parametrize(
    ("data", "offset"),
    [
        (b"\x1b@\x07", 2),  # BEL: an unknown control byte
        (b"\x1b@\x1b!\x00", 2),  # ESC ! (print mode) is not in our subset
        (b"\x1b@\xb0\xa1\n", 2),  # Hangul without FS & first
        (b"\x1b@\x1c&\xb0\x20\n", 4),  # not a CP949 pair
        (b"\x1c&\x1d(k\x03\x00\x31\x51\x30", 2),  # QR print with nothing stored
        (b"\x1d(k\x03\x00\x32\x41\x00", 0),  # cn 50: PDF417, not QR
        (b"\x1d(k\x10\x00\x31\x50\x30abc", 5),  # store command cut short
        (b"\x1b@abc", 5),  # text never ended by a line feed
        (b"\x1b@ab\x1dVB\x00", 4),  # cut in the middle of a line
        (b"\x1ba\x07", 0),  # alignment out of range
    ],
)
def test_reader_rejects_bytes_outside_the_emitted_subset(data: bytes, offset: int) -> None:
    with pytest.raises(EscposParseError) as raised:
        read_escpos(data)
    assert raised.value.offset == offset


def test_reader_rejects_a_job_cut_short() -> None:
    with pytest.raises(EscposParseError):
        read_escpos(render_escpos(PARKING)[:-1])


# --- QR ------------------------------------------------------------------------------------------------------------


def test_qr_matrix_is_upright_model_2_with_error_correction_m() -> None:
    matrix = qr_matrix(QR_TEXT)
    size = matrix.size

    def bit(x: int, y: int) -> int:
        return int(matrix.is_dark(x, y))

    # format information, both copies, read as ISO/IEC 18004 places them (bit i of the 15)
    vertical = [bit(8, i if i < 6 else i + 1 if i < 8 else size - 15 + i) for i in range(15)]
    horizontal = [bit(size - 1 - i if i < 8 else 15 - i if i < 9 else 14 - i, 8) for i in range(15)]
    assert vertical == horizontal
    value = sum(b << i for i, b in enumerate(vertical))
    assert value in {qrcode.util.BCH_type_info(mask) for mask in range(8)}  # EC bits 00 = level M
    assert matrix.is_dark(8, size - 8)  # the dark module sits left of the bottom-left finder
    assert (size - 17) % 4 == 0


def test_qr_image_has_whole_pixel_modules_and_a_quiet_zone() -> None:
    image = qr_image(QR_TEXT, module_px=5)
    size = qr_matrix(QR_TEXT).size
    assert image.size == ((size + 2 * QUIET_ZONE_MODULES) * 5,) * 2
    assert image.crop((0, 0, image.width, QUIET_ZONE_MODULES * 5)).getextrema() == (255, 255)
    assert sampled_modules(image, QR_TEXT) == qr_matrix(QR_TEXT).modules
    with pytest.raises(ValueError):
        qr_image(QR_TEXT, quiet_zone=3)


# --- PNG and the receipt layout ------------------------------------------------------------------------------------


def test_png_preview_is_576_dots_wide_and_its_qr_decodes_to_the_signed_url() -> None:
    image = Image.open(io.BytesIO(render_png(PARKING)))

    assert image.format == "PNG" and image.width == 576
    assert sampled_modules(image, QR_TEXT) == qr_matrix(QR_TEXT).modules
    corners = zxingcpp.read_barcodes(image.convert("L"))[0].position
    assert (corners.top_right.x - corners.top_left.x) / qr_matrix(QR_TEXT).size >= 4  # pixels per module


def test_png_preview_decodes_on_58mm_paper_too() -> None:
    image = Image.open(io.BytesIO(render_png(PERSON, width_px=384)))
    assert image.width == 384
    assert sampled_modules(image, QR_TEXT) == qr_matrix(QR_TEXT).modules


def test_receipt_layout_drawn_by_png_and_pdf_places_every_fact_inside_the_paper() -> None:
    def measure(text: str, size: float, bold: bool) -> float:
        return sum(size if ord(char) > 0x7F else size / 2 for char in text)

    layout = layout_receipt(slip_content(PARKING), width=576, measure=measure, qr_side=300)
    texts = [item for item in layout.items if isinstance(item, TextItem)]

    assert_shows(normalised([item.text for item in texts]), PARKING_FACTS)
    assert all(0 <= item.x and item.x + measure(item.text, item.size, item.bold) <= 576 for item in texts)
    [qr] = [item for item in layout.items if isinstance(item, QrItem)]
    assert qr.text == QR_TEXT and qr.y + qr.side < layout.height


def test_a_missing_font_path_is_an_error_not_a_silent_fallback(tmp_path: Path) -> None:
    with pytest.raises(FontNotFoundError):
        render_png(PARKING, font_path=tmp_path / "missing.ttf")
    with pytest.raises(FontNotFoundError):
        render_pdf([PARKING], font_path=tmp_path / "missing.ttf")
    assert find_font().is_file()  # fonts-nanum is installed on development machines and in CI


# --- PDF -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["receipt", "a4"])
def test_pdf_has_a_page_per_slip_with_extractable_text_and_a_decodable_vector_qr(layout: str) -> None:
    done: list[int] = []
    data = render_pdf([PARKING, PERSON], layout=layout, progress=done.append)

    pages = pdf_pages(data)
    assert len(pages) == 2 and done == [1, 2]
    (parking_text, parking_image), (person_text, person_image) = pages
    assert_shows(normalised([parking_text]), PARKING_FACTS)
    assert_shows(normalised([person_text]), PERSON_FACTS)
    for image in (parking_image, person_image):
        assert sampled_modules(image, QR_TEXT) == qr_matrix(QR_TEXT).modules
    assert b"/Subtype /Image" not in data  # the QR is drawn, not pasted as a bitmap


def test_pdf_output_is_deterministic_and_accepts_any_iterable() -> None:
    slips = [PARKING, replace(PARKING, notice_no="111102600000020", reprint=1)]
    assert render_pdf(iter(slips), layout="a4") == render_pdf(slips, layout="a4")
    assert "재발행 1" in pdf_pages(render_pdf(slips))[1][0]


@pytest.mark.parametrize(
    "call",
    [
        lambda: render_pdf([]),
        lambda: render_pdf([PARKING], layout="letter"),
        lambda: render_pdf([replace(PARKING, place="세종대로 175 " * 300)], layout="a4"),  # never cut off the end
    ],
)
def test_pdf_refuses_no_slips_and_unknown_layouts(call: Callable[[], bytes]) -> None:
    with pytest.raises(ValueError):
        call()


# --- the folder rule -----------------------------------------------------------------------------------------------


def test_printing_imports_nothing_of_ours() -> None:
    forbidden = {"server", "models", "sync", "pda_client", "tests", "bench"}
    offenders = []
    for path in sorted(PRINTING_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.name}: {name}" for name in names if name.split(".")[0] in forbidden]
    assert offenders == []
