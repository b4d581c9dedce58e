"""A4 documents for window envelopes (창봉투) as PDF, merged print runs, and PNG previews of any page.

Page plan (millimetres from the top-left corner of the A4 sheet, 210 × 297; ``EnvelopeLayout`` holds the numbers
in one place, so a different envelope is one new value, not a code change):

==================  ============================  =====================================================
block               where                         what
==================  ============================  =====================================================
header              y 8–14                        문서번호 (left), 발행일 (right)
sender              x 20–115, y 17–43             발신: authority, department, (우편번호) address, phone
**window**          x 20–115, y 45–90             the addressee, inset 5 mm: (우편번호), address, 성명 귀하
payment box         x 122–190, y 17–96            amount, deadline, 전자납부번호, 가상계좌, then the QR
fold marks          x 4–9, y 99 and y 198         tri-fold (3 × 99 mm) so the top panel faces the window
body                x 20–190, y 102–290           title, tables, notes, the authority's signature
                                                  (not mailed, e.g. a receipt: no fold marks, the
                                                  title stands where the window would be)
==================  ============================  =====================================================

The window is the common Korean 관공서 standard envelope (규격 대봉투/소봉투 with a left window) as the brief
gave it: 20 mm from the left, 45–90 mm from the top, 95 mm wide. It is **provisional until the city's envelope
supplier confirms the window**; the addressee is kept ``WINDOW_INSET`` inside it so a sheet shifted by a few
millimetres in the envelope still shows the whole address. The sender block sits above the window and does not
show through it (the envelope carries a printed return address).

Output: one PDF per call, a page per document, fonts embedded (TrueType subset), vector QR, deterministic
(reportlab ``invariant``: same documents, same bytes). A document whose content does not fit its page raises
``ValueError``: a legal notice is never printed with its end cut off.

Memory: documents are consumed one at a time from any iterable (a generator from the database is fine), so the
inputs are never all in memory. reportlab writes the file only at the end, so a run still grows with its *output*:
each finished page is deflated at once (``_compress_last_page``, ~4 KB) and the whole run costs ~12 KB a page at
its peak (``bench/print.py`` measures it: ~120 MB for 10,000 notices). ``write_documents_pdf`` writes to a file
object; a print run far larger than that should be split into several files by its caller. ``merge_pdfs`` joins
such parts into one file (``pypdf``; each part keeps its own font subset, a few tens of KB a part).

PNG previews rasterise the same PDF page with PDFium (``pypdfium2``): the preview is exactly what prints.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pypdfium2 as pdfium
from pypdf import PdfReader, PdfWriter
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfdoc import PDFArray, PDFDictionary, PDFName, PDFStream, PDFZCompress
from reportlab.pdfgen.canvas import Canvas

from printing.documents import A4Content, Document, NoteSection, TableSection, a4_content
from printing.fonts import find_font
from printing.pdf import Pen, reportlab_font
from printing.slip import Field
from printing.wrap import wrap_text

Progress = Callable[[int], None]
"""Called after each document with the number of documents done so far."""


@dataclass(frozen=True, slots=True)
class Rect:
    """A rectangle in points, top-down: ``x``, ``top`` of its top-left corner, ``width``, ``height``."""

    x: float
    top: float
    width: float
    height: float

    @property
    def right(self) -> float:
        return self.x + self.width

    @property
    def bottom(self) -> float:
        return self.top + self.height


@dataclass(frozen=True, slots=True)
class EnvelopeLayout:
    """Where the blocks of the page plan go (points, top-down). ``WINDOW`` = ``window`` of ``DEFAULT_LAYOUT``."""

    window: Rect
    sender: Rect
    payment_box: Rect
    body: Rect
    header_baseline: float
    fold_marks: tuple[float, ...]


DEFAULT_LAYOUT = EnvelopeLayout(
    window=Rect(20 * mm, 45 * mm, 95 * mm, 45 * mm),
    sender=Rect(20 * mm, 17 * mm, 95 * mm, 26 * mm),
    payment_box=Rect(122 * mm, 17 * mm, 68 * mm, 79 * mm),
    body=Rect(20 * mm, 102 * mm, 170 * mm, 188 * mm),
    header_baseline=12 * mm,
    fold_marks=(99 * mm, 198 * mm),
)
WINDOW = DEFAULT_LAYOUT.window
WINDOW_INSET = 5 * mm

# type sizes in points
TITLE = 18.0
HEADING = 10.5
BODY = 9.0
AMOUNT = 11.0
SMALL = 8.5
ADDRESS = 10.5
NAME = 12.0
SIGNATURE = 14.0
LEADING = 1.28
ASCENT = 1.05  # baseline below the top of a line box, as a multiple of the font size
LABEL_COLUMN = 32 * mm
BOX_LABEL_COLUMN = 22 * mm
CELL_PAD = 1.3 * mm
QR_SIDE = 30 * mm


def render_documents_pdf(
    documents: Iterable[Document],
    *,
    progress: Progress | None = None,
    font_path: str | Path | None = None,
    layout: EnvelopeLayout = DEFAULT_LAYOUT,
) -> bytes:
    """One merged A4 PDF with a page per document, in order; ``progress(n)`` after the n-th document.

    Raises ``ValueError`` for no documents or a document too long for its page, ``TypeError`` for something
    that is not a document, and ``FontNotFoundError`` without a usable Korean TrueType font.
    """
    buffer = io.BytesIO()
    write_documents_pdf(documents, buffer, progress=progress, font_path=font_path, layout=layout)
    return buffer.getvalue()


def write_documents_pdf(
    documents: Iterable[Document],
    out: BinaryIO,
    *,
    progress: Progress | None = None,
    font_path: str | Path | None = None,
    layout: EnvelopeLayout = DEFAULT_LAYOUT,
) -> int:
    """Like ``render_documents_pdf``, but writes the PDF to the binary file ``out``; returns the page count.

    Nothing is written to ``out`` when an error is raised.
    """
    font = reportlab_font(find_font(font_path))
    # our font in the page preamble too: otherwise reportlab names Helvetica there, a font no page embeds
    canvas = Canvas(out, pagesize=A4, invariant=True, pageCompression=True, initialFontName=font)
    canvas.setTitle("세외수입 고지")
    canvas.setCreator("Jingsu printing")
    pen = Pen(canvas, font)
    count = 0
    for document in documents:
        draw_a4(pen, a4_content(document), layout)
        canvas.showPage()
        _compress_last_page(canvas)
        count += 1
        if progress is not None:
            progress(count)
    if not count:
        raise ValueError("no documents to render")
    canvas.save()
    return count


def merge_pdfs(parts: Iterable[Path], out: BinaryIO) -> int:
    """Write the pages of ``parts``, in order, as one PDF to ``out`` (the first part's title and creator); returns
    the page count. Raises ``ValueError`` when there are no pages."""
    writer = PdfWriter()
    for part in parts:
        reader = PdfReader(part)
        if not len(writer.pages) and reader.metadata:
            writer.add_metadata({k: v for k, v in reader.metadata.items() if k in ("/Title", "/Creator")})
        writer.append(reader)
    if not len(writer.pages):
        raise ValueError("no pages to merge")
    writer.write(out)
    return len(writer.pages)


def render_document_png(
    document: Document,
    *,
    dpi: int = 150,
    font_path: str | Path | None = None,
    layout: EnvelopeLayout = DEFAULT_LAYOUT,
) -> bytes:
    """A greyscale PNG preview of the document's A4 page at ``dpi`` (72..600): the PDF page rasterised by PDFium.

    Raises like ``render_documents_pdf``, and ``ValueError`` for a resolution outside 72..600 dpi.
    """
    if not 72 <= dpi <= 600:
        raise ValueError("dpi must be 72..600")
    return pdf_page_png(render_documents_pdf([document], font_path=font_path, layout=layout), 0, dpi=dpi)


def pdf_page_png(data: bytes, page: int = 0, *, dpi: int = 150) -> bytes:
    """Page ``page`` (0-based) of the PDF ``data`` as a greyscale PNG at ``dpi``.

    Raises ``IndexError`` for a page the PDF does not have.
    """
    document = pdfium.PdfDocument(data)
    try:
        if not 0 <= page < len(document):
            raise IndexError(f"the PDF has {len(document)} page(s); page {page} does not exist")
        bitmap = document[page].render(scale=dpi / 72, grayscale=True)
        image = bitmap.to_pil()
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", dpi=(dpi, dpi))
        return buffer.getvalue()
    finally:
        document.close()


def _compress_last_page(canvas: Canvas) -> None:
    """Deflate the page just finished now instead of when the file is written.

    reportlab keeps every page's content stream as text until ``save`` and encodes it then (Flate, then ASCII85):
    tens of KB a page held for the whole run. Deflated at once it is ~4 KB, so a print run of thousands of
    notices grows by ~12 KB a page in all (measured in ``bench/print.py``) instead of ~30. The stream is written as
    binary Flate without reportlab's ASCII85 layer (about 10% smaller; every PDF reader takes it). Uses reportlab's
    document objects (``canvas._doc``), pinned in requirements.txt; a test checks the pages read the same with and
    without this step, and if reportlab stops keeping ``page.stream`` this does nothing.
    """
    page = canvas._doc.Pages.pages[-1]
    stream = page.stream
    if not isinstance(stream, str) or page.Contents:
        return  # nothing to do (or reportlab changed: then it compresses at save as before)
    contents = PDFStream(PDFDictionary({"Filter": PDFArray([PDFName("FlateDecode")])}), PDFZCompress.encode(stream))
    contents.__Comment__ = "page stream"
    page.Contents = contents
    page.stream = None


# --- drawing -------------------------------------------------------------------------------------------------------


def draw_a4(pen: Pen, content: A4Content, layout: EnvelopeLayout = DEFAULT_LAYOUT) -> float:
    """Draw ``content`` on the pen's current page as one A4 window-envelope document; returns where the body ends
    (points from the top).

    Raises ``ValueError`` when a block outgrows its place: the address its window, the payment box its panel, the
    body its page.
    """
    width, height = A4
    pen.page(width, height)
    body = layout.body
    what = f"{content.title} {content.document_no}"

    # header and fold marks
    pen.text(body.x, layout.header_baseline, f"문서번호 {content.document_no}", SMALL)
    issued = f"발행일 {content.issued_on}"
    pen.text(body.right - pen.measure(issued, SMALL), layout.header_baseline, issued, SMALL)
    mailed = content.addressee is not None
    if mailed:
        for y in layout.fold_marks:
            pen.hline(4 * mm, 9 * mm, y, 0.4)

    # sender, above the window ("발행" on a document that is not mailed)
    sender = layout.sender
    y = sender.top
    for index, line in enumerate(content.sender):
        size = BODY if index == 0 else SMALL
        prefix = ("발신 " if mailed else "발행 ") if index == 0 else ""
        y = _lines(pen, prefix + line, sender.x, sender.width, y, size, bold=index == 0)
    if y > sender.bottom:
        raise ValueError(f"{what}: the sender block does not fit above the window")

    if mailed:
        _address(pen, content, layout.window, what)

    _payment_box(pen, content, layout.payment_box, what)

    # the title heads the body; a document that is not mailed has it where the window would be
    title_box = Rect(body.x, body.top, body.width, 0) if mailed else layout.window
    y = title_box.top
    for line in _wrap(pen, content.title, title_box.width, TITLE, True):
        pen.text(title_box.x + (title_box.width - pen.measure(line, TITLE, True)) / 2, y + TITLE, line, TITLE, True)
        y += TITLE * LEADING
    if content.reprint_mark:
        x = title_box.x + (title_box.width - pen.measure(content.reprint_mark, BODY, True)) / 2
        pen.text(x, y + BODY, content.reprint_mark, BODY, True)
        y += BODY * LEADING
    if not mailed:
        y = body.top
    y += BODY * 0.6
    for section in content.sections:
        pen.text(body.x, y + HEADING, f"■ {section.heading}", HEADING, True)
        y += HEADING * LEADING + 1
        if isinstance(section, TableSection):
            y = _table(pen, section.fields, body.x, body.right, y, LABEL_COLUMN)
        elif isinstance(section, NoteSection):
            y = _notes(pen, section.sentences, body.x, body.width, y)
        y += BODY * 0.8
    y += BODY * 0.6
    signature_width = pen.measure(content.signature, SIGNATURE, True)
    pen.text(body.x + (body.width - signature_width) / 2, y + SIGNATURE, content.signature, SIGNATURE, True)
    y += SIGNATURE * LEADING
    if y > body.bottom:
        raise ValueError(
            f"{what}: the content does not fit on one A4 page ({y / mm:.0f} mm > {body.bottom / mm:.0f} mm)"
        )
    return y


def _address(pen: Pen, content: A4Content, window: Rect, what: str) -> None:
    assert content.addressee is not None
    left = window.x + WINDOW_INSET
    inner = window.width - 2 * WINDOW_INSET
    y = window.top + WINDOW_INSET
    address = content.addressee
    if address.postal_code:
        y = _lines(pen, f"({address.postal_code})", left, inner, y, ADDRESS)
    y = _lines(pen, address.address, left, inner, y, ADDRESS)
    y += ADDRESS * 0.3
    y = _lines(pen, address.name_line, left, inner, y, NAME, bold=True)
    if y > window.bottom - WINDOW_INSET / 2:
        raise ValueError(f"{what}: the address does not fit in the envelope window")


def _payment_box(pen: Pen, content: A4Content, box: Rect, what: str) -> None:
    y = _table(pen, content.summary, box.x, box.right, box.top, BOX_LABEL_COLUMN, body=SMALL, amount=AMOUNT)
    y += 2 * mm
    qr_x = box.x + (box.width - QR_SIDE) / 2
    pen.qr(qr_x, y, QR_SIDE, content.qr_text)
    y += QR_SIDE
    caption = content.qr_caption
    pen.text(box.x + (box.width - pen.measure(caption, SMALL, True)) / 2, y + SMALL, caption, SMALL, True)
    y += SMALL * LEADING
    if y > box.bottom:
        raise ValueError(f"{what}: the payment box does not fit beside the window")


def _lines(pen: Pen, text: str, x: float, width: float, y: float, size: float, *, bold: bool = False) -> float:
    for line in _wrap(pen, text, width, size, bold):
        pen.text(x, y + size * ASCENT, line, size, bold)
        y += size * LEADING
    return y


def _notes(pen: Pen, sentences: Iterable[str], x: float, width: float, y: float) -> float:
    indent = pen.measure("- ", BODY)
    for sentence in sentences:
        pen.text(x, y + BODY * ASCENT, "-", BODY)
        y = _lines(pen, sentence, x + indent, width - indent, y, BODY)
        y += BODY * 0.25
    return y


def _table(
    pen: Pen,
    fields: Iterable[Field],
    left: float,
    right: float,
    y: float,
    label_column: float,
    *,
    body: float = BODY,
    amount: float = AMOUNT,
) -> float:
    """Label | value rows with a grey label column; returns the y below the table."""
    value_x = left + label_column + CELL_PAD
    value_width = right - value_x - CELL_PAD
    label_width = label_column - 2 * CELL_PAD
    for field in fields:
        size = amount if field.emphasis else body
        lines = [(line, size, field.emphasis) for line in _wrap(pen, field.value, value_width, size, field.emphasis)]
        if field.note:
            lines += [(line, SMALL, False) for line in _wrap(pen, field.note, value_width, SMALL, False)]
        labels = _wrap(pen, field.label, label_width, body, False)
        value_height = sum(line_size * LEADING for _, line_size, _ in lines)
        row_height = max(value_height, len(labels) * body * LEADING) + CELL_PAD
        pen.box(left, y, label_column, row_height, fill_grey=0.92)
        pen.box(left + label_column, y, right - left - label_column, row_height)
        top = y + CELL_PAD / 2
        label_top = top + (size - body) * ASCENT  # the label's first baseline is the value's
        for label in labels:
            pen.text(left + CELL_PAD, label_top + body * ASCENT, label, body)
            label_top += body * LEADING
        for line, line_size, bold in lines:
            pen.text(value_x, top + line_size * ASCENT, line, line_size, bold)
            top += line_size * LEADING
        y += row_height
    return y


def _wrap(pen: Pen, text: str, width: float, size: float, bold: bool) -> list[str]:
    return wrap_text(text, width, lambda part: pen.measure(part, size, bold))
