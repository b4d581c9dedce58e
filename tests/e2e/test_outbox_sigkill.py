"""Deliveries survive a worker killed in the middle of one (issue 12 §2): real worker processes
(``python -m flask --app wsgi worker``), the real registry, e-approval and gateway sandbox processes, a cloned
database.

The outbox holds four 차적조회 (one plate never registered), one imposition batch's submission and one late refund.
Each sandbox is told to hold back the answer to the first request it gets — applied, answer made, not sent — and the
worker waiting for it is killed (SIGKILL) there; the next worker takes the row over once its lease runs out and
delivers it again with the same idempotency key. At the end every sandbox has applied every key exactly once
(effects == 1), received each at least once and the interrupted ones at least twice, and Jingsu applied each answer
once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from adapters.gateway import GatewaySettings, HttpGateway
from models import fines, outbox, payments
from models.base import Actor, Scope
from sandboxes.launcher import start_approval, start_gateway, start_registry
from sandboxes.launcher import stop as stop_sandbox
from server.config import ROOT
from services import payments as payment_service
from services.uow import transactions
from tests.conftest import free_port, server_env
from tests.factories import CLERK, maker

REGISTRY_KEY = "5151" * 16
APPROVAL_SECRET = "a9a9" * 16
GATEWAY_KEY = "6a6a" * 16
WAIT_S = 60.0
PLATES = ("12가3456", "23가4567", "45나6789", "99가0000")  # the last one: never registered


@dataclass
class Sandbox:
    name: str
    url: str
    proc: Any

    def control(self, method: str, route: str, **body: Any) -> dict[str, Any]:
        """A sandbox-only control (``/sandbox/…``)."""
        response = httpx.request(method, f"{self.url}{route}", json=body or None, timeout=10, trust_env=False)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def keys(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = self.control("GET", "/sandbox/idempotency")["keys"]
        return counts


@pytest.fixture
def sandboxes(tmp_path: Path) -> Iterator[dict[str, Sandbox]]:
    started: dict[str, Sandbox] = {}
    try:
        for name, start, secret in (
            ("registry", start_registry, REGISTRY_KEY),
            ("approval", start_approval, APPROVAL_SECRET),
            ("gateway", start_gateway, GATEWAY_KEY),
        ):
            port = free_port()
            proc = start(port, secret, log_path=tmp_path / f"{name}.log")  # type: ignore[operator]
            started[name] = Sandbox(name, f"http://127.0.0.1:{port}", proc)
        yield started
    finally:
        for box in started.values():
            stop_sandbox(box.proc)


class Workers:
    """``python -m flask --app wsgi worker`` processes on the test database, each in its own process group."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        n = len(self.procs) + 1
        with open(self.logs / f"worker-{n}.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--tick", "0.1"],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert proc.returncode == -signal.SIGKILL

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.logs.glob("worker-*.log")))


