"""Strict JSON for request bodies (RFC 8259): UTF-8 only, no NaN or Infinity, bounded nesting.

The standard library is lenient where we must not be: it guesses UTF-16/32 from bytes and accepts ``NaN``; a very
deep document exhausts the recursion limit. Anything of that kind is a 400 ``malformed_json``.
"""

from __future__ import annotations

import json
from typing import Any


class MalformedJson(ValueError):
    """The body is not RFC 8259 JSON text in UTF-8."""


def _refuse_constant(name: str) -> Any:
    raise MalformedJson(f"{name} is not JSON")


def strict_loads(raw: bytes) -> Any:
    """Parse a request body; raises ``MalformedJson``."""
    try:
        text = raw.decode("utf-8")
        return json.loads(text, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedJson(str(exc)) from None
