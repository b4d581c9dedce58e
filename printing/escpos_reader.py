"""Read back the ESC/POS subset that ``printing.escpos`` emits: for tests and for a plain-text preview.

The reader is deliberately strict: any byte or command outside that subset (see the table in
``printing.escpos``), a parameter out of range, a truncated command, a double-byte character outside Kanji mode
or text left unprinted at the end raises ``EscposParseError`` with the offset, instead of guessing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from printing.errors import EscposParseError

_ENCODING = "cp949"
_ESC, _FS, _GS, _LF = 0x1B, 0x1C, 0x1D, 0x0A
_QR_FUNCTIONS = {65: "model", 67: "module size", 69: "error correction", 80: "store", 81: "print"}


@dataclass(frozen=True, slots=True)
class EscposDocument:
    """What the printer would put on paper.

    ``lines``: each printed text line (blank lines included, trailing spaces kept); ``line_widths``: the font A
    columns each line takes after character scaling (a double-width Hangul character counts 4); ``qr_payloads``:
    the data of each QR symbol printed, in order; ``cut``: whether the job cuts the paper.
    """

    lines: list[str] = field(default_factory=list)
    line_widths: list[int] = field(default_factory=list)
    qr_payloads: list[str] = field(default_factory=list)
    cut: bool = False


def read_escpos(data: bytes) -> EscposDocument:
    """Parse ``data`` (one or more jobs from ``render_escpos``) into an ``EscposDocument``.

    Raises ``EscposParseError`` on anything ``render_escpos`` would not emit.
    """
    return _Reader(data).run()


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.lines: list[str] = []
        self.line_widths: list[int] = []
        self.qr_payloads: list[str] = []
        self.cut = False
        self.kanji = False
        self.width_scale = 1
        self.line = bytearray()
        self.line_width = 0
        self.qr_stored: bytes | None = None

    # --- plumbing ---

    def fail(self, message: str, offset: int | None = None) -> EscposParseError:
        return EscposParseError(self.pos if offset is None else offset, message)

    def take(self, count: int, what: str) -> bytes:
        if self.pos + count > len(self.data):
            raise self.fail(f"truncated {what}: needs {count} more byte(s)")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def byte(self, what: str) -> int:
        return self.take(1, what)[0]

    def flush_line(self) -> None:
        try:
            text = self.line.decode(_ENCODING)
        except UnicodeDecodeError as exc:  # cannot happen for pairs checked in text(), kept as a guard
            raise self.fail(f"undecodable text: {exc}") from exc
        self.lines.append(text)
        self.line_widths.append(self.line_width)
        self.line.clear()
        self.line_width = 0

    def require_line_start(self, what: str, start: int) -> None:
        if self.line:
            raise self.fail(f"{what} in the middle of a line (text {bytes(self.line)!r} is pending)", start)

    # --- the grammar ---

    def run(self) -> EscposDocument:
        while self.pos < len(self.data):
            start = self.pos
            code = self.byte("byte")
            if code == _LF:
                self.flush_line()
            elif 0x20 <= code <= 0x7E:
                self.line.append(code)
                self.line_width += self.width_scale
            elif code >= 0x80:
                self.double_byte(code, start)
            elif code == _ESC:
                self.esc(start)
            elif code == _GS:
                self.gs(start)
            elif code == _FS:
                self.fs(start)
            else:
                raise self.fail(f"unexpected control byte 0x{code:02X}", start)
        if self.line:
            raise self.fail(f"text {bytes(self.line)!r} after the last line feed would never print")
        return EscposDocument(self.lines, self.line_widths, self.qr_payloads, self.cut)

    def double_byte(self, lead: int, start: int) -> None:
        if not self.kanji:
            raise self.fail(f"byte 0x{lead:02X} outside Kanji mode (FS & was not sent)", start)
        trail = self.byte("double-byte character")
        pair = bytes([lead, trail])
        try:
            pair.decode(_ENCODING)
        except UnicodeDecodeError as exc:
            raise self.fail(f"0x{pair.hex().upper()} is not a CP949 character", start) from exc
        self.line += pair
        self.line_width += 2 * self.width_scale

    def esc(self, start: int) -> None:
        command = self.byte("ESC command")
        if command == 0x40:  # ESC @
            self.kanji = False
            self.width_scale = 1
            self.line.clear()
            self.line_width = 0
        elif command == 0x61:  # ESC a n
            if self.byte("ESC a") not in (0, 1, 2, 48, 49, 50):
                raise self.fail("ESC a: alignment must be 0..2 or 48..50", start)
        elif command == 0x45:  # ESC E n
            if self.byte("ESC E") not in (0, 1):
                raise self.fail("ESC E: emphasis must be 0 or 1", start)
        elif command == 0x64:  # ESC d n
            lines = self.byte("ESC d")
            if self.line and lines:
                self.flush_line()
                lines -= 1
            for _ in range(lines):
                self.flush_line()
        else:
            raise self.fail(f"unknown command ESC 0x{command:02X}", start)

    def fs(self, start: int) -> None:
        command = self.byte("FS command")
        if command != 0x26:  # FS &
            raise self.fail(f"unknown command FS 0x{command:02X}", start)
        self.kanji = True

    def gs(self, start: int) -> None:
        command = self.byte("GS command")
        if command == 0x21:  # GS ! n
            size = self.byte("GS !")
            if size & 0x88:
                raise self.fail(f"GS !: size 0x{size:02X} beyond 8x", start)
            self.width_scale = (size >> 4) + 1
        elif command == 0x28:  # GS ( k
            self.qr(start)
        elif command == 0x56:  # GS V m [n]
            mode = self.byte("GS V")
            if mode in (65, 66):
                self.byte("GS V feed")
            elif mode not in (0, 1, 48, 49):
                raise self.fail(f"GS V: unknown cut mode {mode}", start)
            self.require_line_start("GS V cut", start)
            self.cut = True
        else:
            raise self.fail(f"unknown command GS 0x{command:02X}", start)

    def qr(self, start: int) -> None:
        if self.byte("GS ( function") != 0x6B:
            raise self.fail("GS ( : only GS ( k (2D symbols) is supported", start)
        low, high = self.take(2, "GS ( k length")
        body = self.take(low + 256 * high, "GS ( k parameters")
        if len(body) < 2 or body[0] != 49:
            raise self.fail("GS ( k: only cn = 49 (QR Code) is supported", start)
        function, args = body[1], body[2:]
        expected = {65: 2, 67: 1, 69: 1, 81: 1}
        if function not in _QR_FUNCTIONS:
            raise self.fail(f"GS ( k: unknown QR function fn = {function}", start)
        if function in expected and len(args) != expected[function]:
            raise self.fail(f"GS ( k: QR {_QR_FUNCTIONS[function]} takes {expected[function]} byte(s)", start)
        if function == 65 and (args[0] not in (49, 50) or args[1] != 0):
            raise self.fail("GS ( k: QR model must be 1 or 2", start)
        elif function == 67 and not 1 <= args[0] <= 16:
            raise self.fail("GS ( k: QR module size must be 1..16", start)
        elif function == 69 and not 48 <= args[0] <= 51:
            raise self.fail("GS ( k: QR error correction must be 48..51 (L, M, Q, H)", start)
        elif function == 80:
            if len(args) < 2 or args[0] != 48:
                raise self.fail("GS ( k: QR store needs m = 48 and at least one data byte", start)
            self.qr_stored = bytes(args[1:])
        elif function == 81:
            if args[0] != 48:
                raise self.fail("GS ( k: QR print needs m = 48", start)
            if self.qr_stored is None:
                raise self.fail("GS ( k: QR print with no data stored", start)
            self.require_line_start("QR print", start)
            try:
                self.qr_payloads.append(self.qr_stored.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise self.fail("GS ( k: QR data is not UTF-8 text", start) from exc
