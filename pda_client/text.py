"""Plain text tables for the terminal: the device CLI's and the fleet simulator's."""

from __future__ import annotations

import unicodedata
from typing import Any


def table(rows: list[tuple[Any, ...]], headers: tuple[str, ...]) -> str:
    """A plain text table (Hangul counted as two columns)."""

    def width(text: str) -> int:
        return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)

    cells = [tuple(str(c) for c in headers)] + [tuple(str(c) for c in row) for row in rows]
    widths = [max(width(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(cell + " " * (widths[i] - width(cell)) for i, cell in enumerate(row)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
