"""Asserting on text read back from a slip or a document (ESC/POS lines, PDF text)."""

from __future__ import annotations


def normalised(lines: list[str]) -> str:
    """Lines joined and whitespace collapsed, so a value wrapped over lines reads as one string again."""
    return " ".join(" ".join(lines).split())


def assert_shows(text: str, facts: tuple[str, ...]) -> None:
    missing = [fact for fact in facts if fact not in text]
    assert not missing, f"missing {missing} in: {text}"
