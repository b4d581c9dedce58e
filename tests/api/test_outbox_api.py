"""The outbox through the app (``/api/v1/outbox``) with the real registry and e-approval sandbox processes: a call
that cannot get through backs off; one refused for good is a dead letter a clerk or an admin sees, retries or
cancels (audited); what waited for it goes on or is undone. The worker's round is ``tests.support.outbox.deliver_for``
with the app's own configuration: an app with a wrong key is the outage, an app with the right one the repair.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from flask import Flask
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from sandboxes.launcher import start_approval, start_registry
from sandboxes.launcher import stop as stop_sandbox
from server import create_app
from server.config import Config
from tests.conftest import free_port
from tests.factories import maker
from tests.support.device import now_kst, staff_token
from tests.support.outbox import deliver_for

REGISTRY_KEY = "0b0e" * 16
APPROVAL_SECRET = "a0b0" * 16
WRONG_KEY = "dead" * 16


@dataclasses.dataclass(frozen=True)
class Outside:
    registry_url: str
    approval_url: str


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outside]:
    logs = tmp_path_factory.mktemp("outbox-sandboxes")
    registry_port, approval_port = free_port(), free_port()
    registry = start_registry(registry_port, REGISTRY_KEY, log_path=logs / "registry.log")
    approval = start_approval(approval_port, APPROVAL_SECRET, log_path=logs / "approval.log")
    yield Outside(f"http://127.0.0.1:{registry_port}", f"http://127.0.0.1:{approval_port}")
    stop_sandbox(approval)
    stop_sandbox(registry)


class Clock:
    def __init__(self) -> None:
        self.now = now_kst()

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def app_with(connection: Connection, config: Config, outside: Outside, clock: Clock, **keys: str) -> Flask:
    """An app on the test's connection whose adapters use ``keys`` (the right ones unless told)."""
    settings = {
        "registry_url": outside.registry_url,
        "registry_key": REGISTRY_KEY,
        "approval_url": outside.approval_url,
        "approval_secret": APPROVAL_SECRET,
        "outbox_backoff_seconds": 30,
        **keys,
    }
    return create_app(dataclasses.replace(config, **settings), bind=connection, clock=clock)


@pytest.fixture
def app(connection: Connection, test_config: Config, outside: Outside, clock: Clock) -> Flask:
    """The app the clerk uses; its adapters' keys are wrong (the outage)."""
    return app_with(connection, test_config, outside, clock, registry_key=WRONG_KEY, approval_secret=WRONG_KEY)


@pytest.fixture
def repaired(connection: Connection, test_config: Config, outside: Outside, clock: Clock) -> Flask:
    """The same system with the right keys (after the repair)."""
    return app_with(connection, test_config, outside, clock)


def issued(connection: Connection, kind: str, *, days_ago: int = 1, **fields: str) -> str:
    """A notice of 11110 issued and synced ``days_ago`` (the factories' way: no device feed in the way)."""
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        make = maker(session)
        observed = now_kst() - timedelta(days=days_ago)
        notice = make.parking(observed, **fields) if kind == "parking" else make.person(observed, **fields)
        session.commit()
        return notice.notice_no


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def rows(client: httpx.Client, headers: dict[str, str], **params: str) -> list[dict[str, Any]]:
    return list(ok(client.get("/api/v1/outbox", params={**params, "limit": 500}, headers=headers))["items"])


