"""PROTOCOL.md §2 (push) as a device sees it: a real gunicorn on its own database, spoken to over HTTP.

One server serves the module; every test enrolls its own devices, so no two tests share a ``seq`` counter, a hash
chain or a number block. What the server did is checked through the back office (as ``clerk.11110``), and for
personal data in the database itself.
"""

from __future__ import annotations

import copy
import itertools
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

import protocol
from sync.push.envelope import MAX_DEPTH
from tests.conftest import LiveServer
from tests.support.device import Device, now_kst, staff_token

PROBLEM_JSON = "application/problem+json"
Event = dict[str, Any]

# serials no block of this module's devices reaches (blocks are handed out from 1 upwards, 500 at a time)
_far_serials = itertools.count(9_000_000)


# --- fixtures and helpers ------------------------------------------------------------------------------------------


@pytest.fixture
def client(module_live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=module_live_server.url, timeout=20) as http:
        yield http


class BackOffice:
    """The back office as a clerk of 종로구 sees it."""

    def __init__(self, client: httpx.Client, login: str = "clerk.11110") -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {staff_token(client, login)}"}

    def notice(self, notice_no: str) -> dict[str, Any]:
        response = self.client.get(f"/api/v1/notices/{notice_no}", headers=self.headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def notice_status_code(self, notice_no: str) -> int:
        return self.client.get(f"/api/v1/notices/{notice_no}", headers=self.headers).status_code

    def notices(self, **params: Any) -> list[dict[str, Any]]:
        response = self.client.get("/api/v1/notices", params=params, headers=self.headers)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    def charges(self, notice_no: str) -> list[dict[str, Any]]:
        return [e for e in self.notice(notice_no)["entries"] if e["kind"] == "charge"]


@pytest.fixture(scope="module")
def office(module_live_server: LiveServer) -> Iterator[BackOffice]:
    with httpx.Client(base_url=module_live_server.url, timeout=20) as http:
        yield BackOffice(http)


@pytest.fixture(scope="module")
def admin_token(office: BackOffice) -> str:
    return staff_token(office.client, "admin")


@pytest.fixture
def enroll(client: httpx.Client, admin_token: str) -> Callable[[], Device]:
    """``enroll()``: a new device of 종로구, enrolled, signed in and pulled (``Device.enrolled``, one admin sign-in
    for the module: argon2 is what a test here mostly waits for)."""
    return lambda: Device.enrolled(client, admin_token=admin_token)


def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def statuses(body: dict[str, Any]) -> list[tuple[int, str]]:
    return [(r["seq"], r["status"]) for r in body["results"]]


def problem_codes(result: dict[str, Any]) -> list[str]:
    return [p["code"] for p in result["problems"]]


def far_number(device: Device) -> str:
    """A valid number of the device's jurisdiction and year that lies in no block."""
    year2 = device.numbers[0][5:7]
    return protocol.format_notice_no(device.jurisdiction, year2, next(_far_serials))


def with_bad_check_digit(notice_no: str) -> str:
    return notice_no[:14] + str((int(notice_no[14]) + 1) % 10)


def unknown_type(device: Device, **kwargs: Any) -> Event:
    return device._event("notice.teleported", device.next_number(), {"where": "moon"}, **kwargs)


# --- accepted --------------------------------------------------------------------------------------------------------


def test_a_well_formed_issue_is_accepted_at_version_1_and_opens_a_receivable_of_its_amount(enroll, office):
    device = enroll()
    event = device.issue_parking()

    body = device.push_ok([event])

    assert body["acked_seq"] == 1
    [result] = body["results"]
    assert result == {
        "event_id": event["event_id"],
        "seq": 1,
        "status": "accepted",
        "notice_no": event["notice_no"],
        "version": 1,
        "flags": [],
        "problems": [],
    }
    notice = office.notice(event["notice_no"])
    assert (notice["status"], notice["version"], notice["flags"]) == ("issued", 1, [])
    assert notice["device_id"] == device.device_id
    assert notice["receivable"]["balance"] == event["data"]["amount"] == 40_000


# --- duplicate -------------------------------------------------------------------------------------------------------


def test_a_resent_event_is_a_duplicate_with_the_version_and_flags_of_its_first_application(enroll, office):
    device = enroll()
    issue = device.issue_parking(amount=45_000)  # flagged amount_mismatch
    first = device.push_ok([issue])["results"][0]
    assert (first["status"], first["version"], first["flags"]) == ("accepted", 1, ["amount_mismatch"])
    assert device.push_ok([device.void(issue["notice_no"])])["results"][0]["version"] == 2

    again = device.push_ok([issue])

    [result] = again["results"]
    assert result["status"] == "duplicate"
    assert (result["version"], result["flags"]) == (1, ["amount_mismatch"])  # the first application's, not today's
    assert again["acked_seq"] == 2
    assert len(office.charges(issue["notice_no"])) == 1


def test_a_resent_rejected_event_is_rejected_again(enroll):
    device = enroll()
    event = unknown_type(device)
    first = device.push_ok([event])["results"][0]
    assert first["status"] == "rejected"

    again = device.push_ok([event])["results"][0]

    assert again["status"] == "rejected"
    assert again["problems"] == first["problems"]


def test_a_resent_held_event_is_held_again_while_the_gap_is_open(enroll):
    device = enroll()
    device.issue_parking()  # seq 1, never sent
    second = device.issue_parking()

    assert statuses(device.push_ok([second])) == [(2, "held")]
    again = device.push_ok([second])

    assert statuses(again) == [(2, "held")]
    assert again["acked_seq"] == 0


# --- conflict --------------------------------------------------------------------------------------------------------


def test_the_same_event_id_with_other_content_is_an_event_conflict_and_changes_nothing(enroll, office):
    device = enroll()
    issue = device.issue_parking(plate="12가3456")
    device.push_ok([issue])
    altered = copy.deepcopy(issue)
    altered["data"]["vehicle"]["plate"] = "34나5678"

    body = device.push_ok([altered])

    [result] = body["results"]
    assert result["status"] == "conflict"
    assert problem_codes(result)[0] == "event_conflict"
    assert body["acked_seq"] == 1
    notice = office.notice(issue["notice_no"])
    assert (notice["vehicle_plate"], notice["version"]) == ("12가3456", 1)
    assert device.push_ok([altered])["results"][0]["status"] == "conflict"  # and again when re-sent


def test_a_number_used_by_another_device_is_notice_no_taken_and_the_first_notice_stands(enroll, office):
    first = enroll()
    second = enroll()
    number = first.next_number()
    assert first.push_ok([first.issue_parking(notice_no=number, plate="11가1111")])["results"][0]["status"] == (
        "accepted"
    )
    taken = second.issue_parking(notice_no=number, plate="22나2222")

    body = second.push_ok([taken])

    [result] = body["results"]
    assert result["status"] == "conflict"
    assert problem_codes(result)[0] == "notice_no_taken"
    assert body["acked_seq"] == 1  # a conflict is a final status
    [notice] = office.notices(notice_no=number)
    assert (notice["device_id"], notice["vehicle_plate"]) == (first.device_id, "11가1111")
    assert len(office.charges(number)) == 1
    assert second.push_ok([taken])["results"][0]["status"] == "conflict"  # re-sent: the same status again


def test_a_void_with_a_stale_base_version_is_a_conflict_carrying_the_servers_copy(enroll, office):
    device = enroll()
    issue = device.issue_parking()
    device.push_ok([issue, device.void(issue["notice_no"], base_version=1)])

    body = device.push_ok([device.void(issue["notice_no"], reason_code="other", base_version=1)])

    [result] = body["results"]
    assert result["status"] == "conflict"
    assert problem_codes(result)[0] == "stale_base_version"
    assert result["current"] == {"notice_no": issue["notice_no"], "status": "voided", "version": 2}
    assert body["acked_seq"] == 3
    notice = office.notice(issue["notice_no"])
    assert (notice["version"], notice["void_reason"]) == (2, "wrong_vehicle")
    assert [e["kind"] for e in notice["entries"]] == ["charge", "reversal"]


# --- rejected --------------------------------------------------------------------------------------------------------


def test_an_unknown_event_type_is_rejected_and_the_other_events_go_on(enroll):
    device = enroll()
    strange = unknown_type(device)
    issue = device.issue_parking()

    body = device.push_ok([strange, issue])

    assert statuses(body) == [(1, "rejected"), (2, "accepted")]
    assert problem_codes(body["results"][0]) == ["unknown_event_type"]
    assert body["results"][0]["problems"][0]["field"] == "type"
    assert body["results"][1]["flags"] == []  # a rejected event is still a link of the chain
    assert body["acked_seq"] == 2


def test_a_number_with_a_bad_check_digit_or_of_another_jurisdiction_is_rejected_as_notice_no_invalid(enroll, office):
    device = enroll()
    year2 = device.numbers[0][5:7]
    bad_numbers = {
        "bad check digit": with_bad_check_digit(device.next_number()),
        "another jurisdiction's prefix": protocol.format_notice_no("11680", year2, 1),
        "a trailing newline": device.next_number() + "\n",
        "fourteen digits": device.next_number()[:14],
        "sixteen digits": device.next_number() + "0",
    }
    events = {case: device.issue_parking(notice_no=number) for case, number in bad_numbers.items()}

    body = device.push_ok([*events.values(), device.issue_parking()])

    *refused, good = body["results"]
    answers = {
        case: (r["status"], r["problems"][0]["code"], r["problems"][0]["field"]) for case, r in zip(events, refused)
    }
    assert answers == {case: ("rejected", "notice_no_invalid", "notice_no") for case in events}
    assert (good["status"], good["flags"]) == ("accepted", [])
    assert body["acked_seq"] == len(events) + 1
    for number in bad_numbers.values():
        assert office.notice_status_code(number.strip()[:15]) == 404


def test_a_void_of_a_notice_the_server_does_not_know_is_rejected_as_unknown_notice(enroll):
    device = enroll()

    body = device.push_ok([device.void(device.next_number(), base_version=1)])

    [result] = body["results"]
    assert result["status"] == "rejected"
    assert problem_codes(result) == ["unknown_notice"]
    assert body["acked_seq"] == 1


def test_a_void_of_a_notice_whose_issue_was_rejected_is_rejected_as_subject_rejected(enroll):
    device = enroll()
    number = with_bad_check_digit(device.next_number())

    body = device.push_ok([device.issue_parking(notice_no=number), device.void(number, base_version=1)])

    assert statuses(body) == [(1, "rejected"), (2, "rejected")]
    assert problem_codes(body["results"][1]) == ["subject_rejected"]


def test_a_void_after_losing_the_number_to_another_device_is_subject_rejected_and_leaves_its_notice_alone(
    enroll, office
):
    first = enroll()
    second = enroll()
    number = first.next_number()
    first.push_ok([first.issue_parking(notice_no=number)])

    body = second.push_ok([second.issue_parking(notice_no=number), second.void(number, base_version=1)])

    assert statuses(body) == [(1, "conflict"), (2, "rejected")]
    assert problem_codes(body["results"][1]) == ["subject_rejected"]
    notice = office.notice(number)
    assert (notice["device_id"], notice["status"], notice["version"]) == (first.device_id, "issued", 1)
    assert notice["receivable"]["balance"] == 40_000


def test_a_new_event_id_at_an_acknowledged_seq_is_rejected_as_seq_reused(enroll, office):
    device = enroll()
    device.push_ok([device.issue_parking()])
    reused = device.issue_parking(seq=1, link=False)

    body = device.push_ok([reused])

    [result] = body["results"]
    assert result["status"] == "rejected"
    assert problem_codes(result) == ["seq_reused"]
    assert result["problems"][0]["field"] == "seq"
    assert body["acked_seq"] == 1
    assert office.notice_status_code(reused["notice_no"]) == 404
    assert device.push_ok([reused])["results"][0]["status"] == "rejected"  # re-sent: the same status again
    nxt = device.push_ok([device.issue_parking()])  # the reused event took no place in the chain
    assert statuses(nxt) == [(2, "accepted")]
    assert nxt["results"][0]["flags"] == []


def _set(path: str, value: Any) -> Callable[[Event], None]:
    """Set ``event[a][b]…`` for a dotted ``path``."""

    def change(event: Event) -> None:
        *parents, last = path.split(".")
        target = event
        for name in parents:
            target = target[name]
        target[last] = value

    return change


def _drop(path: str) -> Callable[[Event], None]:
    """Remove ``event[a][b]…`` for a dotted ``path``."""

    def change(event: Event) -> None:
        *parents, last = path.split(".")
        target = event
        for name in parents:
            target = target[name]
        del target[last]

    return change


# what is wrong with an event → the field its problem names
INVALID_DATA = {
    "place without address": (_drop("data.place.address"), "data.place.address"),
    "amount as a string": (_set("data.amount", "40000"), "data.amount"),
    "amount beyond any fine": (_set("data.amount", 2**70), "data.amount"),
    "negative reduced amount": (_set("data.reduced_amount", -1), "data.reduced_amount"),
    "unknown vehicle type": (_set("data.vehicle.type", "truck"), "data.vehicle.type"),
    "deadline not a date": (_set("data.opinion_deadline", "next week"), "data.opinion_deadline"),
    "observed_at without offset": (_set("data.observed_at", "2026-11-25T14:03:00"), "data.observed_at"),
    "no prev_hash": (_drop("data.prev_hash"), "data.prev_hash"),
    "photo hash with a newline": (_set("data.photos", ["ab" * 32 + "\n"]), "data.photos.0"),
    "parking without vehicle": (_drop("data.vehicle"), "data.vehicle"),
    "unknown violation code": (_set("data.violation_code", "X99"), "data.violation_code"),
    "officer_id beyond any id": (_set("data.officer_id", 2**70), "data.officer_id"),
    "officer_id of nobody": (_set("data.officer_id", 987_654_321), "data.officer_id"),
    "data not an object": (_set("data", ["not", "an", "object"]), "data"),
    "no occurred_at": (_drop("occurred_at"), "occurred_at"),
    "occurred_at without offset": (_set("occurred_at", "2026-11-25T14:03:00"), "occurred_at"),
    "base_version on an issue": (_set("base_version", 1), "base_version"),
    "no notice_no": (_drop("notice_no"), "notice_no"),
    # what JSON carries and PostgreSQL cannot store is that event's problem too, never a 500
    "NUL in the memo": (_set("data.memo", "memo\x00"), "data.memo"),
    "a lone surrogate in the address": (_set("data.place.address", "종로\ud800"), "data.place.address"),
    "observed in the year 9999": (_set("data.observed_at", "9999-12-31T23:59:59-12:00"), "data.observed_at"),
    "occurred in the year 1": (_set("occurred_at", "0001-01-01T00:00:00+09:00"), "occurred_at"),
    "photos nested 100 deep": (
        _set("data.photos", json.loads("[" * 100 + "]" * 100)),
        "data.photos" + ".0" * (MAX_DEPTH - 2),  # the event is level 0, data 1, photos 2: named where it goes too deep
    ),
}


def test_invalid_data_is_rejected_naming_the_field_and_the_other_events_go_on(enroll, office):
    device = enroll()
    bad = {}
    for case, (change, _) in INVALID_DATA.items():
        event = device.issue_parking()
        change(event)
        bad[case] = device.relink(event)  # so that the next event's prev_hash is right
    good = device.issue_parking()

    # json.dumps, not httpx: it writes a lone surrogate as the escape "\ud800", as a JSON encoder may
    body = ok(device.push_raw(content=json.dumps(device.batch([*bad.values(), good])).encode()))

    *refused, accepted = body["results"]
    answers = {
        case: (r["status"], field in [p["field"] for p in r["problems"]])
        for (case, (_, field)), r in zip(INVALID_DATA.items(), refused)
    }
    assert answers == {case: ("rejected", True) for case in INVALID_DATA}, refused
    assert (accepted["status"], accepted["flags"]) == ("accepted", [])
    assert body["acked_seq"] == len(INVALID_DATA) + 1
    for event in bad.values():
        if isinstance(event.get("notice_no"), str):
            assert office.notice_status_code(event["notice_no"]) == 404


# --- held and acked_seq ----------------------------------------------------------------------------------------------


def test_events_after_a_gap_are_held_and_released_when_a_later_push_fills_the_gap(enroll, office):
    device = enroll()
    first, second, third = (device.issue_parking() for _ in range(3))

    held = device.push_ok([second, third])
    assert statuses(held) == [(2, "held"), (3, "held")]
    assert held["acked_seq"] == 0
    assert all(r["version"] is None and r["flags"] == [] for r in held["results"])
    assert office.notice_status_code(second["notice_no"]) == 404

    filled = device.push_ok([first])

    assert statuses(filled) == [(1, "accepted"), (2, "accepted"), (3, "accepted")]  # released ones appended
    assert [r["event_id"] for r in filled["results"]] == [e["event_id"] for e in (first, second, third)]
    assert all(r["flags"] == [] for r in filled["results"])  # the chain holds across the two pushes
    assert filled["acked_seq"] == 3
    for event in (first, second, third):
        assert office.notice(event["notice_no"])["version"] == 1
    again = device.push_ok([second])
    assert statuses(again) == [(2, "duplicate")]


def test_a_held_event_resent_with_the_event_that_fills_its_gap_is_answered_once_as_accepted(enroll):
    device = enroll()
    first, second = device.issue_parking(), device.issue_parking()
    assert statuses(device.push_ok([second])) == [(2, "held")]

    body = device.push_ok([first, second])

    assert statuses(body) == [(1, "accepted"), (2, "accepted")]
    assert body["acked_seq"] == 2


def test_acked_seq_is_the_highest_seq_up_to_which_every_event_has_a_final_status(enroll):
    device = enroll()
    accepted = device.issue_parking()
    rejected = unknown_type(device)
    missing = device.issue_parking()
    after_gap = device.issue_parking()

    body = device.push_ok([accepted, rejected, after_gap])
    assert statuses(body) == [(1, "accepted"), (2, "rejected"), (4, "held")]
    assert body["acked_seq"] == 2
    assert device.push_ok([])["acked_seq"] == 2
    assert device.push_ok([device.issue_parking(seq=2, link=False)])["acked_seq"] == 2  # seq_reused: final, no move

    filled = device.push_ok([missing])

    assert statuses(filled) == [(3, "accepted"), (4, "accepted")]
    assert filled["acked_seq"] == 4


# --- the envelope ----------------------------------------------------------------------------------------------------


def _in_event(index: int, change: Callable[[Event], None]) -> Callable[[dict[str, Any]], None]:
    def apply(body: dict[str, Any]) -> None:
        change(body["events"][index])

    return apply


# what is wrong with a batch [good event, another event] → the member ``errors`` names
MALFORMED_ENVELOPES: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "no batch_id": (lambda b: b.pop("batch_id"), "batch_id"),
    "batch_id not a uuid": (lambda b: b.update(batch_id="batch-7"), "batch_id"),
    "batch_id a number": (lambda b: b.update(batch_id=7), "batch_id"),
    "batch_id in braces": (lambda b: b.update(batch_id="{" + str(uuid.uuid4()) + "}"), "batch_id"),
    "no events": (lambda b: b.pop("events"), "events"),
    "events not a list": (lambda b: b.update(events={"0": b["events"][0]}), "events"),
    "an event not an object": (lambda b: b["events"].append("notice.issued"), "events.2"),
    "no event_id": (_in_event(1, _drop("event_id")), "events.1.event_id"),
    "event_id not a uuid": (_in_event(1, _set("event_id", "e-2")), "events.1.event_id"),
    "event_id a number": (_in_event(1, _set("event_id", 2)), "events.1.event_id"),
    "event_id as a urn": (_in_event(1, _set("event_id", uuid.uuid4().urn)), "events.1.event_id"),
    "no seq": (_in_event(1, _drop("seq")), "events.1.seq"),
    "seq a string": (_in_event(1, _set("seq", "2")), "events.1.seq"),
    "seq a boolean": (_in_event(1, _set("seq", True)), "events.1.seq"),
    "seq fractional": (_in_event(1, _set("seq", 2.5)), "events.1.seq"),
    "seq zero": (_in_event(1, _set("seq", 0)), "events.1.seq"),
    "seq beyond 64 bits": (_in_event(1, _set("seq", 2**63)), "events.1.seq"),
    "no type": (_in_event(1, _drop("type")), "events.1.type"),
    "type a number": (_in_event(1, _set("type", 7)), "events.1.type"),
    "type null": (_in_event(1, _set("type", None)), "events.1.type"),
}


