"""A slip as ESC/POS bytes for 58/80 mm Korean thermal belt printers (Bixolon, Sewoo, Epson Korean models).

The stream uses only these commands (``escpos_reader`` parses exactly this set and nothing else):

=====================  =====================  ==================================================================
bytes                  command                why
=====================  =====================  ==================================================================
``1B 40``              ESC @                  initialise: clear the buffer, reset every mode
``1C 26``              FS &                   Kanji (double-byte) mode on: on Korean models the double-byte set is
                                              KS X 1001 / CP949, so Hangul is sent as 2-byte CP949 codes; sent
                                              right after ESC @ because ESC @ may restore the DIP-switch default
``1B 61 n``            ESC a n                alignment: 0 left, 1 centre (title, QR, caption)
``1B 45 n``            ESC E n                emphasis (bold) 1 on / 0 off: title, reprint mark, amounts
``1D 21 n``            GS ! n                 character size: 0x11 double width and height (title), 0x01 double
                                              height only (amounts, so the column grid stays intact, and the
                                              title on 58 mm paper, where it would not fit), 0x00 normal
``0A``                 LF                     print the line and feed one line
``1D 28 6B ...``       GS ( k, cn = 0x31      the printer's own QR encoder: fn 65 model 2, fn 67 module size in
                                              dots, fn 69 error correction M (0x31), fn 80 store the data, fn 81
                                              print the symbol; the printer draws it crisply at its own resolution
``1B 64 n``            ESC d n                feed n lines so the caption clears the cutter
``1D 56 42 00``        GS V 66 0              feed to the cutting position and cut partially (the slip stays on
                                              the roll until the officer tears it off)
=====================  =====================  ==================================================================

Text is CP949; a character outside CP949 prints as ``?``, and control characters in the data (which could
otherwise smuggle printer commands) print as spaces. Columns are 12-dot font A cells: 48 on 80 mm paper (576
dots), 32 on 58 mm (384 dots); a CP949 double-byte character takes two, so a line's width in columns is its
CP949 byte count. Caveat: printers whose double-byte set is plain KS X 1001 (EUC-KR) lack the 8,822 extra UHC
syllables of CP949 (e.g. 똠, 햏) and print a blank or substitute glyph for them.
"""

from __future__ import annotations

from dataclasses import dataclass

from printing.slip import Field, Slip, SlipContent, slip_content
from printing.wrap import wrap_text

ENCODING = "cp949"

INIT = b"\x1b@"
KANJI_ON = b"\x1c&"
ALIGN_LEFT = b"\x1ba\x00"
ALIGN_CENTER = b"\x1ba\x01"
BOLD_ON = b"\x1bE\x01"
BOLD_OFF = b"\x1bE\x00"
SIZE_NORMAL = b"\x1d!\x00"
SIZE_DOUBLE = b"\x1d!\x11"
SIZE_TALL = b"\x1d!\x01"
LF = b"\n"
QR_MODEL_2 = b"\x1d(k\x04\x00\x31\x41\x32\x00"
QR_EC_M = b"\x1d(k\x03\x00\x31\x45\x31"
QR_PRINT = b"\x1d(k\x03\x00\x31\x51\x30"
CUT_PARTIAL = b"\x1dVB\x00"

FEED_BEFORE_CUT = 3
# side by side "label  value" only while the value column keeps this many columns; narrower paper stacks them
MIN_VALUE_COLUMNS = 24


@dataclass(frozen=True, slots=True)
class PaperProfile:
    """What one paper width allows: text columns of font A and the QR module size in dots."""

    columns: int
    qr_module_dots: int


PAPER: dict[int, PaperProfile] = {
    80: PaperProfile(columns=48, qr_module_dots=6),
    58: PaperProfile(columns=32, qr_module_dots=5),
}


def qr_size_command(module_dots: int) -> bytes:
    """GS ( k fn 67: QR module size in dots (1..16)."""
    if not 1 <= module_dots <= 16:
        raise ValueError("QR module size must be 1..16 dots")
    return b"\x1d(k\x03\x00\x31\x43" + bytes([module_dots])


def qr_store_command(data: bytes) -> bytes:
    """GS ( k fn 80: store ``data`` (1..7089 bytes) in the printer's QR symbol area; pL pH = len + 3."""
    if not 1 <= len(data) <= 7089:
        raise ValueError("QR data must be 1..7089 bytes")
    return b"\x1d(k" + (len(data) + 3).to_bytes(2, "little") + b"\x31\x50\x30" + data


def feed_command(lines: int) -> bytes:
    """ESC d n: print the buffer and feed ``lines`` lines."""
    return b"\x1bd" + bytes([lines])


