"""The outbox (models.outbox, services.outbox) on PostgreSQL, with committed transactions on a cloned database:

- a call is written in the transaction of the decision that needs it: a rollback takes it away, a commit shows both;
- rows of one stream are delivered strictly in id order, and a dead row blocks its stream until retried or cancelled;
- a failing delivery backs off exponentially with jitter up to the cap, then dies (its handler's hook runs);
  a refusal dies at once; a handler's error is retried with the same key;
- a worker that lost its lease (another took the row over) applies nothing; concurrent workers never share a row;
- a worker that died holding a row on its last attempt leaves it dead; a claim that runs short of lease gives rows
  back; personal data is sealed in the payload; delivered rows are purged, audited ones kept.

The outside systems here are fakes behind ``Handler``s (the sandboxes' side is tests/e2e/test_outbox_sigkill.py).
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from adapters.http import Refused
from models import fines, outbox
from models.base import Actor, Scope
from models.outbox import Delivery, Operation, OutboxPolicy
from services import outbox as outbox_service
from services.outbox import Handler, Outside, deliver_due
from services.uow import transactions
from tests.factories import CIPHER, NOTICES_OBSERVED, maker

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
FAKE = Operation("fake", "call")
ADMIN = Actor(label="admin-test")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Fake:
    """An outside system: records every call (by key), fails as told, applies each answer (by key)."""

    calls: list[str] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)  # keys refused (4xx), until removed
    fail: Counter[str] = field(default_factory=Counter)  # key → calls still to fail (unavailable)
    fail_apply: Counter[str] = field(default_factory=Counter)  # key → applies still to fail
    died: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    on_call: Callable[[Delivery], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def call(self, _: Outside, delivery: Delivery) -> str:
        with self.lock:
            self.calls.append(delivery.key)
        if self.on_call is not None:
            self.on_call(delivery)
        if delivery.key in self.refuse:
            raise Refused(400, "invalid_request", "the fake refuses this one")
        if self.fail[delivery.key] > 0:
            self.fail[delivery.key] -= 1
            raise ConnectionError("the fake is down")
        return f"answer to {delivery.key}"

    def apply(self, session: Session, delivery: Delivery, answer: str, _: Outside, now: datetime) -> dict[str, Any]:
        if self.fail_apply[delivery.key] > 0:
            self.fail_apply[delivery.key] -= 1
            raise RuntimeError("the answer cannot be applied yet")
        assert answer == f"answer to {delivery.key}"
        with self.lock:
            self.applied.append(delivery.key)
        return {"result": "ok"}

    def handlers(self) -> dict[Operation, Handler]:
        return {
            FAKE: Handler(
                call=self.call,
                apply=self.apply,
                dead=lambda s, row, now: self.died.append(row.idempotency_key),
                cancelled=lambda s, row, now: self.cancelled.append(row.idempotency_key),
            )
        }


def _nothing() -> Any:
    raise AssertionError("the fake handlers need no adapter")


OUTSIDE = Outside(CIPHER, registry=_nothing, approval=_nothing, gateway=_nothing)


@dataclass
class Box:
    """A cloned database, its sessions, a clock and a fake outside system; ``deliver`` runs one worker's round."""

    sessions: sessionmaker[Session]
    clock: Clock
    fake: Fake
    policy: OutboxPolicy

    def enqueue(self, key: str, stream: str | None = None, **payload: Any) -> int:
        with transactions(self.sessions)() as session:
            return outbox.enqueue(session, FAKE, key, payload, self.clock(), stream=stream).id

    def deliver(self, worker: str = "w1", limit: int = 10) -> outbox_service.DeliveryReport:
        return deliver_due(
            transactions(self.sessions), self.clock, OUTSIDE, worker, limit=limit, policy=self.policy,
            handlers=self.fake.handlers(),
        )  # fmt: skip

    def row(self, key: str) -> outbox.OutboxRow:
        with self.sessions() as session:
            found = session.scalar(select(outbox.OutboxRow).where(outbox.OutboxRow.idempotency_key == key))
            assert found is not None
            return found

    def until_quiet(self, rounds: int = 20) -> None:
        for _ in range(rounds):
            if self.deliver().claimed == 0:
                return
        raise AssertionError("still delivering")