def test_a_malformed_envelope_refuses_the_whole_batch_and_applies_nothing(enroll):
    device = enroll()
    good, other = device.issue_parking(), device.issue_parking()
    answers = {}
    for case, (change, _) in MALFORMED_ENVELOPES.items():
        body = device.batch(copy.deepcopy([good, other]))
        change(body)
        response = device.push_raw(body)
        problem = response.json()
        answers[case] = (
            response.status_code,
            response.headers["content-type"].split(";")[0],
            problem.get("code"),
            sorted(problem.get("errors", {})),
        )

    assert answers == {
        case: (422, PROBLEM_JSON, "validation_failed", [field]) for case, (_, field) in MALFORMED_ENVELOPES.items()
    }
    after = device.push_ok([good])  # had any of those batches been applied even in part, this would be a duplicate
    assert statuses(after) == [(1, "accepted")]
    assert after["acked_seq"] == 1


def test_a_body_that_is_not_json_is_malformed_json_and_applies_nothing(enroll):
    device = enroll()
    good = device.issue_parking()

    response = device.push_raw(content=b'{"batch_id": "' + str(uuid.uuid4()).encode() + b'", "events": [')

    assert response.status_code == 400, response.text
    assert response.json()["code"] == "malformed_json"
    assert statuses(device.push_ok([good])) == [(1, "accepted")]


