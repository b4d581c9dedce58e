"""Finding and loading the Korean TrueType font that PNG previews and PDFs are set in.

Search order: the ``font_path`` argument when given (it must exist: no silent fallback), else the first existing
file of ``FONT_CANDIDATES``. Pillow fonts are cached per path and size on first use, never at import; reportlab
registers its copy in ``printing.pdf``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

from printing.errors import FontNotFoundError

FONT_CANDIDATES: tuple[str, ...] = (
    "/usr/share/fonts/truetype/nanum/NanumGothic.ttf",
    "/usr/share/fonts/truetype/nanum/NanumBarunGothic.ttf",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
)


def find_font(font_path: str | Path | None = None) -> Path:
    """The font file to use: ``font_path`` if given, else the first of ``FONT_CANDIDATES`` that exists.

    Raises ``FontNotFoundError`` when ``font_path`` does not exist or no candidate does.
    """
    if font_path is not None:
        path = Path(font_path)
        if not path.is_file():
            raise FontNotFoundError([str(path)], "the given font_path does not exist")
        return path
    for candidate in FONT_CANDIDATES:
        path = Path(candidate)
        if path.is_file():
            return path
    raise FontNotFoundError(FONT_CANDIDATES)


@lru_cache(maxsize=64)
def pil_font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    """The Pillow font at ``path`` in ``size`` pixels, loaded once per (path, size)."""
    return ImageFont.truetype(str(path), size)
