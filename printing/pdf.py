"""Slips as one PDF, one page per slip: ``receipt`` (80 mm wide, as long as the slip) or ``a4`` (mailed notice).

Text is set in the Korean TrueType font ``find_font`` picks, registered with reportlab once per process and
embedded as a subset, so the text is extractable. The QR is vector: one filled path of rectangles, one per
horizontal run of dark modules. Output is deterministic (reportlab's ``invariant`` mode): same slips, same bytes.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path
from typing import Literal

from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFError, TTFont
from reportlab.pdfgen.canvas import Canvas

from printing.errors import FontNotFoundError
from printing.fonts import find_font
from printing.layout import QrItem, RuleItem, TextItem, layout_receipt
from printing.qr import QUIET_ZONE_MODULES, qr_matrix
from printing.slip import Field, Slip, SlipContent, slip_content
from printing.wrap import wrap_text

Layout = Literal["receipt", "a4"]
Progress = Callable[[int], None]
"""Called after each page with the number of pages done so far."""

RECEIPT_WIDTH = 80 * mm
RECEIPT_DOTS = 576  # 80 mm at 203 dpi: the receipt page is the belt-printer slip, dot for dot
RECEIPT_QR_SHARE = 0.6
BOLD_STROKE = 0.035  # faux-bold outline width as a share of the font size (one font file serves both weights)


def render_pdf(
    slips: Iterable[Slip],
    *,
    layout: Layout = "receipt",
    progress: Progress | None = None,
    font_path: str | Path | None = None,
) -> bytes:
    """One PDF with a page per slip, in order; ``progress(n)`` is called after the n-th page.

    Raises ``ValueError`` for an unknown layout, no slips, or (``a4``) a slip whose text is too long for one
    page, and ``FontNotFoundError`` when no usable font is found (reportlab embeds TrueType outlines only:
    CFF-based OpenType such as Noto CJK is refused).
    """
    if layout not in ("receipt", "a4"):
        raise ValueError(f"unknown layout {layout!r}; use 'receipt' or 'a4'")
    contents = (slip_content(slip) for slip in slips)
    return render_content_pdf(contents, layout=layout, progress=progress, font_path=font_path)


def render_content_pdf(
    contents: Iterable[SlipContent],
    *,
    layout: Layout = "receipt",
    progress: Progress | None = None,
    font_path: str | Path | None = None,
    title: str = "과태료 고지",
) -> bytes:
    """Any slip-shaped content (``SlipContent``) as ``render_pdf`` renders slips: a page each, same layouts,
    same errors; ``title`` is the PDF's document title."""
    if layout not in ("receipt", "a4"):
        raise ValueError(f"unknown layout {layout!r}; use 'receipt' or 'a4'")
    font = reportlab_font(find_font(font_path))
    buffer = io.BytesIO()
    # our font in the page preamble too: otherwise reportlab names Helvetica there, a font no page embeds
    canvas = Canvas(buffer, pagesize=A4, invariant=True, pageCompression=True, initialFontName=font)
    canvas.setTitle(title)
    canvas.setCreator("Jingsu printing")
    pen = _Pen(canvas, font)
    pages = 0
    for content in contents:
        if layout == "a4":
            _draw_a4(pen, content)
        else:
            _draw_receipt(pen, content)
        canvas.showPage()
        pages += 1
        if progress is not None:
            progress(pages)
    if not pages:
        raise ValueError("no slips to render")
    canvas.save()
    return buffer.getvalue()


@lru_cache(maxsize=8)
def reportlab_font(path: Path) -> str:
    """Register the TrueType font at ``path`` with reportlab once per process; returns its registered name.

    Raises ``FontNotFoundError`` when reportlab cannot embed the file.
    """
    name = "JingsuKorean-" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
    try:
        pdfmetrics.registerFont(TTFont(name, str(path), subfontIndex=0))
    except TTFError as exc:
        raise FontNotFoundError([str(path)], f"reportlab cannot embed it: {exc}") from exc
    return name