def test_a_body_with_nan_or_infinity_is_not_json_and_applies_nothing(enroll):
    """RFC 8259 has no NaN or Infinity (Python's json.loads takes them unless told not to)."""
    device = enroll()
    good = device.issue_parking()
    answers = {}
    for constant in ("NaN", "Infinity", "-Infinity"):
        raw = json.dumps(device.batch([good])).replace('"lat": 37.572', f'"lat": {constant}')
        assert constant in raw
        response = device.push_raw(content=raw.encode())
        answers[constant] = (response.status_code, response.json().get("code"))

    assert answers == {constant: (400, "malformed_json") for constant in answers}
    assert statuses(device.push_ok([good])) == [(1, "accepted")]


# --- flags -----------------------------------------------------------------------------------------------------------


def _future_occurrence(device: Device) -> tuple[Event, dict[str, Any]]:
    now = now_kst()
    return device.issue_parking(observed_at=now, occurred_at=now + timedelta(minutes=2)), {"device_time": now}


def _qr_elsewhere(device: Device) -> tuple[Event, dict[str, Any]]:
    number, now = device.next_number(), now_kst()
    am = device.amounts("P01", "car", now)
    qr = protocol.qr_url(
        "https://pay.elsewhere.example", device.qr_key, number, am.amount, am.reduced_amount, am.opinion_deadline
    )
    return device.issue_parking(notice_no=number, observed_at=now, qr=qr), {}


