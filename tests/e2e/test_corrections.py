"""``notice.corrected`` from the real ``pda`` CLI to the ledger: the officer corrects a notice issued by mistake."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import zxingcpp
from PIL import Image

from tests.support.device import staff_token
from tests.support.pda import enrolled_pda, issue_parking


def test_a_corrected_violation_code_reprices_the_notice_and_the_old_slip_still_opens_its_page(
    live_server, tmp_path: Path
):
    server = live_server()
    pda, device_id = enrolled_pda(server, tmp_path / "pda")
    issued = pda.issue("--code", "P01", "--plate", "12가7000", "--place", "서울특별시 종로구 종로 1")
    notice_no = issued["고지번호"]
    pda.run("sync")

    # it had been parked for more than two hours: P02, 50,000 won, reprinted with a newly signed QR
    pda.run("correct", notice_no, "--code", "P02", "--reason", "2시간 이상 주차 확인",
            "--print", "png", "--out", str(tmp_path / "corrected.png"))  # fmt: skip
    out = pda.run("sync").stdout
    assert re.search(r"접수\s+accepted\s+1", out), out

    with httpx.Client(base_url=server.url, timeout=15) as api:
        clerk = {"Authorization": f"Bearer {staff_token(api, 'clerk.11110')}"}
        notice = api.get(f"/api/v1/notices/{notice_no}", headers=clerk).json()
        assert (notice["violation_code"], notice["amount"], notice["reduced_amount"]) == ("P02", 50000, 40000)
        assert (notice["version"], notice["status"], notice["flags"]) == (2, "issued", [])
        assert [(e["kind"], e["amount"]) for e in notice["entries"]] == [("charge", 40000), ("correction", 10000)]
        assert notice["receivable"]["balance"] == 50000
        assert [t["what"] for t in notice["timeline"]][-1] == "corrected"

        new_qr = zxingcpp.read_barcodes(Image.open(tmp_path / "corrected.png"))[0].text
        assert "a=50000" in new_qr and "r=40000" in new_qr
        page = api.get(new_qr)
        assert page.status_code == 200 and "40,000원" in page.text and 'id="corrected"' not in page.text
        # the slip first left on the windscreen still opens the page, which shows the corrected amounts
        old_page = api.get(issued["QR"])
        assert old_page.status_code == 200 and 'id="corrected"' in old_page.text and "40,000원" in old_page.text


def test_a_correction_of_a_notice_a_clerk_already_decided_is_a_conflict_kept_on_the_device(live_server, tmp_path: Path):
    server = live_server()
    pda, _ = enrolled_pda(server, tmp_path / "pda")
    notice_no = issue_parking(pda, "12가7001")
    pda.run("sync")
    with httpx.Client(base_url=server.url, timeout=15) as api:
        clerk = {"Authorization": f"Bearer {staff_token(api, 'clerk.11110')}"}
        cancelled = api.post(f"/api/v1/review/{notice_no}/cancel", json={"reason": "중복 단속"},
                             headers={**clerk, "If-Match": '"1"'})  # fmt: skip
        assert cancelled.status_code == 200, cancelled.text
    pda.run("correct", notice_no, "--plate", "12가7002", "--reason", "번호판 오기")
    out = pda.run("sync").stdout
    assert re.search(rf"seq \d+ {notice_no}: conflict stale_base_version", out), out
    # the pull of the same sync tells the device what the clerk decided
    assert re.search(rf"^{notice_no}\s+직권취소\s+cancelled$", out, re.M), out


def test_a_correction_printed_with_an_amount_the_server_does_not_confirm_sends_the_notice_to_review(
    module_live_server,
):
    import protocol
    from tests.support.device import Device

    with httpx.Client(base_url=module_live_server.url, timeout=15) as client:
        device = Device.enrolled(client)
        issued = device.issue_parking()
        device.push_ok([issued])
        wrong = device._event(
            protocol.NOTICE_CORRECTED,
            issued["notice_no"],
            {"amount": 50000, "reduced_amount": 1000, "reason": "금액 정정"},
            base_version=1,
        )
        result = device.push_ok([wrong])["results"][0]
        assert (result["status"], result["version"]) == ("accepted", 2)
        assert "amount_mismatch" in result["flags"]
        clerk = {"Authorization": f"Bearer {staff_token(client, 'clerk.11110')}"}
        notice = client.get(f"/api/v1/notices/{issued['notice_no']}", headers=clerk).json()
        assert (notice["status"], notice["version"], notice["amount"]) == ("under_review", 2, 50000)
        assert "amount_mismatch" in notice["flags"]
        queue = client.get("/api/v1/review", headers=clerk).json()["items"]
        assert issued["notice_no"] in [n["notice_no"] for n in queue]
