"""The 80 mm receipt layout, computed once and drawn by two back ends: ``png`` (pixels) and ``pdf`` (points).

Units are whatever the caller's ``measure`` uses; sizes are given in printer dots (203 dpi) and scaled by ``dot``,
the length of one dot in those units (1 for a PNG in dots, 80 mm / 576 for a PDF in points), so text has the
printed size on any paper width and the PNG preview and the receipt PDF look the same. Coordinates run top-down
from the top-left corner; a text item's ``y`` is its baseline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from printing.slip import Field, SlipContent
from printing.wrap import wrap_text

Measure = Callable[[str, float, bool], float]
"""``measure(text, size, bold)``: the advance width of ``text`` set at font ``size``."""

# sizes in printer dots: 22-dot body text, about the printer's own 24-dot Hangul cell
MARGIN = 14.0
BODY = 22.0
TITLE = 37.0
AMOUNT = 25.0
SMALL = 19.0
RULE = 1.5
LEADING = 1.38  # line pitch as a multiple of the font size
MIN_VALUE_SHARE = 0.55  # below this share of the line, values go under their labels


@dataclass(frozen=True, slots=True)
class TextItem:
    """A run of text; ``y`` is the baseline."""

    x: float
    y: float
    text: str
    size: float
    bold: bool


@dataclass(frozen=True, slots=True)
class RuleItem:
    """A horizontal line from ``x0`` to ``x1`` at ``y``."""

    y: float
    x0: float
    x1: float
    thickness: float


@dataclass(frozen=True, slots=True)
class QrItem:
    """The payment QR (quiet zone included) as a ``side`` × ``side`` square whose top-left corner is (x, y)."""

    x: float
    y: float
    side: float
    text: str


LayoutItem = TextItem | RuleItem | QrItem


@dataclass(frozen=True, slots=True)
class ReceiptLayout:
    """Everything to draw, in order, and the paper length it needs."""

    width: float
    height: float
    items: tuple[LayoutItem, ...]


def layout_receipt(
    content: SlipContent, *, width: float, measure: Measure, qr_side: float, dot: float = 1.0
) -> ReceiptLayout:
    """Lay ``content`` out on a receipt ``width`` wide; the QR square (with its quiet zone) is ``qr_side`` wide;
    ``dot`` is one printer dot in the units of ``width``.

    Raises ``ValueError`` when the QR does not fit the paper.
    """
    if not 0 < qr_side <= width:
        raise ValueError("the QR must fit the paper width")
    flow = _Flow(width, measure, dot)
    flow.gap(BODY * dot * 0.5)
    flow.paragraph(content.title, TITLE * dot, bold=True, center=True)
    if content.reprint_mark:
        flow.paragraph(content.reprint_mark, BODY * dot, bold=True, center=True)
    flow.rule()

    label_width = max(measure(field.label, BODY * dot, False) for field in content.fields + content.issuer)
    label_width += BODY * dot
    for field in content.fields:
        flow.field(field, label_width)
    flow.rule()

    flow.paragraph(content.notices_heading, BODY * dot, bold=True)
    for sentence in content.notices:
        flow.paragraph(sentence, SMALL * dot, bullet="- ")
    flow.rule()

    for field in content.issuer:
        flow.field(field, label_width)
    flow.gap(BODY * dot * 0.5)
    flow.qr(content.qr_text, qr_side)
    flow.paragraph(content.qr_caption, BODY * dot, bold=True, center=True)
    flow.gap(BODY * dot)
    return ReceiptLayout(width=width, height=flow.y, items=tuple(flow.items))


class _Flow:
    """A top-down cursor placing items line by line."""

    def __init__(self, width: float, measure: Measure, dot: float) -> None:
        self.width = width
        self.dot = dot
        self.measure = measure
        self.left = MARGIN * dot
        self.right = width - MARGIN * dot
        self.y = MARGIN * dot
        self.items: list[LayoutItem] = []

    def gap(self, height: float) -> None:
        self.y += height

    def line(self, x: float, text: str, size: float, bold: bool) -> None:
        self.items.append(TextItem(x, self.y + size, text, size, bold))
        self.y += size * LEADING

    def lines(self, text: str, x: float, size: float, bold: bool, *, center: bool = False) -> None:
        width = self.right - x
        for line in wrap_text(text, width, lambda part: self.measure(part, size, bold)):
            left = x + (width - self.measure(line, size, bold)) / 2 if center else x
            self.line(left, line, size, bold)

    def paragraph(self, text: str, size: float, *, bold: bool = False, center: bool = False, bullet: str = "") -> None:
        if bullet:
            indent = self.measure(bullet, size, bold)
            self.items.append(TextItem(self.left, self.y + size, bullet.strip(), size, bold))
            self.lines(text, self.left + indent, size, bold)
        else:
            self.lines(text, self.left, size, bold, center=center)

    def field(self, field: Field, label_width: float) -> None:
        body = BODY * self.dot
        size = AMOUNT * self.dot if field.emphasis else body
        stacked = (self.right - self.left - label_width) < MIN_VALUE_SHARE * (self.right - self.left)
        if stacked:
            self.line(self.left, field.label, body, False)
            value_x = self.left + body
        else:
            value_x = self.left + label_width
            # the label shares the value's first baseline
            self.items.append(TextItem(self.left, self.y + size, field.label, body, False))
        self.lines(field.value, value_x, size, field.emphasis)
        if field.note:
            self.lines(field.note, value_x, SMALL * self.dot, False)

    def rule(self) -> None:
        self.y += BODY * self.dot * 0.35
        self.items.append(RuleItem(self.y, self.left, self.right, RULE * self.dot))
        self.y += BODY * self.dot * 0.65

    def qr(self, text: str, side: float) -> None:
        self.items.append(QrItem((self.width - side) / 2, self.y, side, text))
        self.y += side