def wait_for(what: str, ready: Callable[[], bool], workers: Workers) -> None:
    """Poll ``ready`` (no fixed sleep decides anything: only the deadline is a time)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {WAIT_S:.0f} s\n{workers.log()}")


def fill_the_outbox(sessions: sessionmaker[Session], gateway: Sandbox, now: datetime) -> None:
    """Four 차적조회, one batch submission and one refund, each queued by the decision that needs it."""
    with transactions(sessions)() as session:
        make = maker(session)
        for plate in PLATES:
            make.parking(now - timedelta(days=1), plate=plate)
        for name in ("가나다", "라마바"):
            make.person(now - timedelta(days=40), name=name)
    with transactions(sessions)() as session:
        assert len(fines.request_owner_lookups(session, now, jurisdiction="11110").queued) == len(PLATES)
    with transactions(sessions)() as session:
        batch = fines.propose_imposition(session, "11110", CLERK, now)
        fines.request_submission(
            session, batch, "clerk.11110", "http://127.0.0.1:9/api/v1/approvals/callbacks/sandbox", now
        )
    # a payment abandoned, then approved at the gateway after all: its refund is decided when the answer is settled
    client = HttpGateway(GatewaySettings(gateway.url, GATEWAY_KEY))
    settings = payment_service.PaySettings("sandbox", "http://127.0.0.1:9", timedelta(hours=24))
    created = payment_service.create_at_gateway(client, settings, "111102600000020", 40000, "order-late-1", "a=1")
    with transactions(sessions)() as session:
        payment_service.record_started(session, settings, "111102600000020", 40000, "order-late-1", created)
        payments.fail_payment(session, "sandbox", created.txn_id, "abandoned")
    approved = httpx.post(f"{gateway.url}/pay/{created.txn_id}/approve", timeout=10, trust_env=False)
    assert approved.status_code == 303
    with transactions(sessions)() as session:
        answer = client.query(created.txn_id)
        assert payment_service.settle(session, "sandbox", answer, {}, Actor.system(), now) == "refund_queued"


def test_a_worker_killed_mid_delivery_is_taken_over_and_every_key_is_applied_once(
    clone_db, sandboxes: dict[str, Sandbox], tmp_path: Path
):
    url = clone_db()
    engine = create_engine(url)
    sessions = sessionmaker(bind=engine, expire_on_commit=False)
    (tmp_path / "var").mkdir()
    env = {
        **os.environ,
        **server_env(url, tmp_path / "var", "http://127.0.0.1:9"),
        "JINGSU_REGISTRY_URL": sandboxes["registry"].url,
        "JINGSU_REGISTRY_KEY": REGISTRY_KEY,
        "JINGSU_APPROVAL_URL": sandboxes["approval"].url,
        "JINGSU_APPROVAL_SECRET": APPROVAL_SECRET,
        "JINGSU_GATEWAY_URL": sandboxes["gateway"].url,
        "JINGSU_GATEWAY_KEY": GATEWAY_KEY,
        "JINGSU_OUTBOX_LEASE_SECONDS": "2",  # a dead worker's row is taken over two seconds after its claim
        "JINGSU_OUTBOX_BATCH": "1",  # one row a claim: a dead worker holds only the row it was delivering
    }
    workers = Workers(env, tmp_path)
    try:
        fill_the_outbox(sessions, sandboxes["gateway"], datetime.now(UTC))
        for box in sandboxes.values():
            box.control("POST", "/sandbox/hold", count=1, path="/v1/")

        # each sandbox in turn: the worker waiting for its held answer dies, the next worker goes on
        for name in ("registry", "approval", "gateway"):
            box = sandboxes[name]
            proc = workers.start()
            wait_for(
                f"{name} holds a delivery", lambda box=box: box.control("GET", "/sandbox/hold")["held"] == 1, workers
            )
            workers.kill(proc)  # in the middle of the delivery: applied at the sandbox, the answer never read
            assert box.control("POST", "/sandbox/release")["released"] == 1
        workers.start()

        def all_done() -> bool:
            with sessions() as session:
                waiting = select(func.count()).select_from(outbox.OutboxRow).where(outbox.OutboxRow.status != "done")
                return session.scalar(waiting) == 0

        wait_for("every outbox row done", all_done, workers)
    finally:
        workers.stop_all()

    with sessions() as session:
        rows = {row.idempotency_key: row for row in session.scalars(select(outbox.OutboxRow))}
        assert len(rows) == len(PLATES) + 2, sorted(rows)
        for name, box in sandboxes.items():
            counts = box.keys()
            ours = {key: row for key, row in rows.items() if row.target == name}
            assert ours and set(ours) <= set(counts), (name, sorted(ours), counts)
            for key in ours:
                assert counts[key]["effects"] == 1, (name, key, counts[key])
                assert counts[key]["deliveries"] >= 1, (name, key, counts[key])
            interrupted = [key for key in ours if counts[key]["deliveries"] >= 2]
            assert interrupted, f"{name}: no delivery was interrupted: {counts}"
            assert all(rows[key].attempts >= 2 for key in interrupted), [(k, rows[k].attempts) for k in interrupted]
            assert all(row.leased_by is None and row.answer for row in ours.values())

        # Jingsu applied each answer once
        lookups = {row.payload["notice_no"]: row.answer["result"] for row in rows.values() if row.target == "registry"}
        assert sorted(lookups.values()) == ["not_registered", "noticed", "noticed", "noticed"]
        for notice_no, result in lookups.items():
            notice, case = fines.find_case(session, Scope.everything(), notice_no, datetime.now(UTC))
            events = [t.what for t in fines.timeline(session, notice) if t.source == "case"]
            documents = [d.kind for d in fines.documents(session, notice.id)]
            if result == "noticed":
                assert case.stage == "advance_noticed" and documents == ["advance_notice"]
                assert events.count("owner_found") == events.count("advance_notice") == 1
            else:
                assert case.stage == "synced" and documents == [] and events.count("owner_not_found") == 1
        [batch] = session.scalars(select(fines.ImpositionBatch)).all()
        submit = next(row for row in rows.values() if row.target == "approval")
        assert (batch.status, batch.submission_id) == ("submitted", submit.answer["submission_id"])
        refund = next(row for row in rows.values() if row.target == "gateway")
        events = payments.events_of(session, "sandbox", refund.payload["txn_id"])
        answered = [e.body["status"] for e in events if e.kind == "status_answer" and e.body]
        assert answered == ["approved", "cancelled"]  # the settled approval, then the refund's one answer
    engine.dispose()
