"""A new device in a district with 100,000 rows of reference data syncs in pages, in bounded memory on both sides."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
from sqlalchemy import create_engine, text

from models.feed import register_writer
from server.config import ROOT
from tests.support.device import register_device
from tests.support.pda import DEMO_PASSWORD

ROWS = 100_000
RSS_LIMIT_MB = 200


def add_zones(db_url: str, count: int) -> None:
    """Generated zones of 종로구, each with its change for devices to pull (as the domain would record them)."""
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            register_writer(conn)  # it writes zones, then their changes
            conn.execute(
                text(
                    "INSERT INTO zones (id, jurisdiction, name, kind) "
                    "SELECT 'G' || lpad(n::text, 6, '0'), '11110', '생성 구역 ' || n, 'school' "
                    "FROM generate_series(1, :count) AS n"
                ),
                {"count": count},
            )
            conn.execute(
                text(
                    "INSERT INTO change_log (scope, entity, key, op, data) "
                    "SELECT 'j:11110', 'zone', id, 'upsert', jsonb_build_object('id', id, 'name', name, 'kind', kind) "
                    "FROM zones WHERE id LIKE 'G%' ORDER BY id"
                )
            )
    finally:
        engine.dispose()


def peak_rss_mb(pid: int) -> float:
    """The high-water mark of a process's resident memory (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for {pid}")


def test_a_first_sync_of_100000_zones_pages_through_in_bounded_memory(live_server, tmp_path: Path):
    server = live_server(workers=1)
    add_zones(server.db_url, ROWS)
    with httpx.Client(base_url=server.url, timeout=30) as api:
        _, code = register_device(api, "11110", "큰 동기화 단말")
    home = tmp_path / "pda"
    pda = [sys.executable, "-m", "pda_client", "--home", str(home)]
    subprocess.run([*pda, "enroll", "--server", server.url, "--code", code], cwd=ROOT, check=True, capture_output=True)
    subprocess.run([*pda, "login", "--officer", "officer.11110.1", "--password-stdin"], cwd=ROOT, check=True,
                   input=DEMO_PASSWORD + "\n", text=True, capture_output=True)  # fmt: skip

    # the device's memory, sampled while it syncs
    proc = subprocess.Popen([*pda, "sync"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watched = psutil.Process(proc.pid)
    device_peak = 0
    while proc.poll() is None:
        try:
            device_peak = max(device_peak, watched.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.02)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    device_peak_mb = device_peak / 2**20
    pulled = int(stdout.split("pulled=")[1].split()[0])
    assert pulled > ROWS  # the zones and the rest of the scope
    assert "수신" in stderr  # the progress bar

    import sqlite3

    with sqlite3.connect(home / "device.sqlite3") as conn:
        (zones,) = conn.execute("SELECT count(*) FROM reference WHERE entity = 'zone'").fetchone()
    assert zones == ROWS + 3  # the generated ones and the demo zones of 종로구

    assert device_peak_mb > 10, "the sampling saw the sync process"
    print(f"first sync of {pulled} changes: device peak {device_peak_mb:.0f} MB", end="; ")
    assert device_peak_mb < RSS_LIMIT_MB, f"the device peaked at {device_peak_mb:.0f} MB"
    assert server.proc is not None
    workers = psutil.Process(server.proc.pid).children()
    server_peak_mb = max(peak_rss_mb(w.pid) for w in workers)
    print(f"server worker peak {server_peak_mb:.0f} MB")
    assert server_peak_mb < RSS_LIMIT_MB, f"the server worker peaked at {server_peak_mb:.0f} MB"