class _Pen:
    """Canvas drawing with top-down coordinates on the current page, in the one registered font."""

    def __init__(self, canvas: Canvas, font: str) -> None:
        self.canvas = canvas
        self.font = font
        self.page_height = 0.0

    def page(self, width: float, height: float) -> None:
        self.canvas.setPageSize((width, height))
        self.page_height = height

    def measure(self, text: str, size: float, bold: bool = False) -> float:
        width: float = pdfmetrics.stringWidth(text, self.font, size)
        return width + (size * BOLD_STROKE if bold else 0.0)

    def text(self, x: float, baseline: float, text: str, size: float, bold: bool = False) -> None:
        canvas, y = self.canvas, self.page_height - baseline
        if not bold:
            canvas.setFont(self.font, size)
            canvas.drawString(x, y, text)
            return
        # fill + stroke (text render mode 2) inside q/Q, so the mode and line width do not leak
        canvas.saveState()
        canvas.setLineWidth(size * BOLD_STROKE)
        run = canvas.beginText(x, y)
        run.setFont(self.font, size)
        run.setTextRenderMode(2)
        run.textOut(text)
        canvas.drawText(run)
        canvas.restoreState()

    def hline(self, x0: float, x1: float, y: float, thickness: float) -> None:
        self.canvas.setLineWidth(thickness)
        self.canvas.line(x0, self.page_height - y, x1, self.page_height - y)

    def box(self, x: float, top: float, width: float, height: float, *, fill_grey: float | None = None) -> None:
        canvas = self.canvas
        if fill_grey is not None:
            canvas.saveState()
            canvas.setFillGray(fill_grey)
            canvas.rect(x, self.page_height - top - height, width, height, stroke=0, fill=1)
            canvas.restoreState()
        canvas.setLineWidth(0.5)
        canvas.rect(x, self.page_height - top - height, width, height, stroke=1, fill=0)

    def qr(self, x: float, top: float, side: float, text: str) -> None:
        """The QR with its quiet zone in a ``side``-wide square at (x, top): black runs on the white page.

        The runs are written as raw PDF path operators in module units under one transform (``cm``): integer
        operands keep the content stream small and skip reportlab's per-number float formatting, the slowest
        part of a page otherwise.
        """
        matrix = qr_matrix(text)
        module = side / (matrix.size + 2 * QUIET_ZONE_MODULES)
        left = x + QUIET_ZONE_MODULES * module
        upper = self.page_height - top - QUIET_ZONE_MODULES * module
        # module (column, row) maps to page (left + column * module, upper - row * module): y grows downwards
        runs = "".join(f"{column} {row} {length} 1 re\n" for row, column, length in matrix.dark_runs())
        self.canvas.saveState()
        self.canvas.transform(module, 0, 0, -module, left, upper)
        self.canvas.addLiteral(f"0 g\n{runs}f")
        self.canvas.restoreState()


Pen = _Pen  # the same pen draws the A4 window-envelope documents (printing.a4)


def _draw_receipt(pen: _Pen, content: SlipContent) -> None:
    layout = layout_receipt(
        content,
        width=RECEIPT_WIDTH,
        measure=pen.measure,
        qr_side=RECEIPT_WIDTH * RECEIPT_QR_SHARE,
        dot=RECEIPT_WIDTH / RECEIPT_DOTS,
    )
    pen.page(layout.width, layout.height)
    for item in layout.items:
        if isinstance(item, TextItem):
            pen.text(item.x, item.y, item.text, item.size, item.bold)
        elif isinstance(item, RuleItem):
            pen.hline(item.x0, item.x1, item.y, item.thickness)
        elif isinstance(item, QrItem):
            pen.qr(item.x, item.y, item.side, item.text)


# A4 notice: sizes in points
A4_MARGIN = 20 * mm
A4_TITLE = 22.0
A4_BODY = 10.5
A4_AMOUNT = 12.5
A4_SMALL = 9.5
A4_LEADING = 1.45
A4_ASCENT = 1.1  # baseline below the top of a line box, as a multiple of the font size
A4_LABEL_COLUMN = 34 * mm
A4_CELL_PAD = 2.2 * mm
A4_QR_SIDE = 40 * mm