@pytest.fixture
def box(clone_db) -> Iterator[Box]:
    engine = create_engine(clone_db(), pool_size=10)
    try:
        policy = OutboxPolicy(
            lease=timedelta(seconds=30),
            max_attempts=5,
            backoff=timedelta(seconds=10),
            backoff_cap=timedelta(seconds=60),
            rng=random.Random(7),
        )
        yield Box(sessionmaker(bind=engine, expire_on_commit=False), Clock(), Fake(), policy)
    finally:
        engine.dispose()


# --- written with the decision ------------------------------------------------------------------------------------


def test_a_decision_rolled_back_enqueues_nothing_and_a_committed_one_shows_the_row_and_the_decision_together(box):
    with transactions(box.sessions)() as session:
        make = maker(session)
        plates = [make.parking(NOTICES_OBSERVED, plate=p).notice_no for p in ("12가3456", "45나6789")]

    with box.sessions() as session:  # the clerk's request fails after deciding: nothing of it stays
        asked = fines.request_owner_lookups(session, box.clock(), jurisdiction="11110")
        assert sorted(asked.queued) == sorted(plates)
        session.rollback()
    with box.sessions() as session:
        assert session.scalar(select(outbox.OutboxRow)) is None
        asked_cases = select(fines.FineCase).where(fines.FineCase.owner_lookup_requested_at.is_not(None))
        assert session.scalar(asked_cases) is None

    with box.sessions() as deciding, box.sessions() as other:
        fines.request_owner_lookups(deciding, box.clock(), jurisdiction="11110")
        deciding.flush()
        # not committed yet: another transaction sees neither the rows nor the cases asked
        assert other.scalar(text("SELECT count(*) FROM outbox")) == 0
        deciding.commit()
        other.rollback()
        rows = other.scalars(select(outbox.OutboxRow).order_by(outbox.OutboxRow.id)).all()
        assert sorted(row.payload["notice_no"] for row in rows) == sorted(plates)
        assert {row.idempotency_key for row in rows} == {f"registry.lookup:{n}:1" for n in plates}
        assert all(row.jurisdiction == "11110" and row.status == "pending" for row in rows)
        asked_at = other.scalars(select(fines.FineCase.owner_lookup_requested_at)).all()
        assert all(at == box.clock() for at in asked_at)


def test_the_same_key_is_one_row(box):
    first = box.enqueue("k-1", n=1)
    assert box.enqueue("k-1", n=2) == first
    assert box.row("k-1").payload == {"n": 1}


def test_personal_data_is_sealed_in_the_payload_and_opened_for_the_delivery(box):
    seen: list[dict[str, Any] | None] = []
    with transactions(box.sessions)() as session:
        outbox.enqueue(session, FAKE, "sealed-1", {"plate": "12가3456"}, box.clock(),
                       personal={"name": "홍길동", "rrn": "900101-1234568"}, cipher=CIPHER)  # fmt: skip
    with box.sessions() as session:
        stored = session.scalar(text("SELECT payload::text FROM outbox WHERE idempotency_key = 'sealed-1'"))
    assert "홍길동" not in stored and "900101" not in stored and "12가3456" in stored
    box.fake.on_call = lambda delivery: seen.append(outbox.personal_of(delivery, CIPHER))
    box.deliver()
    assert seen == [{"name": "홍길동", "rrn": "900101-1234568"}]
    with pytest.raises(ValueError), box.sessions() as session:
        outbox.enqueue(session, FAKE, "sealed-2", {}, box.clock(), personal={"name": "x"})


# --- order per stream, dead letters -------------------------------------------------------------------------------


