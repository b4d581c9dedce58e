"""The treasury bank's daily file (fixed width) and the SEN message: written, read back, and every bad line or field
named (no database)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from models.treasury import daily_file, sen
from models.treasury.message import BankReport
from protocol import SEOUL

DAY = date(2026, 11, 25)
AT = datetime(2026, 11, 25, 14, 5, 9, tzinfo=SEOUL)
DEPOSIT = BankReport("088", "R000001", "deposit", "virtual_account", "56200000000011", 32000, AT)
BY_NUMBER = BankReport("088", "R000002", "deposit", "bank", "1111026410000001234", 40000, AT)
CREDIT = BankReport("088", "AG-1", "deposit", "settlement", "sandbox:20261125", 9_600_000, AT)
CANCEL = BankReport("088", "C000001", "cancel", "virtual_account", "56200000000011", 32000, AT, "R000001")
KEY = "5e" * 32


def test_a_written_file_reads_back_to_the_same_receipts() -> None:
    text = daily_file.write_daily_file("088", DAY, [DEPOSIT, BY_NUMBER, CREDIT, CANCEL])
    lines = text.splitlines()
    assert all(len(line) == daily_file.WIDTH for line in lines) and len(lines) == 6
    assert lines[0].startswith("H08820261125") and lines[-1].startswith("T0000004+000000009640000")
    parsed = daily_file.parse_daily_file(text.encode())
    assert (parsed.bank_code, parsed.file_date, parsed.total) == ("088", DAY, 9_640_000)
    assert [r for _, r in parsed.records] == [DEPOSIT, BY_NUMBER, CREDIT, CANCEL]
    assert [n for n, _ in parsed.records] == [2, 3, 4, 5]


def test_stripped_trailing_spaces_and_crlf_are_read_the_same() -> None:
    text = daily_file.write_daily_file("088", DAY, [DEPOSIT])
    stripped = "\r\n".join(line.rstrip() for line in text.splitlines())
    assert daily_file.parse_daily_file(stripped).records == daily_file.parse_daily_file(text).records


def _with(line_no: int, start: int, end: int, value: str) -> str:
    lines = daily_file.write_daily_file("088", DAY, [DEPOSIT, BY_NUMBER]).splitlines()
    line = lines[line_no - 1]
    lines[line_no - 1] = line[:start] + value.ljust(end - start) + line[end:]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("start", "end", "value", "field"),
    [
        (59, 72, "0000000032x00", "amount"),
        (59, 72, "0000000000000", "amount"),
        (72, 86, "20261132140509", "received_at"),
        (27, 28, "X", "kind"),
        (28, 29, "Q", "channel"),
        (7, 27, " R1", "receipt_id"),
        (29, 59, "", "reference"),
        (86, 106, "R000001", "original_receipt_id"),
        (1, 7, "00000a", "seq"),
        (110, 111, "x", "filler"),
    ],
)
def test_each_bad_field_is_named_with_its_line_and_nothing_is_read(start: int, end: int, value: str, field: str):
    with pytest.raises(daily_file.DailyFileError) as caught:
        daily_file.parse_daily_file(_with(3, start, end, value))
    assert [(e.line, e.field) for e in caught.value.errors] == [(3, field)]
    assert "line 3" in str(caught.value)


def test_every_bad_line_is_reported_at_once() -> None:
    text = _with(2, 59, 72, "x" * 13)
    lines = text.splitlines()
    lines[2] = lines[2][:27] + "Z" + lines[2][28:]
    with pytest.raises(daily_file.DailyFileError) as caught:
        daily_file.parse_daily_file("\n".join(lines))
    assert [(e.line, e.field) for e in caught.value.errors] == [(2, "amount"), (3, "kind")]


def test_a_file_cut_short_or_with_a_wrong_trailer_is_refused() -> None:
    text = daily_file.write_daily_file("088", DAY, [DEPOSIT, BY_NUMBER])
    with pytest.raises(daily_file.DailyFileError, match="trailer: missing"):
        daily_file.parse_daily_file("\n".join(text.splitlines()[:-1]))
    with pytest.raises(daily_file.DailyFileError, match="count"):
        daily_file.parse_daily_file("\n".join(text.splitlines()[:2] + text.splitlines()[3:]))
    tampered = text.replace("+000000000072000", "+000000000072001")
    with pytest.raises(daily_file.DailyFileError, match="total"):
        daily_file.parse_daily_file(tampered)


def test_a_receipt_twice_in_one_file_a_long_line_a_bad_header_and_non_ascii_are_refused() -> None:
    with pytest.raises(daily_file.DailyFileError, match="also on line 2"):
        daily_file.parse_daily_file(daily_file.write_daily_file("088", DAY, [DEPOSIT, DEPOSIT]))
    text = daily_file.write_daily_file("088", DAY, [DEPOSIT])
    with pytest.raises(daily_file.DailyFileError, match="line 2: line: 121 characters"):
        daily_file.parse_daily_file(text.replace(text.splitlines()[1], text.splitlines()[1] + "x"))
    with pytest.raises(daily_file.DailyFileError, match="file_date"):
        daily_file.parse_daily_file(text.replace("H08820261125", "H08820261399"))
    with pytest.raises(daily_file.DailyFileError, match="line 2: line: not ASCII"):
        daily_file.parse_daily_file(text.replace("R000001", "R00000가").encode())
    with pytest.raises(daily_file.DailyFileError, match="line 2: line: not printable ASCII"):
        daily_file.parse_daily_file(text.replace("R000001", "R00\x0001"))
    with pytest.raises(daily_file.DailyFileError, match="empty"):
        daily_file.parse_daily_file(b"")


def test_the_writer_refuses_what_does_not_fit() -> None:
    with pytest.raises(ValueError, match="reference"):
        daily_file.write_daily_file("088", DAY, [BankReport("088", "R1", "deposit", "bank", "1" * 31, 1, AT)])


# --- SEN ------------------------------------------------------------------------------------------------------------


def test_a_sen_message_reads_back_and_its_signature_verifies_only_fresh_and_unaltered() -> None:
    body = json.dumps(sen.message(CANCEL)).encode()
    assert sen.parse_message(json.loads(body)) == CANCEL
    now = datetime(2026, 11, 25, 5, 0, tzinfo=UTC)
    ts = str(int(now.timestamp()))
    signature = sen.sign(KEY, ts, body)
    assert sen.verify(KEY, ts, signature, body, now)
    assert sen.verify(KEY, ts, signature.upper(), body, now + timedelta(minutes=4))
    assert not sen.verify(KEY, ts, signature, body, now + timedelta(minutes=6))  # stale: a replay
    assert not sen.verify(KEY, ts, signature, body.replace(b"32000", b"32001"), now)
    assert not sen.verify("other", ts, signature, body, now)
    assert not sen.verify(KEY, None, signature, body, now)
    assert not sen.verify(KEY, "1e9", signature, body, now)
    assert not sen.verify("", ts, sen.sign("", ts, body), body, now)  # no key configured: nothing verifies


def test_a_malformed_sen_message_names_every_bad_field() -> None:
    with pytest.raises(sen.SenError) as caught:
        sen.parse_message(
            {
                "bank_code": "88",
                "receipt_id": "R 1",
                "kind": "refund",
                "channel": "card",
                "amount": -5,
                "received_at": "2026-11-25T14:00:00",
                "extra": 1,
            }
        )
    assert set(caught.value.errors) == {
        "bank_code",
        "receipt_id",
        "kind",
        "channel",
        "amount",
        "received_at",
        "extra",
        "reference",
    }
    with pytest.raises(sen.SenError) as caught:
        sen.parse_message({**sen.message(DEPOSIT), "kind": "cancel", "original_receipt_id": None})
    assert set(caught.value.errors) == {"original_receipt_id"}
    with pytest.raises(sen.SenError):
        sen.parse_message({**sen.message(DEPOSIT), "amount": True})
    with pytest.raises(sen.SenError):
        sen.parse_message([])
    with pytest.raises(sen.SenError) as caught:
        sen.parse_message({**sen.message(CANCEL), "reference": "a\x00b", "original_receipt_id": "R 1"})
    assert set(caught.value.errors) == {"reference", "original_receipt_id"}
