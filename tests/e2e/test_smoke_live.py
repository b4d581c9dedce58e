"""The real server answers a real device over HTTP (a first end-to-end check of the fixtures)."""

import httpx

from tests.support.device import Device


def test_a_device_enrolls_issues_and_pulls_its_notice_status_over_http(live_server):
    server = live_server()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        device = Device.enrolled(client)
        event = device.issue_parking()
        body = device.push_ok([event])
        assert body["acked_seq"] == 1
        assert body["results"][0]["status"] == "accepted"
        assert body["results"][0]["flags"] == []
        changes = device.pull_all()
        statuses = [c for c in changes if c["entity"] == "notice_status"]
        assert [(c["key"], c["data"]["status"]) for c in statuses] == [(event["notice_no"], "issued")]