def test_rows_of_one_stream_go_in_order_and_a_dead_row_blocks_its_stream_until_retried(box):
    for key in ("a1", "a2", "a3"):
        box.enqueue(key, stream="a")
    box.enqueue("b1", stream="b")
    box.enqueue("free")
    box.fake.refuse.add("a1")

    first = box.deliver()

    assert (first.claimed, first.done, first.dead) == (3, 2, 1)  # a1 (refused: dead at once), b1, free; not a2
    assert box.fake.calls == ["a1", "b1", "free"] and box.fake.died == ["a1"]
    assert box.row("a1").status == "dead" and "invalid_request" in (box.row("a1").last_error or "")
    assert box.deliver().claimed == 0  # a2 and a3 wait behind the dead a1
    box.enqueue("a4", stream="a")
    box.enqueue("b2", stream="b")
    assert box.deliver().claimed == 1 and box.fake.calls[-1] == "b2"  # other streams go on

    box.fake.refuse.clear()
    with transactions(box.sessions)() as session:
        row = outbox.get_row(session, Scope.everything(), box.row("a1").id, for_update=True)
        outbox.retry(session, row, ADMIN, "the fake is fixed", box.clock())
    box.until_quiet()

    assert [key for key in box.fake.applied if key.startswith("a")] == ["a1", "a2", "a3", "a4"]
    assert box.row("a1").attempts == 1 and box.row("a1").status == "done"
    with box.sessions() as session:
        [action] = outbox.actions_of(session, box.row("a1").id)
    assert (action.action, action.actor_label, action.reason) == ("retry", "admin-test", "the fake is fixed")


def test_a_cancelled_dead_row_lets_its_stream_go_on_and_runs_its_hook(box):
    box.enqueue("c1", stream="c")
    box.enqueue("c2", stream="c")
    box.fake.refuse.add("c1")
    box.deliver()
    with transactions(box.sessions)() as session:
        outbox_service.cancel(session, Scope.everything(), box.row("c1").id, ADMIN, "not needed any more",
                              box.clock(), handlers=box.fake.handlers())  # fmt: skip
    box.until_quiet()
    assert box.fake.cancelled == ["c1"] and box.fake.applied == ["c2"]
    assert box.row("c1").status == "cancelled"
    with pytest.raises(Exception, match="only a dead delivery"), transactions(box.sessions)() as session:
        outbox_service.retry(session, Scope.everything(), box.row("c2").id, ADMIN, "again", box.clock())


# --- backoff and attempts -----------------------------------------------------------------------------------------


def test_a_failing_delivery_backs_off_exponentially_with_jitter_up_to_the_cap_then_dies(box):
    box.enqueue("flaky")
    box.fake.fail["flaky"] = 99
    waits = []
    for attempt in range(1, 6):
        report = box.deliver()
        row = box.row("flaky")
        assert report.claimed == 1 and row.attempts == attempt
        if attempt < 5:
            wait = (row.next_attempt_at - box.clock()).total_seconds()
            full = min(60, 10 * 2 ** (attempt - 1))
            assert full / 2 <= wait <= full, (attempt, wait)
            waits.append(wait)
            box.clock.advance(wait - 1)
            assert box.deliver().claimed == 0  # not before its time
            box.clock.advance(1)
    assert len(waits) == 4
    row = box.row("flaky")
    assert (row.status, row.attempts) == ("dead", 5) and "the fake is down" in (row.last_error or "")
    assert box.fake.died == ["flaky"] and box.fake.calls == ["flaky"] * 5


def test_the_backoff_doubles_to_its_cap_and_its_jitter_is_a_random_half():
    policy = OutboxPolicy(backoff=timedelta(seconds=10), backoff_cap=timedelta(minutes=1), rng=random.Random(1))
    for attempts, full in ((1, 10), (2, 20), (3, 40), (4, 60), (9, 60), (100, 60)):
        delays = [policy.delay(attempts).total_seconds() for _ in range(200)]
        assert all(full / 2 <= d <= full for d in delays) and max(delays) - min(delays) > full / 4


def test_an_answer_that_cannot_be_applied_is_asked_again_with_the_same_key_and_applied_once(box):
    box.enqueue("apply-later")
    box.fake.fail_apply["apply-later"] = 1
    first = box.deliver()
    assert (first.retried, first.done) == (1, 0)
    assert "applying the answer" in (box.row("apply-later").last_error or "")
    box.clock.advance(60)
    assert box.deliver().done == 1
    assert box.fake.calls == ["apply-later", "apply-later"] and box.fake.applied == ["apply-later"]


