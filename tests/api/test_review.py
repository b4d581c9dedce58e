"""The review queue and the hold queue through the real app (DESIGN.md §3 step 1, §6; PROTOCOL.md §2 flags).

- ``possible_duplicate``: same plate and code, within the code's window and distance, any device → flagged, both
  timelines say which; never merged or rejected.
- A clerk lists flagged notices in scope and confirms, corrects or cancels each, naming the version (``If-Match``).
- Held events: listed with their gap; force-processed (apply or reject) once, with who and why; the device gets the
  fate on its next push of the event and the notice on its next pull; the gap, when filled, never re-applies it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

import protocol
from models.feed import ChangeLog, device_scope
from models.users import CreateUser, ensure_user
from tests.support.device import DEMO_PASSWORD, Device, now_kst, staff_token

PROBLEM_JSON = "application/problem+json"
KEEP = object()


def bearer(client: httpx.Client, login: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {staff_token(client, login)}"}


@pytest.fixture
def clerk(client: httpx.Client) -> dict[str, str]:
    return bearer(client, "clerk.11110")


@pytest.fixture
def auditor(client: httpx.Client, connection: Connection) -> dict[str, str]:
    """A district auditor (the demo data has none): may read the queues, never decide."""
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        ensure_user(session, CreateUser("auditor.11110", "감사담당", "auditor", "11110", DEMO_PASSWORD))
        session.commit()
    return bearer(client, "auditor.11110")


@pytest.fixture
def device(client: httpx.Client) -> Device:
    return Device.enrolled(client, "11110")


def flagged(device: Device, **kwargs: Any) -> str:
    """Push a parking notice that waits in review (a printed amount the schedule does not give); its number."""
    event = device.issue_parking(amount=45_000, **kwargs)
    [result] = device.push_ok([event])["results"]
    assert (result["status"], result["flags"]) == ("accepted", ["amount_mismatch"])
    return str(event["notice_no"])


def notice(client: httpx.Client, headers: dict[str, str], notice_no: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/notices/{notice_no}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def decide(
    client: httpx.Client,
    headers: dict[str, str],
    notice_no: str,
    action: str,
    version: Any = KEEP,
    **body: Any,
) -> httpx.Response:
    """POST a decision; ``version`` is sent as ``If-Match`` (None: no header; KEEP: 1)."""
    sent = dict(headers)
    if version is KEEP:
        version = 1
    if version is not None:
        sent["If-Match"] = f'"{version}"'
    body.setdefault("reason", "검토 결과")
    return client.post(f"/api/v1/review/{notice_no}/{action}", json=body, headers=sent)


def problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["code"] == code


def review_numbers(client: httpx.Client, headers: dict[str, str], **params: Any) -> list[str]:
    numbers: list[str] = []
    query = {"limit": 500, **params}
    while True:
        response = client.get("/api/v1/review", params=query, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        numbers += [item["notice_no"] for item in page["items"]]
        if page["next"] is None:
            return numbers
        query["after"] = page["next"]


@pytest.fixture
def feed(connection: Connection) -> Any:
    """``feed(device, notice_no)``: the last ``notice_status`` of the notice in the device's pull feed. (In process,
    every request shares one rolled-back transaction, which the feed does not serve before it ends; the live
    server tests pull it for real, tests/e2e/test_review_flow.py.)"""

    def last(device: Device, notice_no: str) -> dict[str, Any] | None:
        row = connection.execute(
            select(ChangeLog.data)
            .where(
                ChangeLog.scope == device_scope(device.device_id),
                ChangeLog.entity == "notice_status",
                ChangeLog.key == notice_no,
            )
            .order_by(ChangeLog.id.desc())
            .limit(1)
        ).scalar()
        return row

    return last


# --- possible_duplicate ---------------------------------------------------------------------------------------------


def test_the_same_plate_and_code_near_in_time_and_place_on_another_device_is_flagged_possible_duplicate(
    client, device, clerk
):
    other = Device.enrolled(client, "11110", "officer.11110.2")
    first = device.issue_parking(plate="33허3333", observed_at=now_kst() - timedelta(minutes=20))
    assert device.push_ok([first])["results"][0]["flags"] == []

    second = other.issue_parking(plate="33허3333")
    [result] = other.push_ok([second])["results"]

    assert (result["status"], result["flags"]) == ("accepted", ["possible_duplicate"])
    new, old = notice(client, clerk, second["notice_no"]), notice(client, clerk, first["notice_no"])
    assert (new["status"], new["receivable"]["balance"]) == ("under_review", 40_000)  # never merged or rejected
    assert (old["status"], old["flags"]) == ("issued", [])
    assert {"what": "possible_duplicate", "of": first["notice_no"]} in [
        {"what": t["what"], **(t["detail"] or {})} for t in new["timeline"]
    ]
    assert {"what": "possible_duplicate", "by": second["notice_no"]} in [
        {"what": t["what"], **(t["detail"] or {})} for t in old["timeline"]
    ]
    assert review_numbers(client, clerk, flag="possible_duplicate") == [second["notice_no"]]


def test_two_notices_of_one_plate_in_one_batch_and_one_after_a_void_in_it_are_possible_duplicates(
    client, device, clerk
):
    """Issues of a batch are written together: the later ones still see the earlier ones, across the void that
    makes the push write what it holds before it goes on."""
    unrelated = device.issue_parking(plate="77허7777")
    device.push_ok([unrelated])
    first = device.issue_parking(plate="88허8888", observed_at=now_kst() - timedelta(minutes=10))
    second = device.issue_parking(plate="88허8888", observed_at=now_kst() - timedelta(minutes=5))
    void = device.void(unrelated["notice_no"])
    third = device.issue_parking(plate="88허8888")

    results = device.push_ok([first, second, void, third])["results"]

    assert [(r["status"], r["flags"]) for r in results] == [
        ("accepted", []),
        ("accepted", ["possible_duplicate"]),
        ("accepted", []),
        ("accepted", ["possible_duplicate"]),
    ]
    timeline = {
        n: [{"what": t["what"], **(t["detail"] or {})} for t in notice(client, clerk, n)["timeline"]]
        for n in (first["notice_no"], second["notice_no"], third["notice_no"])
    }
    assert {"what": "possible_duplicate", "of": first["notice_no"]} in timeline[second["notice_no"]]
    assert {"what": "possible_duplicate", "of": first["notice_no"]} in timeline[third["notice_no"]]
    assert {"what": "possible_duplicate", "of": second["notice_no"]} in timeline[third["notice_no"]]
    assert {"what": "possible_duplicate", "by": third["notice_no"]} in timeline[second["notice_no"]]


def _far(event: dict[str, Any], metres: float) -> None:
    event["data"]["place"]["lat"] += metres / 111_195  # one degree of latitude is 111.195 km


def _without_coordinates(address: str) -> Any:
    def change(event: dict[str, Any]) -> None:
        event["data"]["place"] = {"address": address}

    return change


# how the second notice differs from the first (plate 44허4444, P01, the same place, now) → flagged?
SECOND_NOTICES: dict[str, tuple[dict[str, Any], Any, bool]] = {
    "29 minutes later": ({"observed_at": lambda now: now + timedelta(minutes=29)}, None, True),
    "31 minutes later": ({"observed_at": lambda now: now + timedelta(minutes=31)}, None, False),
    "31 minutes earlier": ({"observed_at": lambda now: now - timedelta(minutes=31)}, None, False),
    "40 m away": ({}, lambda e: _far(e, 40), True),
    "60 m away": ({}, lambda e: _far(e, 60), False),
    "another code": ({"code": "P02"}, None, False),
    "another plate": ({"plate": "55허5555"}, None, False),
    "no coordinates, the same address spaced otherwise": (
        {},
        _without_coordinates(" 서울특별시  종로구 세종대로175 "),
        True,
    ),
    "no coordinates, another address": ({}, _without_coordinates("서울특별시 종로구 율곡로 1"), False),
}


@pytest.mark.parametrize("case", sorted(SECOND_NOTICES))
def test_a_second_notice_is_a_possible_duplicate_only_within_the_codes_window_and_distance(client, device, case):
    changes, tweak, expected = SECOND_NOTICES[case]
    now = now_kst()
    first = device.issue_parking(plate="44허4444", observed_at=now)
    if tweak is not None and "no coordinates" in case:
        first["data"]["place"] = {"address": "서울특별시 종로구 세종대로 175"}
        device.relink(first)
    device.push_ok([first])
    kwargs = {k: (v(now) if callable(v) else v) for k, v in changes.items()}
    kwargs.setdefault("plate", "44허4444")
    kwargs.setdefault("observed_at", now)
    second = device.issue_parking(**kwargs)
    if tweak is not None:
        tweak(second)
        device.relink(second)

    [result] = device.push_ok([second])["results"]

    assert result["status"] == "accepted"
    assert ("possible_duplicate" in result["flags"]) is expected, result["flags"]


def test_a_voided_notice_is_no_longer_a_duplicate_of_anything(client, device):
    first = device.issue_parking(plate="66허6666")
    device.push_ok([first, device.void(first["notice_no"])])

    [result] = device.push_ok([device.issue_parking(plate="66허6666")])["results"]

    assert result["flags"] == []


# --- the review queue ---------------------------------------------------------------------------------------------


def test_the_review_queue_lists_flagged_notices_of_the_callers_district_newest_first_page_by_page(client, device):
    clean = device.issue_parking()
    device.push_ok([clean])
    numbers = [flagged(device) for _ in range(3)]
    gangnam = Device.enrolled(client, "11680")
    theirs = flagged(gangnam)

    assert review_numbers(client, bearer(client, "clerk.11110"), limit=2) == numbers[::-1]
    assert review_numbers(client, bearer(client, "clerk.11680")) == [theirs]
    assert set(numbers) | {theirs} <= set(review_numbers(client, bearer(client, "admin")))
    assert review_numbers(client, bearer(client, "clerk.11110"), flag="possible_duplicate") == []
    page = client.get("/api/v1/review", params={"limit": 1}, headers=bearer(client, "clerk.11110")).json()
    [item] = page["items"]
    assert (item["notice_no"], item["status"], item["version"], item["flags"]) == (
        numbers[-1],
        "under_review",
        1,
        ["amount_mismatch"],
    )


def test_confirm_needs_the_version_and_makes_the_notice_issued_at_the_next_version(client, device, clerk, feed):
    number = flagged(device)

    problem(decide(client, clerk, number, "confirm", version=None), 428, "precondition_required")
    problem(decide(client, clerk, number, "confirm", version=2), 412, "precondition_failed")
    confirmed = decide(client, clerk, number, "confirm", version=1, reason="금액은 현장 표지 기준")

    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.headers["ETag"] == '"2"'
    assert (confirmed.json()["status"], confirmed.json()["version"]) == ("issued", 2)
    assert number not in review_numbers(client, clerk)
    timeline = notice(client, clerk, number)["timeline"]
    assert timeline[-1]["what"] == "review_confirmed"
    assert timeline[-1]["detail"]["reason"] == "금액은 현장 표지 기준"
    assert timeline[-1]["actor_user_id"] is not None
    assert feed(device, number) == {"notice_no": number, "status": "issued", "version": 2}
    # confirmed already: no longer in review
    problem(decide(client, clerk, number, "confirm", version=2), 409, "invalid_transition")
    problem(decide(client, clerk, number, "confirm", version=1), 412, "precondition_failed")


def test_cancel_reverses_the_receivable_to_zero_and_the_device_sees_cancelled(client, device, clerk, feed):
    number = flagged(device)

    cancelled = decide(client, clerk, number, "cancel", reason="동일 차량 중복 단속")

    assert cancelled.status_code == 200, cancelled.text
    assert (cancelled.json()["status"], cancelled.json()["version"], cancelled.headers["ETag"]) == (
        "cancelled",
        2,
        '"2"',
    )
    body = notice(client, clerk, number)
    assert (body["receivable"]["status"], body["receivable"]["balance"]) == ("cancelled", 0)
    assert sorted((e["kind"], e["amount"]) for e in body["entries"]) == [("charge", 45_000), ("reversal", -45_000)]
    assert body["timeline"][-1]["what"] == "cancelled"
    assert feed(device, number) == {"notice_no": number, "status": "cancelled", "version": 2}
    problem(decide(client, clerk, number, "cancel", version=2), 409, "invalid_transition")
    problem(decide(client, clerk, number, "correct", version=2, fields={"amount": 40_000}), 409, "invalid_transition")


def test_an_issued_notice_may_be_cancelled_but_not_confirmed(client, device, clerk):
    event = device.issue_parking()
    device.push_ok([event])

    problem(decide(client, clerk, event["notice_no"], "confirm"), 409, "invalid_transition")
    assert decide(client, clerk, event["notice_no"], "cancel").json()["status"] == "cancelled"


def test_a_void_after_a_cancellation_is_a_stale_base_version_conflict(client, device, clerk):
    number = flagged(device)
    assert decide(client, clerk, number, "cancel").status_code == 200

    [result] = device.push_ok([device.void(number, base_version=1)])["results"]

    assert result["status"] == "conflict"
    assert result["current"]["status"] == "cancelled"


def test_correcting_the_amount_posts_the_difference_and_recomputes_the_reduced_amount(client, device, clerk, feed):
    number = flagged(device)

    corrected = decide(client, clerk, number, "correct", reason="고시 금액으로 정정", fields={"amount": 40_000})

    assert corrected.status_code == 200, corrected.text
    body = notice(client, clerk, number)
    assert (body["status"], body["version"], body["amount"], body["reduced_amount"]) == ("issued", 2, 40_000, 32_000)
    assert body["receivable"]["balance"] == 40_000
    assert sorted((e["kind"], e["amount"]) for e in body["entries"]) == [("charge", 45_000), ("correction", -5_000)]
    last = body["timeline"][-1]
    assert (last["what"], last["detail"]["changes"]["amount"]) == ("corrected", [45_000, 40_000])
    assert feed(device, number) == {"notice_no": number, "status": "issued", "version": 2}


def test_correcting_the_plate_code_and_place_changes_the_notice_and_keeps_its_amount(client, device, clerk):
    number = flagged(device, plate="77허7777")

    corrected = decide(
        client,
        clerk,
        number,
        "correct",
        fields={
            "vehicle": {"plate": "77허7778"},
            "violation_code": "P02",
            "place": {"address": "서울특별시 종로구 종로 2"},
        },
    )

    assert corrected.status_code == 200, corrected.text
    body = notice(client, clerk, number)
    assert (body["vehicle_plate"], body["violation_code"], body["place_address"]) == (
        "77허7778",
        "P02",
        "서울특별시 종로구 종로 2",
    )
    assert (body["amount"], body["receivable"]["balance"], body["status"]) == (45_000, 45_000, "issued")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({}, "fields"),
        ({"amount": 45_000}, "fields"),  # as it is
        ({"violation_code": "S01"}, "fields.violation_code"),  # a person code on a parking notice
        ({"violation_code": "NOPE"}, "fields.violation_code"),
    ],
)
def test_a_correction_that_changes_nothing_or_names_a_wrong_code_is_refused(client, device, clerk, fields, field):
    number = flagged(device)

    response = decide(client, clerk, number, "correct", fields=fields)

    problem(response, 422, "validation_failed")
    assert field in response.json()["errors"]
    assert notice(client, clerk, number)["version"] == 1


def test_an_auditor_may_list_but_not_decide_and_another_districts_clerk_sees_nothing(client, device, auditor):
    number = flagged(device)
    assert review_numbers(client, auditor) == [number]
    assert number in review_numbers(client, bearer(client, "admin"))  # a city role sees every district
    problem(decide(client, auditor, number, "confirm"), 403, "forbidden_role")

    outsider = bearer(client, "clerk.11680")
    assert number not in review_numbers(client, outsider)
    for action in ("confirm", "cancel"):
        problem(decide(client, outsider, number, action), 404, "not_found")
    problem(decide(client, outsider, number, "correct", fields={"amount": 1}), 404, "not_found")
    officer = bearer(client, "officer.11110.1")
    problem(decide(client, officer, number, "confirm"), 403, "forbidden_role")


# --- held events ----------------------------------------------------------------------------------------------------


def held_items(client: httpx.Client, headers: dict[str, str]) -> dict[str, dict[str, Any]]:
    response = client.get("/api/v1/sync/held", params={"limit": 500}, headers=headers)
    assert response.status_code == 200, response.text
    return {item["event_id"]: item for item in response.json()["items"]}


def process(
    client: httpx.Client, headers: dict[str, str], event_id: str, action: str, reason: str = "단말 분실"
) -> httpx.Response:
    return client.post(
        f"/api/v1/sync/held/{event_id}/process", json={"action": action, "reason": reason}, headers=headers
    )


def test_held_events_are_listed_with_their_device_and_the_seqs_missing_before_them(client, device, clerk):
    first, second, third, fourth, fifth = (device.issue_parking() for _ in range(5))
    device.push_ok([first])
    body = device.push_ok([third, fifth])
    assert [r["status"] for r in body["results"]] == ["held", "held"]

    items = held_items(client, clerk)

    held_third, held_fifth = items[third["event_id"]], items[fifth["event_id"]]
    assert (held_third["device_id"], held_third["seq"], held_third["type"], held_third["acked_seq"]) == (
        device.device_id,
        3,
        "notice.issued",
        1,
    )
    assert held_third["notice_no"] == third["notice_no"] and held_third["received_at"]
    assert (held_third["missing"], held_third["missing_count"]) == ([{"first": 2, "last": 2}], 1)
    assert held_fifth["missing"] == [{"first": 2, "last": 2}, {"first": 4, "last": 4}]
    assert held_items(client, bearer(client, "clerk.11680")) == {}
    assert third["event_id"] in held_items(client, bearer(client, "admin"))


def test_a_force_applied_held_event_is_final_and_the_filled_gap_never_applies_it_again(client, device, clerk, feed):
    first, second, third = (device.issue_parking() for _ in range(3))
    assert device.push_ok([second, third])["acked_seq"] == 0

    applied = process(client, clerk, second["event_id"], "apply", reason="단말 초기화로 1번 유실")

    assert applied.status_code == 200, applied.text
    result = applied.json()
    assert (result["status"], result["version"], result["notice_no"], result["action"]) == (
        "accepted",
        1,
        second["notice_no"],
        "apply",
    )
    assert result["flags"] == []  # its predecessor is missing: its link cannot be checked, which is no break
    assert second["event_id"] not in held_items(client, clerk)
    forced = notice(client, clerk, second["notice_no"])
    assert (forced["status"], forced["receivable"]["balance"]) == ("issued", 40_000)
    assert forced["timeline"][-1]["what"] == "force_processed"
    assert forced["timeline"][-1]["detail"]["reason"] == "단말 초기화로 1번 유실"
    # the device: the notice on its next pull; the event's fate when it sends it again
    assert feed(device, second["notice_no"]) == {
        "notice_no": second["notice_no"],
        "status": "issued",
        "version": 1,
    }
    again = device.push_ok([second])
    assert [(r["seq"], r["status"], r["version"]) for r in again["results"]] == [(2, "duplicate", 1)]
    assert again["acked_seq"] == 0  # the gap before it is still open

    filled = device.push_ok([first])

    assert [(r["seq"], r["status"]) for r in filled["results"]] == [(1, "accepted"), (3, "accepted")]
    assert filled["acked_seq"] == 3
    assert filled["results"][1]["flags"] == []  # the chain goes on through the force-applied event
    assert [e["kind"] for e in notice(client, clerk, second["notice_no"])["entries"]] == ["charge"]
    assert notice(client, clerk, second["notice_no"])["version"] == 1
    assert device.push_ok([second])["results"][0]["status"] == "duplicate"


def test_a_force_rejected_held_event_answers_force_rejected_when_sent_again(client, device, clerk):
    first, second = device.issue_parking(), device.issue_parking()
    device.push_ok([second])

    rejected = process(client, clerk, second["event_id"], "reject", reason="시험 출력")

    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "rejected"
    assert [p["code"] for p in rejected.json()["problems"]] == ["force_rejected"]
    again = device.push_ok([second])
    [answer] = again["results"]
    assert (answer["status"], answer["problems"][0]["code"], answer["problems"][0]["message"]) == (
        "rejected",
        "force_rejected",
        "시험 출력",
    )
    response = client.get(f"/api/v1/notices/{second['notice_no']}", headers=clerk)
    assert response.status_code == 404
    filled = device.push_ok([first])
    assert [(r["seq"], r["status"]) for r in filled["results"]] == [(1, "accepted")]
    assert filled["acked_seq"] == 2


def test_a_new_event_at_a_force_processed_seq_is_seq_reused(client, device, clerk):
    device.issue_parking()  # seq 1, never sent
    second = device.issue_parking()
    device.push_ok([second])
    assert process(client, clerk, second["event_id"], "reject").status_code == 200

    [result] = device.push_ok([device.issue_parking(seq=2, link=False)])["results"]

    assert (result["status"], result["problems"][0]["code"]) == ("rejected", "seq_reused")


def test_a_held_event_is_force_processed_once_only_in_scope_and_by_a_clerk(client, device, clerk):
    device.issue_parking()
    second = device.issue_parking()
    device.push_ok([second])

    problem(process(client, bearer(client, "clerk.11680"), second["event_id"], "apply"), 404, "not_found")
    problem(process(client, bearer(client, "officer.11110.1"), second["event_id"], "apply"), 403, "forbidden_role")
    assert process(client, clerk, second["event_id"], "reject").status_code == 200
    problem(process(client, clerk, second["event_id"], "apply"), 409, "invalid_transition")
    problem(
        process(client, clerk, protocol.GENESIS_HASH[:8] + "-0000-4000-8000-000000000000", "apply"), 404, "not_found"
    )


def test_the_demo_data_has_approver_and_auditor_logins(client: httpx.Client) -> None:
    # README lists them; a newcomer signs in as each role (issue 13 §1.14)
    import jwt

    for login, role, jurisdiction in (
        ("approver.11110", "approver", "11110"),
        ("auditor.11680", "auditor", "11680"),
        ("auditor", "auditor", "11000"),
    ):
        claims = jwt.decode(staff_token(client, login), options={"verify_signature": False})
        assert (claims["role"], claims["jur"]) == (role, jurisdiction), login