def test_a_refused_lookup_is_a_dead_letter_that_a_clerk_retries_and_it_is_delivered_once_repaired(
    app, repaired, client, connection
):
    clerk = {"Authorization": f"Bearer {staff_token(client, 'clerk.11110')}"}
    notice_no = issued(connection, "parking", plate="23가4567")
    queued = ok(
        client.post("/api/v1/owner-lookups", json={"channel": "mail", "jurisdiction": "11110"}, headers=clerk), 202
    )
    assert notice_no in queued["notices"]

    report = deliver_for(app)  # the registry refuses our signature: no use trying again
    assert report.dead >= 1 and report.retried == 0
    [dead] = [
        row for row in rows(client, clerk, status="dead", target="registry") if row["payload"]["notice_no"] == notice_no
    ]
    assert dead["attempts"] == 1 and "bad_signature" in dead["last_error"]
    assert dead["idempotency_key"] == f"registry.lookup:{notice_no}:1" and dead["sealed"] is False
    assert deliver_for(repaired).claimed == 0  # dead: nobody delivers it until a person says so
    timeline = ok(client.get(f"/api/v1/notices/{notice_no}/timeline", headers=clerk))
    assert [i["what"] for i in timeline["items"] if i["source"] == "case"][-2:] == [
        "owner_lookup_requested",
        "owner_lookup_failed",
    ]
    assert ok(client.get(f"/api/v1/fines/{notice_no}", headers=clerk))["stage"] == "synced"

    retried = ok(
        client.post(
            f"/api/v1/outbox/{dead['id']}/retry", json={"reason": "레지스트리 키 교체 후 재전송"}, headers=clerk
        )
    )
    assert (retried["status"], retried["attempts"]) == ("pending", 0)
    assert [(a["action"], a["actor_label"], a["reason"]) for a in retried["actions"]] == [
        ("retry", "clerk.11110", "레지스트리 키 교체 후 재전송")
    ]
    assert deliver_for(repaired).outcomes["registry.lookup:noticed"] >= 1

    done = ok(client.get(f"/api/v1/outbox/{dead['id']}", headers=clerk))
    assert (done["status"], done["answer"]["result"], done["last_error"]) == ("done", "noticed", None)
    assert ok(client.get(f"/api/v1/fines/{notice_no}", headers=clerk))["stage"] == "advance_noticed"
    again = client.post(f"/api/v1/outbox/{dead['id']}/retry", json={"reason": "again"}, headers=clerk)
    assert again.status_code == 409 and again.json()["code"] == "invalid_transition"


def test_an_unreachable_registry_is_tried_again_after_a_backoff(connection, test_config, outside, clock, client):
    nowhere = app_with(connection, test_config, outside, clock, registry_url=f"http://127.0.0.1:{free_port()}")
    clerk = {"Authorization": f"Bearer {staff_token(client, 'clerk.11110')}"}
    notice_no = issued(connection, "parking", plate="45나6789")
    ok(client.post("/api/v1/owner-lookups", json={"channel": "mail"}, headers=clerk), 202)

    report = deliver_for(nowhere)

    assert report.retried >= 1 and report.dead == 0
    [row] = [r for r in rows(client, clerk, target="registry") if r["payload"]["notice_no"] == notice_no]
    assert (row["status"], row["attempts"], row["leased_by"]) == ("pending", 1, None)
    assert "could not be reached" in row["last_error"]
    waited = datetime.fromisoformat(row["next_attempt_at"]) - clock.now
    assert 15 <= waited.total_seconds() <= 30  # half the 30 s backoff plus up to the other half
    assert deliver_for(nowhere).claimed == 0  # not before its time


def test_a_cancelled_submission_puts_the_batch_back_and_a_refresh_submits_it_anew(app, repaired, client, connection):
    clerk = {"Authorization": f"Bearer {staff_token(client, 'clerk.11110')}"}
    admin = {"Authorization": f"Bearer {staff_token(client, 'admin')}"}
    issued(connection, "person", name="박취소", days_ago=40)  # its opinion period is over
    batch = ok(client.post("/api/v1/imposition-batches", json={"jurisdiction": "11110"}, headers=clerk), 201)
    assert batch["status"] == "submitting"

    assert deliver_for(app).dead == 1  # e-approval refuses our signature
    [dead] = rows(client, admin, status="dead", target="approval")
    assert (
        dead["payload"]["reference_id"] == batch["reference_id"]
        and dead["stream"] == f"approval:{batch['reference_id']}"
    )
    cancelled = ok(client.post(f"/api/v1/outbox/{dead['id']}/cancel", json={"reason": "문서 재상신"}, headers=admin))
    assert cancelled["status"] == "cancelled" and cancelled["actions"][0]["action"] == "cancel"
    assert ok(client.get(f"/api/v1/imposition-batches/{batch['id']}", headers=clerk))["status"] == "proposed"

    refreshed = ok(client.post(f"/api/v1/imposition-batches/{batch['id']}/refresh", headers=clerk))
    assert refreshed["status"] == "submitting"
    assert deliver_for(repaired).outcomes == {"approval.submit:submitted": 1}
    [sent] = [row for row in rows(client, admin, target="approval", status="done")]
    assert sent["idempotency_key"].endswith(":2") and sent["answer"]["submission_id"]
    submitted = ok(client.get(f"/api/v1/imposition-batches/{batch['id']}", headers=clerk))
    assert (submitted["status"], submitted["submission_id"]) == ("submitted", sent["answer"]["submission_id"])
