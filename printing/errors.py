"""The exceptions ``printing`` raises: one base class, one subclass per way a print job can go wrong."""

from __future__ import annotations

from collections.abc import Sequence


class PrintingError(Exception):
    """Base class of every error raised by ``printing``."""


class InvalidSlipError(PrintingError, ValueError):
    """A ``Slip`` field holds a value no notice may carry; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class FontNotFoundError(PrintingError):
    """No usable Korean TrueType font: ``searched`` lists the paths that were tried, in order."""

    def __init__(self, searched: Sequence[str], reason: str = "none of these fonts exists") -> None:
        tried = ", ".join(searched)
        super().__init__(
            f"no usable Korean font ({reason}); tried: {tried}. "
            "Install one (Debian: apt-get install fonts-nanum) or pass font_path=."
        )
        self.searched = tuple(searched)
        self.reason = reason


class EscposParseError(PrintingError, ValueError):
    """``read_escpos`` met bytes outside the ESC/POS subset ``render_escpos`` emits; ``offset`` is where."""

    def __init__(self, offset: int, message: str) -> None:
        super().__init__(f"byte {offset}: {message}")
        self.offset = offset
        self.message = message