def printable(text: str) -> str:
    """``text`` with every non-printable character (controls, separators, format marks) turned into a space."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else " " for char in text)


def text_columns(text: str) -> int:
    """Font A columns ``text`` takes: its CP949 byte count (an unencodable character prints as one ``?``)."""
    return len(text.encode(ENCODING, "replace"))


def render_escpos(slip: Slip, width_mm: int = 80) -> bytes:
    """The slip as one ESC/POS job for a ``width_mm`` (80 or 58) mm printer, ending with a partial cut.

    Pure function of ``slip``; the same slip gives the same bytes. Raises ``ValueError`` for another width.
    """
    if width_mm not in PAPER:
        raise ValueError(f"unsupported paper width {width_mm} mm; supported: {sorted(PAPER)}")
    return render_escpos_content(slip_content(slip), width_mm)


def render_escpos_content(content: SlipContent, width_mm: int = 80) -> bytes:
    """Any slip-shaped content (``SlipContent``: the parking slip, or the documents of ``printing.documents``) as
    one ESC/POS job, laid out exactly as ``render_escpos`` lays out a slip. ``content.qr_text`` must be ASCII.

    Raises ``ValueError`` for a width without a ``PAPER`` profile.
    """
    if width_mm not in PAPER:
        raise ValueError(f"unsupported paper width {width_mm} mm; supported: {sorted(PAPER)}")
    paper = PAPER[width_mm]
    out = _Job(paper.columns)

    out.raw(INIT + KANJI_ON)
    # double width and height when the title fits on one line; double height only on narrow paper
    title_scale = 2 if 2 * text_columns(content.title) <= paper.columns else 1
    out.raw(ALIGN_CENTER + BOLD_ON + (SIZE_DOUBLE if title_scale == 2 else SIZE_TALL))
    out.paragraph(content.title, scale=title_scale)
    out.raw(SIZE_NORMAL)
    if content.reprint_mark:
        out.paragraph(content.reprint_mark)
    out.raw(BOLD_OFF + ALIGN_LEFT)
    out.rule()

    label_columns = max(text_columns(field.label) for field in content.fields + content.issuer) + 1
    for field in content.fields:
        out.field(field, label_columns)
    out.rule()

    out.raw(BOLD_ON)
    out.paragraph(content.notices_heading)
    out.raw(BOLD_OFF)
    for sentence in content.notices:
        out.paragraph(sentence, first_prefix="- ", next_prefix="  ")
    out.rule()

    for field in content.issuer:
        out.field(field, label_columns)
    out.newline()

    out.raw(ALIGN_CENTER)
    out.raw(QR_MODEL_2 + qr_size_command(paper.qr_module_dots) + QR_EC_M)
    out.raw(qr_store_command(content.qr_text.encode("ascii")) + QR_PRINT)
    out.paragraph(content.qr_caption)
    out.raw(ALIGN_LEFT + feed_command(FEED_BEFORE_CUT) + CUT_PARTIAL)
    return out.getvalue()


class _Job:
    """An ESC/POS byte buffer that knows the paper's column count and lays text out on it."""

    def __init__(self, columns: int) -> None:
        self.columns = columns
        self.buffer = bytearray()

    def getvalue(self) -> bytes:
        return bytes(self.buffer)

    def raw(self, command: bytes) -> None:
        self.buffer += command

    def text(self, text: str) -> None:
        self.buffer += printable(text).encode(ENCODING, "replace")

    def newline(self) -> None:
        self.buffer += LF

    def rule(self) -> None:
        self.text("-" * self.columns)
        self.newline()

    def paragraph(self, text: str, *, scale: int = 1, first_prefix: str = "", next_prefix: str = "") -> None:
        """Wrap ``text`` to the paper at character width ``scale``; prefixes are printed at normal width."""
        indent = max(text_columns(first_prefix), text_columns(next_prefix))
        width = (self.columns - indent) // scale
        for index, line in enumerate(wrap_text(printable(text), width, text_columns)):
            self.text(first_prefix if index == 0 else next_prefix)
            self.text(line)
            self.newline()

    def field(self, field: Field, label_columns: int) -> None:
        """``label  value`` in two columns, or the label above an indented value when the paper is narrow."""
        value_columns = self.columns - label_columns
        stacked = value_columns < MIN_VALUE_COLUMNS
        if stacked:
            self.text(field.label)
            self.newline()
            label_columns, value_columns = 2, self.columns - 2
        for index, line in enumerate(wrap_text(printable(field.value), value_columns, text_columns)):
            if index == 0 and not stacked:
                self.text(field.label + " " * (label_columns - text_columns(field.label)))
            else:
                self.text(" " * label_columns)
            if field.emphasis:
                self.raw(BOLD_ON + SIZE_TALL)
                self.text(line)
                self.raw(SIZE_NORMAL + BOLD_OFF)
            else:
                self.text(line)
            self.newline()
        if field.note:
            for line in wrap_text(printable(field.note), value_columns, text_columns):
                self.text(" " * label_columns + line)
                self.newline()
