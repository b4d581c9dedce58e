"""The treasury bank's daily file (일일 수납 파일): fixed-width ASCII lines of 120 characters, one per receipt.

    H | bank code (3) | file date YYYYMMDD (8) | filler
    D | seq (6) | receipt id (20, left, space-padded) | kind (1: R receipt, C cancel) |
        channel (1: V virtual account, B bank/counter with 전자납부번호, S PG settlement) |
        reference (30, left) | amount (13, zero-padded won) | received at YYYYMMDDHHMMSS Asia/Seoul (14) |
        original receipt id (20, left; a cancellation's) | filler
    T | data lines (7) | sign (1: + or -) | net total (15: receipts minus cancellations) | filler

Trailing spaces may be missing (editors strip them); a longer line is an error. The parser reads the whole file
and reports every bad line (line number, field, what is wrong) in one ``DailyFileError``: a file with any bad line
is rejected whole (nothing imported) and the bank sends it again — a file is the bank's statement of record, and
half of one would reconcile against nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from models.treasury.message import MAX_AMOUNT, RECEIPT_ID, BankReport
from protocol import SEOUL

WIDTH = 120
KIND_CODES = {"R": "deposit", "C": "cancel"}
CHANNEL_CODES = {"V": "virtual_account", "B": "bank", "S": "settlement"}
_KIND_OF = {v: k for k, v in KIND_CODES.items()}
_CHANNEL_OF = {v: k for k, v in CHANNEL_CODES.items()}

# (name, start, end) of the data line's fields
FIELDS = (
    ("seq", 1, 7),
    ("receipt_id", 7, 27),
    ("kind", 27, 28),
    ("channel", 28, 29),
    ("reference", 29, 59),
    ("amount", 59, 72),
    ("received_at", 72, 86),
    ("original_receipt_id", 86, 106),
)


@dataclass(frozen=True)
class LineError:
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.message}"


class DailyFileError(ValueError):
    """The file has bad lines; nothing of it may be imported. ``errors`` lists every one."""

    def __init__(self, errors: list[LineError]) -> None:
        super().__init__("; ".join(str(e) for e in errors[:5]) + (" …" if len(errors) > 5 else ""))
        self.errors = errors


@dataclass(frozen=True)
class DailyFile:
    bank_code: str
    file_date: date
    records: list[tuple[int, BankReport]]  # (line number, report)
    total: int  # net: receipts minus cancellations


def _net(records: Iterable[BankReport]) -> int:
    return sum(r.amount if r.kind == "deposit" else -r.amount for r in records)


def write_daily_file(bank_code: str, file_date: date, records: list[BankReport]) -> str:
    """The file the bank would send (for tests and the sandbox); raises ``ValueError`` on a field that cannot fit."""
    lines = [f"H{bank_code:3.3}{file_date:%Y%m%d}".ljust(WIDTH)]
    for seq, r in enumerate(records, 1):
        for name, value, width in (
            ("receipt_id", r.receipt_id, 20),
            ("reference", r.reference, 30),
            ("original_receipt_id", r.original_receipt_id or "", 20),
        ):
            if len(value) > width or not value.isascii():
                raise ValueError(f"{name} {value!r} does not fit {width} ASCII characters")
        if not 0 <= r.amount < 10**13:
            raise ValueError(f"amount {r.amount} does not fit 13 digits")
        at = r.received_at.astimezone(SEOUL)
        line = (
            f"D{seq:06d}{r.receipt_id:<20}{_KIND_OF[r.kind]}{_CHANNEL_OF[r.channel]}{r.reference:<30}"
            f"{r.amount:013d}{at:%Y%m%d%H%M%S}{r.original_receipt_id or '':<20}"
        )
        lines.append(line.ljust(WIDTH))
    total = _net(records)
    lines.append(f"T{len(records):07d}{'-' if total < 0 else '+'}{abs(total):015d}".ljust(WIDTH))
    return "\n".join(lines) + "\n"


def parse_daily_file(data: bytes | str) -> DailyFile:
    """Read a daily file; raises ``DailyFileError`` listing every bad line (the whole file is refused)."""
    errors: list[LineError] = []
    if isinstance(data, bytes):
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError as exc:
            bad_line = data[: exc.start].count(b"\n") + 1
            raise DailyFileError([LineError(bad_line, "line", "not ASCII")]) from None
    else:
        text = data
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [line.removesuffix("\r") for line in lines]
    if not lines:
        raise DailyFileError([LineError(1, "header", "the file is empty")])
    bank_code, file_date = _header(lines[0], errors)
    records: list[tuple[int, BankReport]] = []
    trailer: tuple[int, int] | None = None
    for no, given in enumerate(lines[1:], 2):
        if len(given) > WIDTH:
            errors.append(LineError(no, "line", f"{len(given)} characters, at most {WIDTH}"))
            continue
        if not (given.isascii() and given.isprintable()):
            errors.append(LineError(no, "line", "not printable ASCII"))
            continue
        line = given.ljust(WIDTH)
        if trailer is not None:
            errors.append(LineError(no, "record_type", "a line after the trailer"))
        elif line[0] == "D":
            report = _data(no, line, bank_code, errors)
            if report is not None:
                records.append((no, report))
        elif line[0] == "T":
            trailer = _trailer(no, line, errors)
        else:
            errors.append(LineError(no, "record_type", f"{line[0]!r} is not D or T"))
    if trailer is None:
        errors.append(LineError(len(lines) + 1, "trailer", "missing: the file may be cut short"))
    elif not errors:
        count, total = trailer
        if count != len(records):
            errors.append(
                LineError(len(lines), "count", f"the trailer says {count} lines, the file has {len(records)}")
            )
        if total != _net(r for _, r in records):
            errors.append(
                LineError(
                    len(lines), "total", f"the trailer says {total}, the lines sum to {_net(r for _, r in records)}"
                )
            )
    seen: dict[str, int] = {}
    for no, r in records:
        if r.receipt_id in seen:
            errors.append(LineError(no, "receipt_id", f"{r.receipt_id} also on line {seen[r.receipt_id]}"))
        seen.setdefault(r.receipt_id, no)
    if errors:
        raise DailyFileError(sorted(errors, key=lambda e: e.line))
    assert file_date is not None and trailer is not None
    return DailyFile(bank_code, file_date, records, trailer[1])


def _header(line: str, errors: list[LineError]) -> tuple[str, date | None]:
    if len(line) > WIDTH or not line.startswith("H") or not (line.isascii() and line.isprintable()):
        errors.append(LineError(1, "record_type", "the first line must be the header (H)"))
        return "", None
    bank_code = line[1:4]
    if not (bank_code.isascii() and bank_code.isdigit() and len(bank_code) == 3):
        errors.append(LineError(1, "bank_code", f"{bank_code!r} is not 3 digits"))
    try:
        return bank_code, datetime.strptime(line[4:12], "%Y%m%d").date()
    except ValueError:
        errors.append(LineError(1, "file_date", f"{line[4:12]!r} is not YYYYMMDD"))
        return bank_code, None


def _data(no: int, line: str, bank_code: str, errors: list[LineError]) -> BankReport | None:
    f = {name: line[start:end] for name, start, end in FIELDS}
    before = len(errors)

    def bad(field: str, message: str) -> None:
        errors.append(LineError(no, field, message))

    if not f["seq"].isdigit():
        bad("seq", f"{f['seq']!r} is not 6 digits")
    receipt_id = f["receipt_id"].rstrip()
    if not RECEIPT_ID.fullmatch(receipt_id) or f["receipt_id"][0] == " ":
        bad("receipt_id", f"{f['receipt_id']!r} is not 1–20 letters, digits or hyphens, left-aligned")
    kind = KIND_CODES.get(f["kind"])
    if kind is None:
        bad("kind", f"{f['kind']!r} is not R or C")
    channel = CHANNEL_CODES.get(f["channel"])
    if channel is None:
        bad("channel", f"{f['channel']!r} is not V, B or S")
    reference = f["reference"].strip()
    if not reference and kind != "cancel":
        bad("reference", "empty")
    amount = int(f["amount"]) if f["amount"].isascii() and f["amount"].isdigit() else None
    if amount is None:
        bad("amount", f"{f['amount']!r} is not 13 digits")
    elif not 0 < amount < MAX_AMOUNT:
        bad("amount", f"{amount} is out of range")
    try:
        received_at = datetime.strptime(f["received_at"], "%Y%m%d%H%M%S").replace(tzinfo=SEOUL)
    except ValueError:
        bad("received_at", f"{f['received_at']!r} is not YYYYMMDDHHMMSS")
    original = f["original_receipt_id"].strip() or None
    if kind == "cancel" and (original is None or not RECEIPT_ID.fullmatch(original)):
        bad("original_receipt_id", "a cancellation names the receipt it cancels")
    if kind == "deposit" and original is not None:
        bad("original_receipt_id", "only a cancellation names an original receipt")
    if line[106:].strip():
        bad("filler", "must be blank")
    if len(errors) > before:
        return None
    assert kind is not None and channel is not None and amount is not None
    return BankReport(bank_code, receipt_id, kind, channel, reference, amount, received_at, original)


def _trailer(no: int, line: str, errors: list[LineError]) -> tuple[int, int] | None:
    count, sign, total = line[1:8], line[8], line[9:24]
    ok = True
    if not count.isdigit():
        errors.append(LineError(no, "count", f"{count!r} is not 7 digits"))
        ok = False
    if sign not in "+-" or not total.isdigit():
        errors.append(LineError(no, "total", f"{sign + total!r} is not a sign and 15 digits"))
        ok = False
    if not ok:
        return (0, 0)
    return int(count), -int(total) if sign == "-" else int(total)
