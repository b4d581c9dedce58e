"""The fleet fault test (DESIGN.md §10, PROTOCOL.md §7 ``simulate``): real devices against a real gunicorn on a
cloned database, under cut connections, lost acknowledgements, duplicated and reordered batches and a server killed
mid-request; the invariant report, read from the server's database, must come out all zeros."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

from fleet import FAULT_KINDS, SimOptions, render, simulate
from pda_client import device as dev
from pda_client.store import Store
from server.config import ROOT

SUMMARY = re.compile(
    r"^devices=(\d+) events=(\d+) lost=(\d+) duplicated=(\d+) unaccounted_numbers=(\d+) money_mismatch_won=(\d+)$"
)
# devices run out of numbers after a few notices and top up their blocks under the faults too
SMALL_BLOCKS = {"JINGSU_BLOCK_SIZE": "5"}


def run_fleet(server, tmp_path: Path, seed: int, devices: int, events: int, kills: int) -> tuple[str, bool]:
    options = SimOptions(
        server=server.url,
        devices=devices,
        events=events,
        offline_rate=0.3,
        faults=FAULT_KINDS,
        fault_rate=0.5,
        kills=kills,
        seed=seed,
        concurrency=4,
        workdir=tmp_path / "fleet",
    )
    result = simulate(options, database_url=server.db_url, control=server)
    assert result.report is not None
    out = render(result, result.report)
    return out, result.ok


def assert_all_zero(out: str, devices: int, events: int, context: str) -> None:
    last = out.splitlines()[-1]
    match = SUMMARY.match(last)
    assert match, f"{context}: no summary line\n{out}"
    assert match.group(1, 2) == (str(devices), str(events)), f"{context}\n{out}"
    assert match.group(3, 4, 5, 6) == ("0", "0", "0", "0"), f"{context}\n{out}"


def test_a_fleet_under_every_fault_loses_nothing_doubles_nothing_and_reconciles_to_the_won(live_server, tmp_path):
    server = live_server(env=SMALL_BLOCKS)
    out, ok = run_fleet(server, tmp_path, seed=20261125, devices=20, events=200, kills=2)
    assert_all_zero(out, 20, 200, "seed 20261125")
    assert ok, f"seed 20261125\n{out}\n{server.logs()[-3000:]}"
    # every kind of fault was really injected, and the server was killed and restarted twice
    for kind in ("push.cut_before", "push.lost_ack", "push.duplicate", "push.reorder", "pull.lost_ack"):
        assert re.search(rf"^{re.escape(kind)}\s+[1-9]", out, re.M), f"{kind} never injected\n{out}"
    kills = sum(int(n) for n in re.findall(r"^(?:push|pull)\.kill_server\s+(\d+)$", out, re.M))
    assert kills == 2 and re.search(r"^server_restarts\s+2$", out, re.M), out


def test_a_fleet_with_a_random_seed_also_comes_out_all_zeros(live_server, tmp_path):
    seed = random.SystemRandom().randrange(2**31)
    server = live_server(env=SMALL_BLOCKS)
    out, ok = run_fleet(server, tmp_path, seed=seed, devices=8, events=100, kills=1)
    replay = f"replay: pda simulate --seed {seed} --devices 8 --events 100 --faults all --fault-rate 0.5 --kills 1"
    assert_all_zero(out, 8, 100, replay)
    assert ok, f"{replay}\n{out}"


def pda(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pda_client", *args], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env
    )


def test_the_invariant_report_fails_on_a_lost_notice_and_on_a_doubled_one(live_server, tmp_path):
    server = live_server()
    workdir = tmp_path / "fleet"
    run = pda("simulate", "--server", server.url, "--devices", "2", "--events", "12", "--seed", "7", "--faults",
              "cut_before,lost_ack", "--database-url", server.db_url, "--workdir", str(workdir))  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.splitlines()[-1] == "devices=2 events=12 lost=0 duplicated=0 unaccounted_numbers=0 " \
        "money_mismatch_won=0", run.stdout  # fmt: skip
    assert re.search(r"throughput \(events/s\)\s+\d", run.stdout), run.stdout

    def verify() -> subprocess.CompletedProcess[str]:
        return pda("simulate", "--server", server.url, "--database-url", server.db_url, "--workdir", str(workdir),
                   "--verify-only")  # fmt: skip

    assert verify().returncode == 0

    # device 0 prints a notice and never syncs it: the ledger lacks a printed notice
    store = Store(workdir / "device-0000")
    try:
        lost = dev.issue(store, dev.IssueCommand(code="P01", place="서울특별시 종로구 종로 1", plate="99허9999"))
    finally:
        store.close()
    check = verify()
    assert check.returncode == 1, check.stdout
    assert re.search(r" lost=[1-9]\d* ", check.stdout.splitlines()[-1]), check.stdout
    assert lost.notice_no in check.stdout

    # a second notices row appears on the server for a number of device 1 it never printed
    store = Store(workdir / "device-0001")
    try:
        phantom = dev.next_free_number(store, dev.system_clock())
    finally:
        store.close()
    device_1 = json.loads((workdir / "fleet.json").read_text())["devices"][1]["device_id"]
    engine = create_engine(server.db_url)
    try:
        with engine.begin() as conn:
            existing = conn.execute(
                text("SELECT notice_no FROM notices WHERE device_id = :d ORDER BY id DESC LIMIT 1"), {"d": device_1}
            ).scalar_one()
            conn.execute(
                text("CREATE TEMP TABLE copied AS SELECT * FROM notices WHERE notice_no = :n"), {"n": existing}
            )
            conn.execute(
                text("UPDATE copied SET id = nextval(pg_get_serial_sequence('notices', 'id')), notice_no = :p, "
                     "issued_event_id = :e"),
                {"p": phantom, "e": str(uuid.uuid4())},
            )  # fmt: skip
            conn.execute(text("INSERT INTO notices SELECT * FROM copied"))
    finally:
        engine.dispose()
    check = verify()
    assert check.returncode == 1, check.stdout
    assert re.search(r" duplicated=[1-9]\d* ", check.stdout.splitlines()[-1]), check.stdout
    assert phantom in check.stdout