# --- leases: workers that die, workers side by side ---------------------------------------------------------------


def test_a_worker_that_lost_its_lease_applies_nothing_and_the_row_is_delivered_once_by_the_other(box):
    box.enqueue("slow")
    in_call, go_on = threading.Event(), threading.Event()

    def first_call_hangs(delivery: Delivery) -> None:
        if delivery.worker == "w-slow":
            in_call.set()
            assert go_on.wait(10)

    box.fake.on_call = first_call_hangs
    reports: dict[str, outbox_service.DeliveryReport] = {}
    slow = threading.Thread(target=lambda: reports.setdefault("slow", box.deliver("w-slow")))
    slow.start()
    assert in_call.wait(10)
    assert box.deliver("w-other").claimed == 0  # leased to the slow worker
    box.clock.advance(31)  # its lease runs out (it hangs, or it died)
    taken = box.deliver("w-other")
    go_on.set()
    slow.join(10)

    assert (taken.claimed, taken.done) == (1, 1)
    assert (reports["slow"].done, reports["slow"].lost) == (0, 1)
    assert box.fake.calls == ["slow", "slow"] and box.fake.applied == ["slow"]
    row = box.row("slow")
    assert (row.status, row.attempts, row.leased_by) == ("done", 2, None)


def test_a_row_whose_worker_died_on_its_last_attempt_is_dead_when_its_lease_runs_out(box):
    box.enqueue("last")
    with transactions(box.sessions)() as session:
        session.execute(text("UPDATE outbox SET attempts = 4"))
        [claimed] = outbox.claim(session, "w-dies", box.clock(), box.policy, 10)  # … and it never comes back
    assert claimed.attempt == 5
    assert box.deliver().claimed == 0
    box.clock.advance(31)
    report = box.deliver()
    row = box.row("last")
    assert (report.dead, row.status) == (1, "dead") and "lease ran out" in (row.last_error or "")
    assert box.fake.calls == [] and box.fake.died == ["last"]


def test_rows_left_when_the_lease_runs_short_are_given_back_uncounted(box):
    for n in range(3):
        box.enqueue(f"long-{n}")
    box.fake.on_call = lambda delivery: box.clock.advance(25)  # each call takes 25 of the 30 seconds' lease
    report = box.deliver()
    assert (report.claimed, report.done, report.released) == (3, 1, 2)
    assert [box.row(f"long-{n}").attempts for n in range(3)] == [1, 0, 0]
    box.until_quiet()
    assert sorted(box.fake.applied) == ["long-0", "long-1", "long-2"]


def test_workers_side_by_side_never_deliver_the_same_row(box):
    keys = [f"many-{n}" for n in range(40)]
    streams = {key: f"s{n % 3}" for n, key in enumerate(keys) if n % 2}
    for key in keys:
        box.enqueue(key, stream=streams.get(key))
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def work(name: str) -> None:
        try:
            start.wait(10)
            for _ in range(30):
                box.deliver(name, limit=3)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"w{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert sorted(box.fake.calls) == sorted(keys) and sorted(box.fake.applied) == sorted(keys)
    for stream in ("s0", "s1", "s2"):
        delivered = [key for key in box.fake.applied if streams.get(key) == stream]
        assert delivered == [key for key in keys if streams.get(key) == stream]  # in the order they were written


# --- housekeeping -------------------------------------------------------------------------------------------------


def test_delivered_rows_are_purged_after_their_time_but_not_those_a_person_acted_on(box):
    box.enqueue("old")
    box.enqueue("acted")
    box.fake.refuse.add("acted")
    box.deliver()
    box.fake.refuse.clear()
    with transactions(box.sessions)() as session:
        outbox.retry(session, outbox.get_row(session, Scope.everything(), box.row("acted").id), ADMIN, "x", box.clock())
    box.deliver()
    box.enqueue("young")
    with transactions(box.sessions)() as session:
        assert outbox.purge(session, box.clock() + timedelta(seconds=1)) == 1
    with box.sessions() as session:
        left = {row.idempotency_key: row.status for row in session.scalars(select(outbox.OutboxRow))}
    assert left == {"acted": "done", "young": "pending"}
