"""The whole story, from the street to a paid ledger entry, with the real parts: the server (gunicorn), the payment
gateway sandbox (its own process and key), the real ``pda`` CLI, a real QR decoder and the ESC/POS reader."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from datetime import timedelta
from pathlib import Path

import httpx
import zxingcpp
from PIL import Image

import protocol
from printing.escpos_reader import read_escpos
from protocol import payment_number
from tests.support.device import now_kst, register_device, staff_token
from tests.support.pda import Pda
from tests.support.story import clerk_notice, pay_through_the_citizen_page


def resend_callback(gateway_url: str, key: str, txn_id: str) -> int:
    path = f"/v1/payments/{txn_id}/callbacks"
    sig = hmac.new(bytes.fromhex(key), f"POST {path}".encode(), hashlib.sha256).hexdigest()
    response = httpx.post(gateway_url + path, headers={"X-Jingsu-Signature": sig}, timeout=10)
    assert response.status_code == 200, response.text
    return int(response.json()["delivered"])


def test_the_street_to_the_ledger_story_with_the_real_server_gateway_and_pda(server, gateway, tmp_path: Path):
    gateway_url, gateway_key = gateway
    api = httpx.Client(base_url=server.url, timeout=15)
    citizen = httpx.Client(timeout=15)
    device_id, code = register_device(api, "11110", "이야기 단말")
    pda = Pda(tmp_path / "pda")

    # enroll and log in; the first sync brings codes, schedules and two number blocks
    pda.enroll(server.url, code)
    pda.login("officer.11110.1")
    pda.run("sync")

    # the server goes away: three notices are issued offline, one printed to ESC/POS, then reprinted as PNG
    server.stop()
    first = pda.issue("--code", "P01", "--plate", "12가3456", "--place", "서울특별시 종로구 세종대로 175",
                      "--print", "escpos", "--out", str(tmp_path / "slip.bin"))  # fmt: skip
    second = pda.issue("--code", "P03", "--plate", "34나5678", "--vehicle-type", "van", "--place", "종로초등학교 앞")
    third = pda.issue("--code", "S01", "--name", "홍길동", "--birth-date", "1990-01-01", "--address",
                      "서울특별시 종로구 종로 1", "--rrn", "900101-1234567", "--place", "종로 금연구역")  # fmt: skip
    pda.run("reprint", first["고지번호"], "--print", "png", "--out", str(tmp_path / "slip.png"))
    assert pda.run("sync", check=False).returncode != 0, "no server: sync must say it could not transmit"

    today = now_kst().date()
    deadline = today + timedelta(days=14)
    assert (first["과태료"], first["감경 금액"]) == ("40,000원", "32,000원")
    assert (second["과태료"], second["감경 금액"]) == ("130,000원", "104,000원")
    assert (third["과태료"], third["감경 금액"]) == ("100,000원", "80,000원")
    assert first["의견제출기한"] == deadline.isoformat()
    qr = first["QR"]
    assert qr == protocol.qr_url(server.url, _qr_key(pda), first["고지번호"], 40000, 32000, deadline)

    # the PNG's QR, read by a real decoder, is the signed URL
    decoded = [b.text for b in zxingcpp.read_barcodes(Image.open(tmp_path / "slip.png"))]
    assert decoded == [qr]
    # the ESC/POS stream parses back to every printed field and the QR payload
    slip = read_escpos((tmp_path / "slip.bin").read_bytes())
    text = "\n".join(slip.lines)
    for expected in (first["고지번호"], "12가3456", "서울특별시 종로구 세종대로 175", "P01 일반 주정차 위반",
                     "40,000원", "32,000원", f"{deadline.year}년 {deadline.month:02d}월 {deadline.day:02d}일",
                     "서울특별시 종로구", "김단속",
                     payment_number.format(payment_number.for_notice(first["고지번호"], "41"))):  # fmt: skip
        assert expected in text, f"{expected!r} not on the ESC/POS slip:\n{text}"
    assert re.search(rf"위반일시\s+{today.year}-\d\d-\d\d \d\d:\d\d", text)
    assert slip.qr_payloads == [qr] and slip.cut

    # the server is back: everything syncs
    server.start()
    synced = pda.run("sync").stdout
    assert re.search(r"접수\s+accepted\s+4", synced), synced  # three issues and one reprint
    clerk = staff_token(api, "clerk.11110")
    listed = api.get("/api/v1/notices", headers={"Authorization": f"Bearer {clerk}"}).json()["items"]
    mine = {n["notice_no"]: n for n in listed if n["device_id"] == device_id}
    assert set(mine) == {first["고지번호"], second["고지번호"], third["고지번호"]}
    assert all(n["status"] == "issued" and n["flags"] == [] for n in mine.values())

    # a citizen pays the first notice from the QR; the gateway's callback arrives, and is sent once more
    txn_id, end_page = pay_through_the_citizen_page(citizen, qr)
    assert "납부가 완료되었습니다" in end_page and "32,000원" in end_page
    assert resend_callback(gateway_url, gateway_key, txn_id) == 200
    paid = clerk_notice(api, clerk, first["고지번호"])
    assert paid["status"] == "paid"
    assert paid["receivable"]["balance"] == 0
    assert sorted((e["kind"], e["amount"]) for e in paid["entries"]) == [
        ("charge", 40000), ("payment", -32000), ("reduction", -8000)
    ]  # fmt: skip
    assert [(p["amount"], p["status"]) for p in paid["payments"]] == [(32000, "paid")]
    # the timeline: what happened, in order, by which device (the payment by the gateway, no device)
    # (ordered by when each happened; the gateway's approval time has whole seconds, so it may tie with the sync)
    timeline = [(t["what"], t["actor_device_id"]) for t in paid["timeline"]]
    assert timeline[:2] == [("issued", device_id), ("reprinted", device_id)]
    assert sorted(timeline[2:]) == [("paid", None), ("synced", device_id)]
    assert all(t["at"] for t in paid["timeline"])

    # a fourth notice is paid before its device syncs: suspense, matched when the notice arrives
    fourth = pda.issue("--code", "P01", "--plate", "56다7890", "--place", "서울특별시 종로구 율곡로 1")
    early_page = citizen.get(fourth["QR"])
    assert "전송 대기 중" in early_page.text and "32,000원" in early_page.text
    _, end_page = pay_through_the_citizen_page(citizen, fourth["QR"])
    assert "고지서가 전송되면 자동으로 반영됩니다" in end_page

    # the feed serves a change once every older transaction on the database server has ended, so on a busy shared
    # server the statuses may need another sync (as a device would do on its next round)
    synced = ""
    for _ in range(20):
        synced += pda.run("sync").stdout
        if all(re.search(rf"^{n['고지번호']}\s+납부 완료\s+paid$", synced, re.M) for n in (first, fourth)):
            break
        time.sleep(1)
    for notice in (first, fourth):
        assert re.search(rf"^{notice['고지번호']}\s+납부 완료\s+paid$", synced, re.M), synced
    matched = clerk_notice(api, clerk, fourth["고지번호"])
    assert matched["status"] == "paid" and matched["receivable"]["balance"] == 0
    for other, amount in ((second, 130000), (third, 100000)):
        unchanged = clerk_notice(api, clerk, other["고지번호"])
        assert unchanged["status"] == "issued"
        assert unchanged["receivable"]["balance"] == amount
        assert unchanged["payments"] == []
    status = pda.run("status").stdout
    assert re.search(r"접수\s+accepted\s+5", status) and "거부" not in status


def _qr_key(pda: Pda) -> str:
    import json

    with pda.db() as conn:
        (value,) = conn.execute("SELECT value FROM meta WHERE key = 'enrollment'").fetchone()
    return str(json.loads(value)["qr_key"])
