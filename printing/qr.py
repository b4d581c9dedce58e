"""The payment QR as a module matrix, a Pillow image, or horizontal runs for vector drawing.

Encoding uses zxing-cpp's writer (a C++ encoder, ~0.2 ms per payment URL), not the pure-Python ``qrcode``
package (~5.6 ms each, which alone would use most of the 6.7 ms a page may take at 150 A4 notices/s; DESIGN.md
§9 allows any well-kept encoder). Always QR model 2, error correction level M, smallest version that fits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import zxingcpp
from PIL import Image

ERROR_CORRECTION = "M"
QUIET_ZONE_MODULES = 4  # ISO/IEC 18004 minimum
# bytes.translate tables: the encoder's grey pixels (0 = dark) to module bits (1 = dark), and back
_DARK_TO_ONE = bytes(1 if value < 128 else 0 for value in range(256))
_ONE_TO_GREY = bytes(0 if value == 1 else 255 for value in range(256))


@dataclass(frozen=True, slots=True)
class QrMatrix:
    """A QR symbol's modules without quiet zone, row-major: ``modules[y * size + x]`` is 1 for a dark module."""

    size: int
    modules: bytes

    def is_dark(self, x: int, y: int) -> bool:
        """Whether the module in column ``x``, row ``y`` is dark."""
        return self.modules[y * self.size + x] == 1

    def dark_runs(self) -> list[tuple[int, int, int]]:
        """Horizontal runs of dark modules as ``(row, first_column, length)``: few rectangles for a vector QR."""
        runs: list[tuple[int, int, int]] = []
        size, modules = self.size, self.modules
        for y in range(size):
            row = modules[y * size : (y + 1) * size]
            x = row.find(1)
            while x != -1:
                end = row.find(0, x)
                if end == -1:
                    end = size
                runs.append((y, x, end - x))
                x = row.find(1, end)
        return runs


def qr_matrix(text: str) -> QrMatrix:
    """Encode ``text`` (UTF-8) as a QR Code model 2 with error correction M.

    Raises ``ValueError`` for empty text or text too long for any QR version.
    """
    if not text:
        raise ValueError("QR text must not be empty")
    try:
        barcode = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode, ec_level=ERROR_CORRECTION)
    except Exception as exc:  # zxing-cpp raises its own types for unencodable input
        raise ValueError(f"cannot encode QR: {exc}") from exc
    image = barcode.to_image(scale=1, add_quiet_zones=False)
    height, width = image.shape[:2]
    if not barcode.valid or width != height or (width - 21) % 4:
        raise ValueError(f"QR encoder returned an unexpected {width}x{height} symbol")
    pixels = bytes(memoryview(cast(Any, image)))  # 8-bit grey: 0 = dark, 255 = light
    return QrMatrix(size=width, modules=pixels.translate(_DARK_TO_ONE))


def qr_image(text: str, *, module_px: int = 4, quiet_zone: int = QUIET_ZONE_MODULES) -> Image.Image:
    """A greyscale (mode ``L``) image of the QR for ``text``: ``module_px`` pixels per module, black on white,
    with a white quiet zone of ``quiet_zone`` modules (at least 4) on every side.

    Raises ``ValueError`` for a module size below 1 or a quiet zone below 4.
    """
    if module_px < 1:
        raise ValueError("module_px must be at least 1")
    if quiet_zone < QUIET_ZONE_MODULES:
        raise ValueError(f"quiet_zone must be at least {QUIET_ZONE_MODULES} modules")
    matrix = qr_matrix(text)
    side = matrix.size + 2 * quiet_zone
    image = Image.new("L", (side, side), 255)
    symbol = Image.frombytes("L", (matrix.size, matrix.size), matrix.modules.translate(_ONE_TO_GREY))
    image.paste(symbol, (quiet_zone, quiet_zone))
    return image.resize((side * module_px, side * module_px), Image.Resampling.NEAREST)
