"""The postal service (e-그린우편, 우체국 전자우편) adapter: the ``PostalService`` Protocol, the manifest format we
hand it with a run's merged PDF, and ``SandboxPostal``, the default (``JINGSU_POSTAL_NAME=sandbox``).

e-그린우편 prints, folds, envelopes and mails what an agency uploads. Its real upload format is not public to us, so
the manifest below is ours, kept in this one module: a bridge to the real service converts it here and nowhere else.

Manifest format ``EGREEN1`` (one text file per run, **UTF-8** without BOM, lines end in CRLF, fields separated by
``|``; a ``|``, tab or line break inside a value is written as a space, so the file always splits cleanly)::

    H|EGREEN1|<sender code>|<sender name>|<run id>|<YYYYMMDD mailing date>|<pieces>|<PDF file name>
    D|<seq>|<document no>|<postal code>|<addressee name>|<address>|<pages>|<first page>|<last page>
    …  one D line per mail piece, seq 1..n in PDF order
    T|<pieces>|<total pages>

- sender code: the 5-digit jurisdiction code; sender name: the authority as printed (``서울특별시 종로구청``);
- document no: the number printed on the document (``사전통지-2026-00000123``); it is the piece's reference;
- postal code: 5 digits, or empty when the addressee's address has none (the post's address refinement fills it);
- pages: the piece's pages in the merged PDF, ``first page``..``last page`` 1-based and inclusive; pieces follow
  one another without gaps, so the trailer's total is the PDF's page count.

UTF-8 rather than CP949: a name or address may hold a character outside KS X 1001 (옛 한글, rare 한자), and a run
must not fail on one person's name; a bridge that needs CP949 transcodes and reports what it could not.

Personal data: the manifest necessarily carries names and addresses. It is written only under the run's directory
(and, by the sandbox, under ``<var_dir>/postal``); nothing in this module logs a value of it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import TracebackType
from typing import Protocol

import pypdfium2 as pdfium

FORMAT = "EGREEN1"
ENCODING = "utf-8"
NEWLINE = "\r\n"
SEPARATOR = "|"
_UNSAFE = re.compile(r"[|\t\r\n\x00-\x1f\x7f]")
_POSTAL = re.compile(r"^[0-9]{5}$")
_JURISDICTION = re.compile(r"^[0-9]{5}$")


class PostalError(Exception):
    """Base of every postal adapter error."""


class ManifestError(PostalError):
    """A manifest that breaks the format: ``line`` (1-based, 0 for the file as a whole) and what is wrong."""

    def __init__(self, line: int, detail: str) -> None:
        super().__init__(f"manifest line {line}: {detail}")
        self.line = line
        self.detail = detail


class PostalRefused(PostalError):
    """The postal service refused the submission (its manifest and PDF disagree, or the service said no)."""


@dataclass(frozen=True)
class ManifestHeader:
    sender_code: str
    sender_name: str
    run_id: int
    mailed_on: date
    pieces: int
    pdf_name: str


@dataclass(frozen=True)
class MailPiece:
    """One envelope: its document, where it goes, and its pages in the merged PDF.

    Its ``repr`` leaves the name and address out (tracebacks and logs never carry them)."""

    seq: int
    document_no: str
    postal_code: str
    name: str
    address: str
    first_page: int
    last_page: int

    @property
    def pages(self) -> int:
        return self.last_page - self.first_page + 1

    def __repr__(self) -> str:
        return f"MailPiece(seq={self.seq}, document_no={self.document_no!r}, pages={self.first_page}-{self.last_page})"


@dataclass(frozen=True)
class Manifest:
    header: ManifestHeader
    pieces: tuple[MailPiece, ...]

    @property
    def total_pages(self) -> int:
        return self.pieces[-1].last_page if self.pieces else 0


def clean(value: str) -> str:
    """A value as the manifest writes it: separators and control characters become spaces, runs of spaces one."""
    return " ".join(_UNSAFE.sub(" ", value).split())


class ManifestWriter:
    """Writes a manifest piece by piece (a run never holds all its lines), then the trailer on ``close``.

    ``close`` raises ``ManifestError`` when the pieces written are not the count the header announced; the file is
    then left incomplete (the caller deletes its run directory).
    """

    def __init__(self, path: Path, header: ManifestHeader) -> None:
        if not _JURISDICTION.fullmatch(header.sender_code):
            raise ManifestError(1, "sender code must be 5 digits")
        self._file = open(path, "w", encoding=ENCODING, newline="")
        self._header = header
        self._count = 0
        self._pages = 0
        self._line(
            "H",
            FORMAT,
            header.sender_code,
            clean(header.sender_name),
            str(header.run_id),
            header.mailed_on.strftime("%Y%m%d"),
            str(header.pieces),
            clean(header.pdf_name),
        )

    def _line(self, *fields: str) -> None:
        self._file.write(SEPARATOR.join(fields) + NEWLINE)

    def add(self, piece: MailPiece) -> None:
        line = self._count + 2
        if piece.seq != self._count + 1:
            raise ManifestError(line, f"seq {piece.seq} should be {self._count + 1}")
        if piece.first_page != self._pages + 1 or piece.last_page < piece.first_page:
            raise ManifestError(line, "pages must follow the previous piece's without a gap")
        if piece.postal_code and not _POSTAL.fullmatch(piece.postal_code):
            raise ManifestError(line, "postal code must be 5 digits or empty")
        self._line(
            "D",
            str(piece.seq),
            clean(piece.document_no),
            piece.postal_code,
            clean(piece.name),
            clean(piece.address),
            str(piece.pages),
            str(piece.first_page),
            str(piece.last_page),
        )
        self._count += 1
        self._pages = piece.last_page

    def close(self) -> None:
        try:
            if self._count != self._header.pieces:
                raise ManifestError(0, f"{self._count} pieces written, the header announced {self._header.pieces}")
            self._line("T", str(self._count), str(self._pages))
        finally:
            self._file.close()

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self._file.close()


def write_manifest(path: Path, header: ManifestHeader, pieces: Iterable[MailPiece]) -> None:
    """The whole manifest at once (tests, small runs)."""
    with ManifestWriter(path, header) as writer:
        for piece in pieces:
            writer.add(piece)


def _int(value: str, line: int, what: str) -> int:
    if not value.isascii() or not value.isdigit():
        raise ManifestError(line, f"{what} must be a number")
    return int(value)


def parse_manifest(data: bytes) -> Manifest:
    """Read a manifest back and check it whole: header first, trailer last, pieces numbered 1..n, pages without
    gaps, counts and totals as announced. Raises ``ManifestError`` naming the first bad line."""
    try:
        text = data.decode(ENCODING)
    except UnicodeDecodeError as exc:
        raise ManifestError(0, f"not {ENCODING}") from exc
    if not text.endswith(NEWLINE):
        raise ManifestError(0, "the file must end with a line break (CRLF)")
    lines = text[: -len(NEWLINE)].split(NEWLINE)
    if len(lines) < 2:
        raise ManifestError(0, "a manifest has a header and a trailer")
    head = lines[0].split(SEPARATOR)
    if len(head) != 8 or head[0] != "H" or head[1] != FORMAT:
        raise ManifestError(1, f"the header must be H|{FORMAT}|… with 8 fields")
    if not _JURISDICTION.fullmatch(head[2]):
        raise ManifestError(1, "sender code must be 5 digits")
    try:
        mailed_on = date(int(head[5][:4]), int(head[5][4:6]), int(head[5][6:8]))
    except ValueError as exc:
        raise ManifestError(1, "the mailing date must be YYYYMMDD") from exc
    header = ManifestHeader(
        head[2], head[3], _int(head[4], 1, "run id"), mailed_on, _int(head[6], 1, "pieces"), head[7]
    )
    pieces: list[MailPiece] = []
    pages = 0
    for number, line in enumerate(lines[1:-1], start=2):
        parts = line.split(SEPARATOR)
        if len(parts) != 9 or parts[0] != "D":
            raise ManifestError(number, "a piece is D|seq|document no|postal code|name|address|pages|first|last")
        seq, count, first, last = (_int(parts[i], number, what) for i, what in
                                   ((1, "seq"), (6, "pages"), (7, "first page"), (8, "last page")))  # fmt: skip
        if seq != len(pieces) + 1:
            raise ManifestError(number, f"seq {seq} should be {len(pieces) + 1}")
        if first != pages + 1 or last < first or count != last - first + 1:
            raise ManifestError(number, "pages must follow the previous piece's without a gap and match the count")
        if parts[3] and not _POSTAL.fullmatch(parts[3]):
            raise ManifestError(number, "postal code must be 5 digits or empty")
        if not parts[2] or not parts[4] or not parts[5]:
            raise ManifestError(number, "document no, name and address are required")
        pieces.append(MailPiece(seq, parts[2], parts[3], parts[4], parts[5], first, last))
        pages = last
    tail = lines[-1].split(SEPARATOR)
    end = len(lines)
    if len(tail) != 3 or tail[0] != "T":
        raise ManifestError(end, "the trailer must be T|pieces|total pages")
    if _int(tail[1], end, "pieces") != len(pieces) or len(pieces) != header.pieces:
        raise ManifestError(end, f"{len(pieces)} pieces listed, header {header.pieces}, trailer {tail[1]}")
    if _int(tail[2], end, "total pages") != pages:
        raise ManifestError(end, f"the pieces have {pages} pages, the trailer says {tail[2]}")
    return Manifest(header, tuple(pieces))


def pdf_page_count(path: Path) -> int:
    document = pdfium.PdfDocument(str(path))
    try:
        return len(document)
    finally:
        document.close()


def _file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


class PostalService(Protocol):
    """The post as a print run uses it: hand over a run's manifest and merged PDF, get a receipt id back.

    ``submit`` must be idempotent for the same run and manifest, and for the same ``idempotency_key`` (the outbox
    row's: a hand-over delivered again after a crash between the post's answer and our commit gets the same receipt,
    not a second mailing). Raises ``ManifestError`` for a manifest that breaks the format and ``PostalRefused``
    when the service says no."""

    @property
    def name(self) -> str: ...

    def submit(self, manifest_path: Path, pdf_path: Path, *, idempotency_key: str | None = None) -> str: ...


class SandboxPostal:
    """The default postal service: validates the manifest (format, counts, the PDF's page count) and stores a copy
    with its receipt under ``<var_dir>/postal/``; the receipt id is derived from the run and the manifest's hash, so
    submitting the same run again answers the same receipt. Like the other sandboxes it counts, per idempotency key,
    the deliveries that arrived and the effects applied (``idempotency.json``: a mailing is applied once)."""

    name = "sandbox"

    def __init__(self, root: Path) -> None:
        self.root = root

    def submit(self, manifest_path: Path, pdf_path: Path, *, idempotency_key: str | None = None) -> str:
        data = manifest_path.read_bytes()
        manifest = parse_manifest(data)
        pages = pdf_page_count(pdf_path)
        if pages != manifest.total_pages:
            raise PostalRefused(f"the PDF has {pages} pages, the manifest lists {manifest.total_pages}")
        digest = hashlib.sha256(data).hexdigest()
        receipt = f"EGP-SBX-{manifest.header.run_id:08d}-{digest[:10].upper()}"
        self.root.mkdir(parents=True, exist_ok=True)
        applied = not (self.root / f"{receipt}.txt").exists()
        if idempotency_key is not None:
            self._count(idempotency_key, applied)
        if not applied:
            return receipt
        (self.root / f"{receipt}.txt").write_bytes(data)
        summary = {
            "receipt": receipt,
            "run_id": manifest.header.run_id,
            "sender_code": manifest.header.sender_code,
            "pieces": len(manifest.pieces),
            "pages": pages,
            "pdf_sha256": _file_sha256(pdf_path),
            "manifest_sha256": digest,
        }
        (self.root / f"{receipt}.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
        return receipt

    def _count(self, key: str, applied: bool) -> None:
        path = self.root / "idempotency.json"
        counts = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        seen = counts.setdefault(key, {"deliveries": 0, "effects": 0})
        seen["deliveries"] += 1
        seen["effects"] += int(applied)
        path.write_text(json.dumps(counts, indent=2, sort_keys=True), encoding="utf-8")

    def idempotency(self) -> dict[str, dict[str, int]]:
        """Per key: how many deliveries arrived and how many effects were applied."""
        path = self.root / "idempotency.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


@dataclass(frozen=True)
class PostalSettings:
    """Which postal service (``JINGSU_POSTAL_NAME``) and the var folder the sandbox keeps its copies under
    (``<var_dir>/postal``)."""

    name: str
    var_dir: Path


def connect(settings: PostalSettings) -> PostalService:
    """The postal service ``settings.name`` names; only the sandbox exists until the real bridge does."""
    if settings.name == SandboxPostal.name:
        return SandboxPostal(settings.var_dir / "postal")
    raise PostalError(f"unknown postal service {settings.name!r} (JINGSU_POSTAL_NAME)")
