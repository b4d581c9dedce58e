"""The push's pure steps (sync/push: commands, decide) on events and loaded needs held in memory: no database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import protocol
from models.devices import NumberBlock
from models.review import Candidate
from sync.push import commands, decide
from sync.push.load import Needs
from sync.push.outcome import Outcome, SyncSettings

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
FACTS = decide.Facts(
    device_id="dev-1",
    jurisdiction="11110",
    officer_id=7,
    now=NOW,
    settings=SyncSettings(),
    pay_base_url="http://localhost",
    device_time=None,
    batch_skew=False,
    forcing=False,
)
PREV = "a" * 64


def event(type_: str, data: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "seq": 3,
        "type": type_,
        "notice_no": protocol.format_notice_no("11110", "26", 12),
        "base_version": None,
        "occurred_at": (NOW - timedelta(minutes=5)).isoformat(),
        "data": {"prev_hash": PREV, **data},
        **fields,
    }


def command(raw: dict[str, Any]) -> commands.Command | Outcome:
    header = commands.read_header(raw, [])
    assert isinstance(header, commands.Header)
    return commands.read_command(header, raw.get("base_version"))


def test_a_void_becomes_a_typed_command_with_the_version_the_device_knew() -> None:
    cmd = command(event(protocol.NOTICE_VOIDED, {"reason_code": protocol.VOID_REASONS[0]}, base_version=2))

    assert isinstance(cmd, commands.VoidNotice)
    assert (cmd.base_version, cmd.reason_code, cmd.prev_hash, cmd.header.seq) == (2, protocol.VOID_REASONS[0], PREV, 3)


def test_a_void_without_a_base_version_is_refused_before_anything_is_looked_up() -> None:
    cmd = command(event(protocol.NOTICE_VOIDED, {"reason_code": protocol.VOID_REASONS[0]}))

    assert isinstance(cmd, Outcome)
    assert (cmd.status, cmd.problems[0]["field"]) == (protocol.REJECTED, "base_version")


def test_an_unknown_type_and_an_unstorable_event_are_refused_by_the_header() -> None:
    unknown = commands.read_header(event("notice.teleported", {}), [])
    unstorable = commands.read_header(event(protocol.NOTICE_VOIDED, {}), ["data.memo"])

    assert isinstance(unknown, Outcome) and unknown.problems[0]["code"] == "unknown_event_type"
    assert isinstance(unstorable, Outcome) and unstorable.problems[0]["field"] == "data.memo"


def test_a_correction_that_changes_nothing_is_refused() -> None:
    cmd = command(event(protocol.NOTICE_CORRECTED, {"reason": "오기"}, base_version=1))

    assert isinstance(cmd, Outcome)
    assert cmd.problems[0]["message"] == "a correction must change at least one field"


def test_common_flags_name_a_broken_chain_a_skewed_clock_and_a_late_sync() -> None:
    long_ago = NOW - timedelta(days=4)
    skewed = decide.Facts(**{**FACTS.__dict__, "device_time": long_ago - timedelta(hours=1)})

    assert decide.common_flags(FACTS, PREV, PREV, NOW) == []
    assert decide.common_flags(skewed, PREV, "b" * 64, long_ago) == ["chain_broken", "clock_skew", "late_sync"]


def test_a_forced_event_whose_predecessor_is_missing_is_not_a_broken_chain() -> None:
    forcing = decide.Facts(**{**FACTS.__dict__, "forcing": True})

    assert decide.common_flags(forcing, PREV, None, NOW) == []
    assert decide.common_flags(FACTS, PREV, None, NOW) == ["chain_broken"]


def test_a_number_is_in_the_block_of_its_jurisdiction_year_and_serial_range() -> None:
    block = NumberBlock(id=1, jurisdiction="11110", year2="26", first_serial=1, last_serial=500)

    assert decide.own_block([block], protocol.format_notice_no("11110", "26", 500)) is block
    assert decide.own_block([block], protocol.format_notice_no("11110", "26", 501)) is None
    assert decide.own_block([block], protocol.format_notice_no("11110", "25", 5)) is None


def test_another_jurisdictions_number_is_invalid() -> None:
    refused = decide.invalid_number(FACTS, protocol.format_notice_no("26110", "26", 5))

    assert refused is not None and refused.problems[0]["code"] == "notice_no_invalid"
    assert decide.invalid_number(FACTS, protocol.format_notice_no("11110", "26", 5)) is None


def test_an_issue_with_an_unknown_violation_code_is_refused_without_a_session() -> None:
    data = {
        "kind": "parking",
        "violation_code": "NOPE",
        "schedule_key": "x",
        "amount": 40000,
        "reduced_amount": 32000,
        "opinion_deadline": "2026-03-20",
        "vehicle": {"plate": "12가3456", "type": protocol.VEHICLE_TYPES[0]},
        "place": {"address": "종로 1"},
        "observed_at": (NOW - timedelta(minutes=20)).isoformat(),
        "officer_id": 7,
        "qr": "http://localhost/p/x",
    }
    cmd = command(event(protocol.NOTICE_ISSUED, data))
    assert isinstance(cmd, commands.IssueNotice)

    outcome = decide.issue(FACTS, Needs(), cmd, PREV, [], taken_in_batch=False)

    assert isinstance(outcome, Outcome)
    assert outcome.problems[0]["code"] == "unknown_violation_code"


def test_a_written_candidate_wins_over_the_same_notice_accepted_in_the_batch() -> None:
    seen = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    accepted = Candidate("N1", "12가3456", "P01", seen, "종로 1", None, None)
    written = Candidate("N1", "12가3456", "P01", seen, "종로 1", None, None, id=41)
    other = Candidate("N2", "12가3456", "P01", seen, "종로 1", None, None)

    merged = decide.merged_candidates([written], [accepted, other])

    assert sorted((c.notice_no, c.id) for c in merged) == [("N1", 41), ("N2", None)]
