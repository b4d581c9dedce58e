"""A PNG preview of the 80 mm slip as the belt printer would print it (576 dots at 203 dpi by default)."""

from __future__ import annotations

import io
import math
from pathlib import Path

from PIL import Image, ImageDraw

from printing.fonts import find_font, pil_font
from printing.layout import QrItem, RuleItem, TextItem, layout_receipt
from printing.qr import QUIET_ZONE_MODULES, qr_image, qr_matrix
from printing.slip import Slip, SlipContent, slip_content

MIN_WIDTH_PX = 384  # 58 mm paper
MIN_MODULE_PX = 4  # smallest module that phone cameras and zxing decode reliably from a preview
MAX_MODULE_PX = 8  # 1 mm modules at 203 dpi: larger only wastes paper
QR_WIDTH_SHARE = 0.6  # the QR takes about this share of the paper width


def render_png(slip: Slip, width_px: int = 576, *, font_path: str | Path | None = None) -> bytes:
    """The slip as a greyscale PNG ``width_px`` dots wide (at least 384), as long as its content needs.

    One pixel is one 203 dpi printer dot, so text keeps its printed size and narrower paper wraps more.

    Text is set in the Korean font ``find_font(font_path)`` picks; the QR has whole-pixel modules of at least
    4 px and a 4-module quiet zone, so it decodes from the PNG. Raises ``FontNotFoundError`` without a font and
    ``ValueError`` for a width below 384.
    """
    if width_px < MIN_WIDTH_PX:
        raise ValueError(f"width_px must be at least {MIN_WIDTH_PX}")
    return render_content_png(slip_content(slip), width_px, font_path=font_path)


def render_content_png(content: SlipContent, width_px: int = 576, *, font_path: str | Path | None = None) -> bytes:
    """Any slip-shaped content (``SlipContent``) as the PNG preview ``render_png`` makes of a slip: same layout,
    same QR rules, same errors."""
    if width_px < MIN_WIDTH_PX:
        raise ValueError(f"width_px must be at least {MIN_WIDTH_PX}")
    font_file = find_font(font_path)

    modules = qr_matrix(content.qr_text).size + 2 * QUIET_ZONE_MODULES
    module_px = max(MIN_MODULE_PX, min(MAX_MODULE_PX, int(width_px * QR_WIDTH_SHARE) // modules))
    qr_side = modules * module_px
    if qr_side > width_px:
        raise ValueError(f"the QR needs {qr_side} px at {MIN_MODULE_PX} px per module; width_px is {width_px}")

    def measure(text: str, size: float, bold: bool) -> float:
        return pil_font(font_file, round(size)).getlength(text) + (2 if bold else 0)

    layout = layout_receipt(content, width=width_px, measure=measure, qr_side=qr_side)
    image = Image.new("L", (width_px, math.ceil(layout.height)), 255)
    draw = ImageDraw.Draw(image)
    for item in layout.items:
        if isinstance(item, TextItem):
            draw.text(
                (item.x, item.y),
                item.text,
                font=pil_font(font_file, round(item.size)),
                fill=0,
                anchor="ls",
                stroke_width=1 if item.bold else 0,
                stroke_fill=0,
            )
        elif isinstance(item, RuleItem):
            draw.line([(item.x0, item.y), (item.x1, item.y)], fill=0, width=max(1, round(item.thickness)))
        elif isinstance(item, QrItem):
            image.paste(qr_image(item.text, module_px=module_px), (round(item.x), round(item.y)))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
