"""The device's outbox with the real ``pda`` CLI and the real server: crash-safe, nothing lost, nothing doubled."""

from __future__ import annotations

import re
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from sandboxes.launcher import start_gateway as start_sandbox
from sandboxes.launcher import stop as stop_sandbox
from server.config import ROOT
from tests.conftest import free_port
from tests.support.pda import enrolled_pda, issue_parking
from tests.support.story import pay_through_the_citizen_page


def ledger_of(db_url: str, device_id: str) -> list[tuple[str, int, int]]:
    """(notice_no, charge entries, sum of entries) for every notice of the device, from the server's database."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT n.notice_no, count(e.id) FILTER (WHERE e.kind = 'charge'), coalesce(sum(e.amount), 0) "
                    "FROM notices n JOIN receivables r ON r.notice_id = n.id "
                    "JOIN ledger_entries e ON e.receivable_id = r.id WHERE n.device_id = :d "
                    "GROUP BY n.notice_no ORDER BY n.notice_no"
                ),
                {"d": device_id},
            ).all()
    finally:
        engine.dispose()
    return [(r[0], int(r[1]), int(r[2])) for r in rows]


def test_a_sync_killed_after_the_server_committed_settles_every_event_exactly_once_next_time(
    live_server, tmp_path: Path
):
    server = live_server()
    pda, device_id = enrolled_pda(server, tmp_path / "pda")
    numbers = [issue_parking(pda, plate) for plate in ("11가1111", "22나2222", "33다3333")]

    # the server commits the batch, then the device dies (SIGKILL) before it can write down the answer
    killed = pda.run("sync", env={"PDA_FAULT": "kill_after_push"}, check=False)
    assert killed.returncode == -signal.SIGKILL
    assert [row["state"] for row in pda.outbox()] == ["pending"] * 3
    assert ledger_of(server.db_url, device_id) == [(n, 1, 40000) for n in sorted(numbers)]

    # the next sync sends the same events again: the server knows them, the device settles them, once each
    again = pda.run("sync").stdout
    assert re.search(r"중복\(이미 접수\)\s+duplicate\s+3", again), again
    assert [(row["state"], row["status"]) for row in pda.outbox()] == [("done", "duplicate")] * 3
    assert ledger_of(server.db_url, device_id) == [(n, 1, 40000) for n in sorted(numbers)]
    assert "전송 대기" not in pda.run("status").stdout


def test_after_a_new_epoch_the_device_resends_what_it_kept_then_refetches_its_scope_and_loses_nothing(
    live_server, tmp_path: Path
):
    server = live_server()
    pda, device_id = enrolled_pda(server, tmp_path / "pda")
    synced = issue_parking(pda, "44라4444")
    pda.run("sync")
    unsynced = issue_parking(pda, "55마5555")
    epoch_before = re.search(r"epoch\s+(\S+)", pda.run("status").stdout).group(1)  # type: ignore[union-attr]

    flask = Path(sys.executable).parent / "flask"
    bumped = subprocess.run(
        [str(flask), "--app", "wsgi", "bump-epoch"], cwd=ROOT, env=server.env, capture_output=True, text=True
    )
    assert bumped.returncode == 0, bumped.stderr

    out = pda.run("sync").stdout
    assert "reset=yes" in out
    # the unsynced event was applied, then everything kept went again and the server knew it: nothing lost or doubled
    assert re.search(r"접수\s+accepted\s+1", out) and re.search(r"중복\(이미 접수\)\s+duplicate\s+2", out), out
    outbox = {row["notice_no"]: (row["state"], row["status"]) for row in pda.outbox()}
    assert outbox == {synced: ("done", "accepted"), unsynced: ("done", "accepted")}
    assert ledger_of(server.db_url, device_id) == sorted([(synced, 1, 40000), (unsynced, 1, 40000)])
    status = pda.run("status").stdout
    assert epoch_before not in status
    # the scope came back: codes, schedules and numbers to issue with
    assert issue_parking(pda, "66바6666")
    assert int(re.search(r"남은 번호\s+(\d+)", status).group(1)) > 900  # type: ignore[union-attr]


def test_a_refused_event_is_kept_and_shown_by_status(live_server, tmp_path: Path):
    key = secrets.token_hex(32)
    port = free_port()
    gateway = start_sandbox(port, key)
    try:
        server = live_server(env={"JINGSU_GATEWAY_URL": f"http://127.0.0.1:{port}", "JINGSU_GATEWAY_KEY": key})
        pda, _ = enrolled_pda(server, tmp_path / "pda")
        issued = pda.issue("--code", "P01", "--plate", "77사7777", "--place", "서울특별시 종로구 종로 1")
        pda.run("sync")
        # the citizen pays while the officer, not yet knowing it, voids the notice on the device
        with httpx.Client(timeout=15) as citizen:
            pay_through_the_citizen_page(citizen, issued["QR"])
        pda.run("void", issued["고지번호"], "--reason", "wrong_vehicle")
        out = pda.run("sync").stdout
        assert re.search(rf"seq \d+ {issued['고지번호']}: conflict stale_base_version", out), out
        assert re.search(rf"^{issued['고지번호']}\s+납부 완료\s+paid$", out, re.M), out
        status = pda.run("status").stdout
        assert re.search(r"충돌\s+conflict\s+1", status), status
        assert re.search(rf"{issued['고지번호']}: conflict stale_base_version", status), status
        # kept with its fate, and not re-sent as it is: the next sync pushes nothing
        assert [row["state"] for row in pda.outbox() if row["status"] == "conflict"] == ["done"]
        assert "conflict" not in pda.run("sync").stdout
    finally:
        stop_sandbox(gateway)


def test_spoiled_numbers_and_voids_reach_the_server_and_a_spoiled_number_is_never_issued(live_server, tmp_path):
    server = live_server()
    pda, device_id = enrolled_pda(server, tmp_path / "pda")
    first = issue_parking(pda, "88아8888")
    # the printer jams on the next number: spoil it; the next notice takes the number after it
    following = int(first[7:14]) + 1
    from protocol import format_notice_no

    jammed = format_notice_no(first[:5], first[5:7], following)
    pda.run("spoil", jammed, "--reason", "printer_jam")
    second = issue_parking(pda, "99자9999")
    assert second == format_notice_no(first[:5], first[5:7], following + 1)
    pda.run("void", first, "--reason", "driver_returned")
    out = pda.run("sync").stdout
    assert re.search(r"접수\s+accepted\s+4", out), out
    engine = create_engine(server.db_url)
    try:
        with engine.connect() as conn:
            spoiled = conn.execute(text("SELECT notice_no, reason FROM spoiled_numbers")).all()
            statuses = dict(conn.execute(text("SELECT notice_no, status FROM notices WHERE device_id = :d"),
                                         {"d": device_id}).all())  # fmt: skip
    finally:
        engine.dispose()
    assert spoiled == [(jammed, "printer_jam")]
    assert statuses == {first: "voided", second: "issued"}
    assert pda.run("spoil", jammed, "--reason", "misprint", check=False).returncode != 0


def test_acknowledged_events_are_kept_for_retention_days_then_forgotten(live_server, tmp_path: Path):
    kept_server = live_server()
    pda, _ = enrolled_pda(kept_server, tmp_path / "kept")
    issue_parking(pda, "12가0001")
    pda.run("sync")
    assert [(row["state"], row["status"]) for row in pda.outbox()] == [("done", "accepted")]

    # a server whose devices keep acknowledged events for 0 days: they are gone after the sync that settled them
    brief_server = live_server(env={"JINGSU_RETENTION_DAYS": "0"})
    brief, _ = enrolled_pda(brief_server, tmp_path / "brief")
    issue_parking(brief, "12가0002")
    out = brief.run("sync").stdout
    assert re.search(r"접수\s+accepted\s+1", out), out
    assert brief.outbox() == []
