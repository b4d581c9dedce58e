"""Number accounting over HTTP: every number of a device's blocks is issued, voided, spoiled, cancelled or unused,
and the numbers skipped below the highest one used show as gaps."""

from __future__ import annotations

import httpx

import protocol
from tests.support.device import Device, staff_token


def test_the_number_report_accounts_for_every_number_and_shows_the_gaps(module_live_server):
    with httpx.Client(base_url=module_live_server.url, timeout=15) as client:
        device = Device.enrolled(client)
        numbers = list(device.numbers[:6])
        issued = [device.issue_parking(notice_no=numbers[0]), device.issue_parking(notice_no=numbers[1])]
        # numbers[2] and numbers[3] are skipped (printed and never synced, say); numbers[4] is spoiled, [5] issued
        spoiled = device._event(protocol.NUMBER_SPOILED, numbers[4], {"reason": "printer_jam"})
        last = device.issue_parking(notice_no=numbers[5])
        body = device.push_ok([*issued, spoiled, last])
        assert [r["status"] for r in body["results"]] == ["accepted"] * 4
        device.push_ok([device.void(numbers[1])])

        clerk = {"Authorization": f"Bearer {staff_token(client, 'clerk.11110')}"}
        report = client.get("/api/v1/numbers/report", params={"device": device.device_id}, headers=clerk).json()
        first_block = report["blocks"][0]
        assert (first_block["issued"], first_block["voided"], first_block["spoiled"]) == (2, 1, 1)
        assert first_block["unused"] == first_block["count"] - 4
        assert first_block["gaps"] == [{"first": numbers[2], "last": numbers[3], "count": 2}]
        assert report["totals"]["count"] == sum(b["count"] for b in report["blocks"])
        accounted = ("issued", "voided", "cancelled_notices", "spoiled", "cancelled", "unused")
        assert sum(report["totals"][k] for k in accounted) == report["totals"]["count"]

        # after revocation, what was unused is cancelled, and the totals still add up
        admin = {"Authorization": f"Bearer {staff_token(client, 'admin')}"}
        revoked = client.post(f"/api/v1/devices/{device.device_id}/revoke", json={"reason": "분실"}, headers=admin)
        assert revoked.status_code == 200
        report = client.get("/api/v1/numbers/report", params={"device": device.device_id}, headers=clerk).json()
        assert report["totals"]["unused"] == 0
        assert report["totals"]["cancelled"] == revoked.json()["cancelled_numbers"]
        assert sum(report["totals"][k] for k in accounted) == report["totals"]["count"]

        # another district's clerk sees no such device
        other = {"Authorization": f"Bearer {staff_token(client, 'clerk.11680')}"}
        hidden = client.get("/api/v1/numbers/report", params={"device": device.device_id}, headers=other)
        assert hidden.status_code == 404 and hidden.json()["code"] == "not_found"