def _qr_with_other_amounts(device: Device) -> tuple[Event, dict[str, Any]]:
    number, now = device.next_number(), now_kst()
    am = device.amounts("P01", "car", now)
    qr = protocol.qr_url(device.pay_base_url, device.qr_key, number, 30_000, 24_000, am.opinion_deadline)
    return device.issue_parking(notice_no=number, observed_at=now, qr=qr), {}


def _qr_rewritten(rewrite: Callable[[str], str]) -> Callable[[Device], tuple[Event, dict[str, Any]]]:
    def build(device: Device) -> tuple[Event, dict[str, Any]]:
        number, now = device.next_number(), now_kst()
        am = device.amounts("P01", "car", now)
        qr = protocol.qr_url(
            device.pay_base_url, device.qr_key, number, am.amount, am.reduced_amount, am.opinion_deadline
        )
        return device.issue_parking(notice_no=number, observed_at=now, qr=rewrite(qr)), {}

    return build


# how a device earns a flag → that flag (each case pushed alone, in its own batch)
FLAGGED: dict[str, tuple[Callable[[Device], tuple[Event, dict[str, Any]]], str]] = {
    "a number in no block": (lambda d: (d.issue_parking(notice_no=far_number(d)), {}), "number_outside_block"),
    "another device's number": (
        lambda d: (d.issue_parking(notice_no=Device.enrolled(d.client).next_number()), {}),
        "number_outside_block",
    ),
    "a wrong prev_hash": (lambda d: (d.issue_parking(prev_hash="ab" * 32), {}), "chain_broken"),
    "a tampered qr signature": (_qr_rewritten(lambda qr: qr[:-16] + "AAAAAAAAAAAAAAAA"), "qr_mismatch"),
    "a qr signing other amounts": (_qr_with_other_amounts, "qr_mismatch"),
    "a qr pointing to another site": (_qr_elsewhere, "qr_mismatch"),
    "a qr with a non-ascii digit": (_qr_rewritten(lambda qr: qr.replace("?a=", "?a=²")), "qr_mismatch"),
    "a qr with an extra parameter": (_qr_rewritten(lambda qr: qr + "&x=1"), "qr_mismatch"),
    "a device clock 10 min ahead": (
        lambda d: (d.issue_parking(), {"device_time": now_kst() + timedelta(minutes=10)}),
        "clock_skew",
    ),
    "a device clock 10 min behind": (
        lambda d: (d.issue_parking(), {"device_time": now_kst() - timedelta(minutes=10)}),
        "clock_skew",
    ),
    "occurred after device_time": (_future_occurrence, "clock_skew"),
    "synced 73 h after": (lambda d: (d.issue_parking(observed_at=now_kst() - timedelta(hours=73)), {}), "late_sync"),
}


