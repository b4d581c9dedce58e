"""Hypothesis drives push and pull interleavings against the real app and a real, committing PostgreSQL database.

A model device issues and voids notices offline; the machine pushes any subset of its events, in any order, any
number of times (lost acknowledgements, duplicates, reordering), and pulls in between. After every step the server
must agree with the model: every event pushed up to a complete prefix is applied exactly once, nothing is applied
twice, ``acked_seq`` only moves forward, a pull never repeats a change on its cursor chain, and the ledger's money
equals the printed amounts of the live notices.
"""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from sqlalchemy import create_engine, text

from server import create_app
from server.config import Config
from tests.conftest import server_env
from tests.support.device import Device


@pytest.fixture(scope="module")
def committing_app(db_admin, _template_name, tmp_path_factory):
    name = db_admin.create("jingsu_h_", template=_template_name)
    url = db_admin.url_for(name)
    config = Config.from_env(server_env(url, tmp_path_factory.mktemp("var"), "http://localhost"))
    app = create_app(config)
    engine = create_engine(url)
    yield app, engine
    engine.dispose()
    app.extensions["jingsu"].engine.dispose()
    db_admin.drop(name)


PLATES = itertools.count(10)


def run_machine(app: Any, engine: Any) -> None:
    class SyncMachine(RuleBasedStateMachine):
        @initialize()
        def enroll(self) -> None:
            self.client = httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://localhost")
            self.device = Device.enrolled(self.client)
            self.events: list[dict[str, Any]] = []  # every event the device made, in seq order
            self.voided: set[str] = set()
            self.acked = 0
            self.seen_changes: set[tuple[str, str, str]] = set()

        @rule(count=st.integers(1, 4))
        def issue_offline(self, count: int) -> None:
            for _ in range(count):
                # plates never repeat across examples: the same plate twice within minutes is a possible duplicate
                self.events.append(self.device.issue_parking(plate=f"{next(PLATES):02d}가{len(self.events):04d}"))

        @rule(data=st.data())
        def void_offline(self, data: st.DataObject) -> None:
            candidates = [e["notice_no"] for e in self.events if e["type"] == "notice.issued"]
            candidates = [n for n in candidates if n not in self.voided]
            if candidates:
                notice_no = data.draw(st.sampled_from(candidates))
                self.events.append(self.device.void(notice_no, base_version=1))
                self.voided.add(notice_no)

        @rule(data=st.data())
        def push_some(self, data: st.DataObject) -> None:
            """Any subset, any order, possibly twice: what cut connections, lost acks and retries produce."""
            if not self.events:
                return
            chosen = data.draw(st.lists(st.sampled_from(self.events), min_size=1, max_size=12))
            body = self.device.push_ok(chosen)
            assert body["acked_seq"] >= self.acked, "acked_seq moved backwards"
            self.acked = body["acked_seq"]
            for result in body["results"]:
                assert result["status"] in ("accepted", "duplicate", "held"), result

        @rule()
        def push_all(self) -> None:
            if self.events:
                body = self.device.push_ok(self.events)
                assert body["acked_seq"] == len(self.events)
                self.acked = body["acked_seq"]

        @rule()
        def pull(self) -> None:
            response = self.device.pull(self.device.cursor)
            assert response.status_code == 200, response.text
            page = response.json()
            for change in page["changes"]:
                if change["entity"] != "notice_status":
                    continue
                key = (change["key"], change["data"]["status"], str(change["data"]["version"]))
                assert key not in self.seen_changes, f"a change was delivered twice: {key}"
                self.seen_changes.add(key)
            self.device.cursor = page["next_cursor"]

        @invariant()
        def server_agrees_with_the_model(self) -> None:
            if not hasattr(self, "device"):
                return
            applied = self.events[: self.acked]  # a complete prefix: exactly these are applied
            issued = {e["notice_no"] for e in applied if e["type"] == "notice.issued"}
            voided = {e["notice_no"] for e in applied if e["type"] == "notice.voided"}
            with engine.connect() as conn:
                rows = conn.execute(
                    text("SELECT notice_no, status, version FROM notices WHERE device_id = :d"),
                    {"d": self.device.device_id},
                ).all()
                money = conn.execute(
                    text(
                        "SELECT coalesce(sum(e.amount), 0) FROM ledger_entries e JOIN receivables r "
                        "ON r.id = e.receivable_id JOIN notices n ON n.id = r.notice_id WHERE n.device_id = :d"
                    ),
                    {"d": self.device.device_id},
                ).scalar_one()
                (acked,) = conn.execute(
                    text("SELECT acked_seq FROM devices WHERE id = :d"), {"d": self.device.device_id}
                ).one()
            # held events beyond the prefix may already sit on the server, never applied
            assert acked == self.acked
            by_no = {r.notice_no: r for r in rows}
            assert set(by_no) == issued, "notices on the server differ from the events applied"
            for notice_no, row in by_no.items():
                expected = ("voided", 2) if notice_no in voided else ("issued", 1)
                assert (row.status, row.version) == expected, notice_no
            assert money == 40000 * len(issued - voided)

        def teardown(self) -> None:
            if hasattr(self, "client"):
                self.client.close()

    SyncMachine.TestCase.settings = settings(
        max_examples=12,
        stateful_step_count=20,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    SyncMachine.TestCase().runTest()


def test_any_interleaving_of_pushes_and_pulls_applies_every_event_exactly_once(committing_app):
    app, engine = committing_app
    run_machine(app, engine)