def _draw_a4(pen: _Pen, content: SlipContent) -> None:
    width, height = A4
    pen.page(width, height)
    left, right = A4_MARGIN, width - A4_MARGIN
    y = A4_MARGIN

    pen.text(left, y + A4_BODY, content.issuer[0].value, A4_BODY)  # letterhead: the issuing office
    y += A4_BODY * 3
    y = _centered(pen, content.title, left, right, y, A4_TITLE, bold=True)
    if content.reprint_mark:
        y = _centered(pen, content.reprint_mark, left, right, y, A4_BODY, bold=True)
    y += A4_BODY

    y = _table(pen, content.fields, left, right, y)
    y += A4_BODY * 1.5

    pen.text(left, y + A4_BODY, content.notices_heading, A4_BODY, bold=True)
    y += A4_BODY * A4_LEADING
    bullet_indent = pen.measure("- ", A4_SMALL)
    for sentence in content.notices:
        pen.text(left, y + A4_SMALL, "-", A4_SMALL)
        for line in wrap_text(sentence, right - left - bullet_indent, lambda s: pen.measure(s, A4_SMALL)):
            pen.text(left + bullet_indent, y + A4_SMALL, line, A4_SMALL)
            y += A4_SMALL * A4_LEADING
        y += A4_SMALL * 0.4
    y += A4_BODY

    qr_x = right - A4_QR_SIDE
    issuer_right = qr_x - 6 * mm
    bottom = max(_table(pen, content.issuer, left, issuer_right, y), y + A4_QR_SIDE + A4_SMALL * A4_LEADING)
    if bottom > height - A4_MARGIN / 2:
        # never print a legal notice with its end (QR, issuer) cut off
        raise ValueError(f"notice {content.fields[0].value}: the content does not fit on one A4 page")
    pen.qr(qr_x, y, A4_QR_SIDE, content.qr_text)
    caption_width = pen.measure(content.qr_caption, A4_SMALL, True)
    caption_x = min(qr_x + (A4_QR_SIDE - caption_width) / 2, right - caption_width)
    pen.text(caption_x, y + A4_QR_SIDE + A4_SMALL, content.qr_caption, A4_SMALL, True)


def _centered(pen: _Pen, text: str, left: float, right: float, y: float, size: float, *, bold: bool) -> float:
    for line in wrap_text(text, right - left, lambda s: pen.measure(s, size, bold)):
        x = left + (right - left - pen.measure(line, size, bold)) / 2
        pen.text(x, y + size, line, size, bold)
        y += size * A4_LEADING
    return y


def _table(pen: _Pen, fields: Iterable[Field], left: float, right: float, y: float) -> float:
    """Label | value rows with a grey label column; returns the y below the table."""
    value_x = left + A4_LABEL_COLUMN + A4_CELL_PAD
    value_width = right - value_x - A4_CELL_PAD
    for field in fields:
        size = A4_AMOUNT if field.emphasis else A4_BODY
        lines = [(line, size, field.emphasis) for line in _wrap(pen, field.value, value_width, size, field.emphasis)]
        if field.note:
            lines += [(line, A4_SMALL, False) for line in _wrap(pen, field.note, value_width, A4_SMALL, False)]
        row_height = sum(line_size * A4_LEADING for _, line_size, _ in lines) + A4_CELL_PAD
        pen.box(left, y, A4_LABEL_COLUMN, row_height, fill_grey=0.92)
        pen.box(left + A4_LABEL_COLUMN, y, right - left - A4_LABEL_COLUMN, row_height)
        top = y + A4_CELL_PAD / 2
        pen.text(left + A4_CELL_PAD, top + size * A4_ASCENT, field.label, A4_BODY)  # on the value's first baseline
        for line, line_size, bold in lines:
            pen.text(value_x, top + line_size * A4_ASCENT, line, line_size, bold)
            top += line_size * A4_LEADING
        y += row_height
    return y


def _wrap(pen: _Pen, text: str, width: float, size: float, bold: bool) -> list[str]:
    return wrap_text(text, width, lambda s: pen.measure(s, size, bold))