def test_each_flag_is_raised_on_an_accepted_notice_that_then_waits_in_review(enroll, office):
    device = enroll()
    answers, expected = {}, {}
    for case, (build, flag) in FLAGGED.items():
        event, push_kwargs = build(device)
        [result] = device.push_ok([event], **push_kwargs)["results"]
        notice = office.notice(event["notice_no"])
        answers[case] = (
            (result["status"], result["version"], result["flags"]),
            (notice["status"], notice["flags"], notice["receivable"]["balance"]),
        )
        expected[case] = (("accepted", 1, [flag]), ("under_review", [flag], event["data"]["amount"]))

    assert answers == expected


def test_a_qr_signature_in_lower_case_still_matches(enroll, office):
    device = enroll()
    event = _qr_rewritten(lambda qr: qr[:-16] + qr[-16:].lower())(device)[0]

    result = device.push_ok([event])["results"][0]

    assert (result["status"], result["flags"]) == ("accepted", [])
    assert office.notice(event["notice_no"])["status"] == "issued"


def test_a_wrong_printed_amount_is_accepted_as_printed_flagged_and_the_servers_values_kept(enroll, office):
    device = enroll()
    observed_at = now_kst() - timedelta(hours=1)
    event = device.issue_parking(amount=45_000, observed_at=observed_at)

    result = device.push_ok([event])["results"][0]

    assert (result["status"], result["flags"]) == ("accepted", ["amount_mismatch"])
    notice = office.notice(event["notice_no"])
    assert (notice["status"], notice["amount"], notice["reduced_amount"]) == ("under_review", 45_000, 36_000)
    assert notice["receivable"]["balance"] == 45_000  # what the citizen saw is what is owed
    assert [(e["charge_head"], e["kind"], e["amount"]) for e in notice["entries"]] == [("principal", "charge", 45_000)]
    assert notice["expected"] == {
        "amount": 40_000,
        "reduced_amount": 32_000,
        "opinion_deadline": (protocol.seoul_date(observed_at) + timedelta(days=14)).isoformat(),
        "schedule_key": "P01:car:-@2008-06-22",
    }


