"""Reading the citizen pages in tests: the path of a printed QR URL, and the text of an element by its id."""

from __future__ import annotations

import re
from urllib.parse import urlsplit


def local(url: str) -> str:
    """The path and query of a printed QR URL (pay_base_url is http://localhost, the client's base)."""
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == "http://localhost"
    return f"{parts.path}?{parts.query}"


def element(html: str, element_id: str) -> str:
    """The text of the element with id ``element_id`` on ``html``."""
    match = re.search(rf'id="{element_id}">([^<]*)<', html)
    assert match, f"no #{element_id} on the page"
    return match.group(1).strip()
