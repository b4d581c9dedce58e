"""The review queue and the hold queue end to end: real gunicorn, devices over HTTP, a clerk over HTTP.

What a device sees of a clerk's decision is what it pulls (``notice_status``) and what its next push of the same
event answers — nothing else reaches it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.support.device import Device, now_kst, staff_token

PULL_PATIENCE_S = 60.0  # other test runs may share the PostgreSQL cluster and hold the feed back


@pytest.fixture
def client(module_live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=module_live_server.url, timeout=20) as http:
        yield http


@pytest.fixture
def clerk(client: httpx.Client) -> dict[str, str]:
    return {"Authorization": f"Bearer {staff_token(client, 'clerk.11110')}"}


def pulled_status(device: Device, notice_no: str, status: str) -> dict[str, Any]:
    """Pull until the device's feed brings ``notice_no`` at ``status``; that ``notice_status``. (The feed serves a
    commit once every transaction older than it has ended, on the whole cluster, so it may take a moment.)"""
    deadline = time.monotonic() + PULL_PATIENCE_S
    while True:
        found = {c["key"]: c["data"] for c in device.pull_all() if c["entity"] == "notice_status"}
        if notice_no in found and found[notice_no]["status"] == status:
            return found[notice_no]
        assert time.monotonic() < deadline, f"{notice_no} never reached {status} in the device's feed"
        time.sleep(0.1)


def notice(client: httpx.Client, clerk: dict[str, str], notice_no: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/notices/{notice_no}", headers=clerk)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_possible_duplicate_from_another_device_is_cancelled_by_a_clerk_and_its_device_pulls_cancelled(client, clerk):
    admin = staff_token(client, "admin")
    first = Device.enrolled(client, "11110", "officer.11110.1", admin_token=admin)
    second = Device.enrolled(client, "11110", "officer.11110.2", admin_token=admin)
    earlier = first.issue_parking(plate="12하3456", observed_at=now_kst() - timedelta(minutes=10))
    assert first.push_ok([earlier])["results"][0]["flags"] == []

    again = second.issue_parking(plate="12하3456")
    [result] = second.push_ok([again])["results"]
    assert (result["status"], result["flags"]) == ("accepted", ["possible_duplicate"])

    queue = client.get("/api/v1/review", params={"flag": "possible_duplicate"}, headers=clerk).json()["items"]
    [item] = [i for i in queue if i["notice_no"] == again["notice_no"]]
    cancelled = client.post(
        f"/api/v1/review/{again['notice_no']}/cancel",
        json={"reason": "동일 차량 중복 단속 (다른 단말 선행 부과)"},
        headers={**clerk, "If-Match": f'"{item["version"]}"'},
    )
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.headers["ETag"] == '"2"'

    assert pulled_status(second, again["notice_no"], "cancelled") == {
        "notice_no": again["notice_no"],
        "status": "cancelled",
        "version": 2,
    }
    body = notice(client, clerk, again["notice_no"])
    assert (body["status"], body["receivable"]["status"], body["receivable"]["balance"]) == (
        "cancelled",
        "cancelled",
        0,
    )
    assert notice(client, clerk, earlier["notice_no"])["receivable"]["balance"] == 40_000  # the first one stands
    mine = {c["key"] for c in first.pull_all() if c["entity"] == "notice_status"}
    assert again["notice_no"] not in mine  # another device's notice is not in its feed


def test_a_force_processed_held_event_reaches_the_device_by_pull_and_by_its_next_push(client, clerk):
    device = Device.enrolled(client, "11110")
    lost, held, after = device.issue_parking(), device.issue_parking(), device.issue_parking()
    assert [r["status"] for r in device.push_ok([held, after])["results"]] == ["held", "held"]
    listed = client.get("/api/v1/sync/held", params={"limit": 500}, headers=clerk).json()["items"]
    [entry] = [i for i in listed if i["event_id"] == held["event_id"]]
    assert (entry["device_id"], entry["seq"], entry["missing"]) == (device.device_id, 2, [{"first": 1, "last": 1}])

    decided = client.post(
        f"/api/v1/sync/held/{held['event_id']}/process",
        json={"action": "apply", "reason": "1번 이벤트 유실 확인"},
        headers=clerk,
    )
    assert decided.status_code == 200, decided.text
    assert (decided.json()["status"], decided.json()["version"]) == ("accepted", 1)

    assert pulled_status(device, held["notice_no"], "issued") == {
        "notice_no": held["notice_no"],
        "status": "issued",
        "version": 1,
    }
    resent = device.push_ok([held, after])
    assert [(r["seq"], r["status"]) for r in resent["results"]] == [(2, "duplicate"), (3, "held")]
    assert resent["acked_seq"] == 0

    filled = device.push_ok([lost])
    assert [(r["seq"], r["status"]) for r in filled["results"]] == [(1, "accepted"), (3, "accepted")]
    assert filled["acked_seq"] == 3
    assert [e["kind"] for e in notice(client, clerk, held["notice_no"])["entries"]] == ["charge"]  # applied once
    assert device.push_ok([held])["results"][0]["status"] == "duplicate"