# --- exactly once ----------------------------------------------------------------------------------------------------


def test_a_batch_sent_twice_in_sequence_changes_the_ledger_once(enroll, office):
    device = enroll()
    events = [device.issue_parking(), device.issue_parking(amount=45_000), unknown_type(device)]
    batch = device.batch(events)

    first = ok(device.push_raw(batch))
    second = ok(device.push_raw(batch))

    assert statuses(first) == [(1, "accepted"), (2, "accepted"), (3, "rejected")]
    assert statuses(second) == [(1, "duplicate"), (2, "duplicate"), (3, "rejected")]
    for a, b in zip(first["results"], second["results"]):
        assert (a["version"], a["flags"], a["problems"]) == (b["version"], b["flags"], b["problems"])
    assert first["acked_seq"] == second["acked_seq"] == 3
    for event in events[:2]:
        assert len(office.notices(notice_no=event["notice_no"])) == 1
        assert len(office.charges(event["notice_no"])) == 1


def test_a_batch_sent_twice_concurrently_changes_the_ledger_once(enroll, office, module_live_server):
    device = enroll()
    events = [device.issue_parking() for _ in range(5)]
    batch = device.batch(events)
    start = threading.Barrier(2)
    answers: list[httpx.Response] = []
    errors: list[BaseException] = []

    def send() -> None:
        try:
            with httpx.Client(base_url=module_live_server.url, timeout=30) as http:
                start.wait(timeout=10)
                answers.append(http.post("/sync/v1/push", json=batch, headers=device.headers))
        except BaseException as exc:  # re-raised below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not errors, errors
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    outcomes = sorted({r["status"] for r in a.json()["results"]} for a in answers)
    assert outcomes == [{"accepted"}, {"duplicate"}]
    assert [a.json()["acked_seq"] for a in answers] == [5, 5]
    for event in events:
        assert len(office.notices(notice_no=event["notice_no"])) == 1
        assert len(office.charges(event["notice_no"])) == 1


