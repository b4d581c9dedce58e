"""Greedy line wrapping for Korean and Latin text under any width measure (columns, pixels, points)."""

from __future__ import annotations

from collections.abc import Callable


def wrap_text(text: str, width: float, measure: Callable[[str], float]) -> list[str]:
    """Break ``text`` into lines whose ``measure`` is at most ``width``.

    Breaks at spaces (Korean is set by 어절, like Latin words); a word wider than a line is broken between
    characters. Runs of whitespace collapse to one space. Returns at least one line (``[""]`` for blank text).
    Raises ``ValueError`` when a single character is wider than ``width``.
    """
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if measure(candidate) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
            current = ""
        if measure(word) <= width:
            current = word
            continue
        for char in word:
            if measure(current + char) <= width:
                current += char
                continue
            if not current:
                raise ValueError(f"character {char!r} is wider than the line ({width})")
            lines.append(current)
            current = char
    lines.append(current)
    return lines