# --- a person notice -------------------------------------------------------------------------------------------------

NAME, RRN = "한가람", "850315-2987654"


def test_a_person_notice_is_accepted_and_its_rrn_and_name_are_stored_nowhere_in_plaintext(
    enroll, office, module_live_server
):
    device = enroll()
    event = device.issue_person(name=NAME, rrn=RRN)

    result = device.push_ok([event])["results"][0]

    assert (result["status"], result["flags"]) == ("accepted", [])
    notice = office.notice(event["notice_no"])
    assert (notice["kind"], notice["offender_name"]) == ("person", "한*람")
    [listed] = office.notices(notice_no=event["notice_no"])
    assert listed["offender_name"] == "한*람"
    needles = [NAME, RRN, RRN.replace("-", ""), RRN[-7:]]
    for page in (notice, listed):
        assert not [n for n in needles if n in str(page)]

    engine = create_engine(module_live_server.db_url)
    try:
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM notices WHERE notice_no = :n"), {"n": event["notice_no"]})
            for needle in needles:
                like = {"p": f"%{needle}%"}
                assert conn.scalar(text("SELECT count(*) FROM sync_events WHERE payload::text LIKE :p"), like) == 0
                assert conn.scalar(text("SELECT count(*) FROM sync_events WHERE result::text LIKE :p"), like) == 0
            # and anywhere else: every text-bearing column of every table (bytea is ciphertext, left out)
            columns = conn.execute(
                text(
                    "SELECT table_name, column_name FROM information_schema.columns c "
                    "JOIN information_schema.tables t USING (table_schema, table_name) "
                    "WHERE table_schema = 'public' AND t.table_type = 'BASE TABLE' AND c.data_type <> 'bytea'"
                )
            ).all()
            by_table: dict[str, list[str]] = {}
            for table, column in columns:
                by_table.setdefault(table, []).append(column)
            found = []
            for table, names in by_table.items():
                row_text = " || '|' || ".join(f"coalesce(\"{name}\"::text, '')" for name in names)
                for needle in needles:
                    count = conn.scalar(
                        text(f'SELECT count(*) FROM "{table}" WHERE ({row_text}) LIKE :p'), {"p": f"%{needle}%"}
                    )
                    if count:
                        found.append((table, needle, count))
            assert found == []
    finally:
        engine.dispose()


# --- void ------------------------------------------------------------------------------------------------------------


def test_an_accepted_void_voids_the_notice_at_version_2_and_reverses_its_receivable_to_zero(enroll, office):
    device = enroll()
    issue = device.issue_parking()
    device.push_ok([issue])

    body = device.push_ok([device.void(issue["notice_no"], reason_code="driver_returned")])

    [result] = body["results"]
    assert (result["status"], result["notice_no"], result["version"]) == ("accepted", issue["notice_no"], 2)
    notice = office.notice(issue["notice_no"])
    assert (notice["status"], notice["version"], notice["void_reason"]) == ("voided", 2, "driver_returned")
    assert notice["receivable"]["balance"] == 0
    assert notice["receivable"]["status"] == "cancelled"
    assert [(e["charge_head"], e["kind"], e["amount"]) for e in notice["entries"]] == [
        ("principal", "charge", 40_000),
        ("principal", "reversal", -40_000),
    ]
