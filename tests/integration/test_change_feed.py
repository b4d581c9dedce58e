"""The pull feed (DESIGN.md §6, PROTOCOL.md §3): a change committed late is never skipped, nothing is delivered
twice on one cursor chain, pages have neither gaps nor repeats, and stale or foreign cursors are refused.

The concurrency tests use real transactions on separate connections to a cloned database. Only transactions
registered as writers of changes hold the feed back (``tests/e2e/test_feed_horizon.py`` shows other write
transactions do not); every transaction here is short and closed in ``finally``, and waiting for a change to appear
has a deadline.
"""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from models.base import Actor, utcnow
from models.devices import RegisterDevice, register_device, revoke_device
from models.errors import Forbidden, InvalidInput
from models.feed import SCOPE_ALL, FeedWriterLate, device_scope, jurisdiction_scope, record_change, register_writer
from models.server_state import ServerState, bump_epoch
from sync.changes import Cursor, PullSettings, ResetRequired, pull

DEVICE_SETTINGS = {"pay_base_url": "https://pay.jingsu.example", "printer_width_mm": 80, "retention_days": 30}
SETTINGS = PullSettings(
    block_size=500, min_live_blocks=2, block_expiry=timedelta(days=30), device_settings=DEVICE_SETTINGS
)
WAIT_FOR_FEED_S = 20.0
MAX_PAGES = 500
TEST_ENTITY = "hotlist"


# --- helpers --------------------------------------------------------------------------------------------------------


@pytest.fixture
def feed_engine(clone_db) -> Iterator[Engine]:
    """An engine on a fresh clone (migrated, with demo data) that the test may commit to."""
    engine = create_engine(clone_db())
    try:
        yield engine
    finally:
        engine.dispose()


def new_device(engine: Engine, jurisdiction: str = "11110") -> str:
    with Session(engine) as session:
        device, _ = register_device(
            session, RegisterDevice(jurisdiction, "변경피드 시험 단말"), Actor.system(), utcnow(), timedelta(hours=1)
        )
        session.commit()
        return device.id


def hotlist(plate: str) -> dict[str, Any]:
    return {"plate": plate, "reason": "arrears", "amount_due": 40_000}


def commit_change(engine: Engine, scope: str, plate: str) -> None:
    with Session(engine) as session:
        record_change(session, scope, TEST_ENTITY, plate, hotlist(plate))
        session.commit()


def is_from_change_log(change: dict[str, Any]) -> bool:
    """Device settings and newly allocated blocks are added to a page by ``pull`` itself, not read from the log."""
    return not (
        change["entity"] == "device_settings" or (change["entity"] == "number_block" and change["op"] == "upsert")
    )


class Chain:
    """One device's cursor chain, as a well-behaved device keeps it: every page is committed before the next."""

    def __init__(self, engine: Engine, device_id: str) -> None:
        self.engine = engine
        self.device_id = device_id
        self.cursor: str | None = None
        self.delivered: list[dict[str, Any]] = []  # everything the change log delivered, in order

    def pull(self, limit: int = 1000) -> dict[str, Any]:
        with Session(self.engine) as session:
            page = pull(session, self.device_id, self.cursor, limit, utcnow(), SETTINGS)
            session.commit()
        logged = [c for c in page["changes"] if is_from_change_log(c)]
        assert len(logged) <= limit
        self.delivered.extend(logged)
        self.cursor = page["next_cursor"]
        return page

    def drain(self, limit: int = 1000) -> list[dict[str, Any]]:
        start = len(self.delivered)
        for _ in range(MAX_PAGES):
            if not self.pull(limit)["has_more"]:
                return self.delivered[start:]
        raise AssertionError(f"still has_more after {MAX_PAGES} pages: the cursor does not advance")

    def plates(self) -> list[str]:
        return [c["key"] for c in self.delivered if c["entity"] == TEST_ENTITY]

    def drain_until(self, plates: set[str]) -> None:
        """Pull until every plate was delivered; other write transactions on the cluster may delay them a little."""
        deadline = time.monotonic() + WAIT_FOR_FEED_S
        while not plates <= set(self.plates()):
            assert time.monotonic() < deadline, f"never delivered: {sorted(plates - set(self.plates()))}"
            self.drain()
            time.sleep(0.05)

    def assert_nothing_twice(self) -> None:
        counts = Counter((c["entity"], c["key"], repr(c["data"])) for c in self.delivered)
        assert [item for item, n in counts.items() if n > 1] == []


def scope_rows(engine: Engine, device_id: str, jurisdiction: str) -> list[tuple[str, str]]:
    """(entity, key) of every change-log row in the device's scope, in feed order."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT entity, key FROM change_log WHERE scope = ANY(:scopes) ORDER BY txid, id"),
            {"scopes": [SCOPE_ALL, jurisdiction_scope(jurisdiction), device_scope(device_id)]},
        ).all()
    return [(row.entity, row.key) for row in rows]


# --- late commits ---------------------------------------------------------------------------------------------------


def test_a_change_committed_after_a_later_transaction_and_a_pull_is_still_delivered_once(feed_engine):
    device_id = new_device(feed_engine)
    chain = Chain(feed_engine, device_id)
    chain.drain()

    t1 = Session(feed_engine)
    try:
        # T1 writes first, so it holds the older transaction id, but commits last
        record_change(t1, device_scope(device_id), TEST_ENTITY, "11가1111", hotlist("11가1111"))
        commit_change(feed_engine, SCOPE_ALL, "22나2222")  # T2 commits while T1 is still open

        chain.drain()
        chain.drain()
        assert "11가1111" not in chain.plates()  # not committed yet, so it cannot have been seen
        t1.commit()
    finally:
        t1.close()

    chain.drain_until({"11가1111", "22나2222"})
    chain.drain()
    assert sorted(chain.plates()) == ["11가1111", "22나2222"]
    chain.assert_nothing_twice()


@pytest.mark.parametrize(
    "commit_order",
    [(2, 1, 0), (1, 2, 0), (0, 2, 1), (2, 0, 1), (1, 0, 2)],
    ids=lambda order: "commit " + "-".join("ABC"[i] for i in order),
)
def test_transactions_that_commit_in_any_order_are_each_delivered_exactly_once(feed_engine, commit_order):
    device_id = new_device(feed_engine)
    other_device = new_device(feed_engine, "11680")
    chain = Chain(feed_engine, device_id)
    chain.drain()

    scopes = [device_scope(device_id), jurisdiction_scope("11110"), SCOPE_ALL]
    plates = [f"{n}0가{n}00{n}" for n in range(3)]
    sessions = [Session(feed_engine) for _ in plates]
    try:
        # A, B and C take their transaction ids in that order; each also writes outside the device's scope
        for session, scope, plate in zip(sessions, scopes, plates):
            record_change(session, scope, TEST_ENTITY, plate, hotlist(plate))
            record_change(session, device_scope(other_device), TEST_ENTITY, "x" + plate, hotlist(plate))
            record_change(session, jurisdiction_scope("11680"), TEST_ENTITY, "y" + plate, hotlist(plate))
        committed: set[str] = set()
        for index in commit_order:
            sessions[index].commit()
            committed.add(plates[index])
            chain.drain()
            assert set(chain.plates()) <= committed
    finally:
        for session in sessions:
            session.close()

    chain.drain_until(set(plates))
    chain.drain()
    assert sorted(chain.plates()) == sorted(plates)
    chain.assert_nothing_twice()


def test_a_rolled_back_change_is_never_delivered_and_does_not_hold_the_feed_back(feed_engine):
    device_id = new_device(feed_engine)
    chain = Chain(feed_engine, device_id)
    chain.drain()

    doomed = Session(feed_engine)
    try:
        record_change(doomed, SCOPE_ALL, TEST_ENTITY, "99다9999", hotlist("99다9999"))
        commit_change(feed_engine, SCOPE_ALL, "33라3333")
        chain.drain()
        doomed.rollback()
    finally:
        doomed.close()

    chain.drain_until({"33라3333"})
    assert chain.plates() == ["33라3333"]


def test_many_interleaved_writers_lose_and_repeat_nothing(feed_engine):
    device_id = new_device(feed_engine)
    chain = Chain(feed_engine, device_id)
    chain.drain()

    expected: set[str] = set()
    open_sessions: list[Session] = []
    try:
        for round_ in range(6):
            # open two writers, commit the newer one first, pull in between, then the older one
            older, newer = Session(feed_engine), Session(feed_engine)
            open_sessions += [older, newer]
            for session, tag in ((older, "o"), (newer, "n")):
                for n in range(3):
                    plate = f"{round_}{tag}{n}"
                    record_change(session, SCOPE_ALL, TEST_ENTITY, plate, hotlist(plate))
                    expected.add(plate)
            newer.commit()
            chain.pull(limit=2)
            older.commit()
            chain.pull(limit=2)
    finally:
        for session in open_sessions:
            session.close()

    chain.drain_until(expected)
    chain.drain()
    assert sorted(chain.plates()) == sorted(expected)
    chain.assert_nothing_twice()


# --- who holds the feed back ----------------------------------------------------------------------------------------


def test_a_registered_writer_holds_back_later_commits_until_it_ends_even_before_its_first_change(feed_engine):
    device_id = new_device(feed_engine)
    chain = Chain(feed_engine, device_id)
    chain.drain()

    early = Session(feed_engine)
    try:
        register_writer(early)  # registered, nothing written yet: its transaction id is not even assigned
        early.execute(text("UPDATE revenue_items SET name = name WHERE code = '41'"))  # now it has one
        commit_change(feed_engine, SCOPE_ALL, "44마4444")  # a later writer commits first
        chain.drain()
        assert chain.plates() == []  # held back: the early writer may still commit a change before it
        record_change(early, SCOPE_ALL, TEST_ENTITY, "33라3333", hotlist("33라3333"))
        early.commit()
    finally:
        early.close()

    chain.drain()
    assert chain.plates() == ["33라3333", "44마4444"]  # both, in transaction order, once
    chain.assert_nothing_twice()


def test_writers_that_never_register_do_not_hold_the_feed_back(feed_engine):
    device_id = new_device(feed_engine)
    chain = Chain(feed_engine, device_id)
    chain.drain()

    other = Session(feed_engine)
    try:
        other.execute(text("UPDATE revenue_items SET name = name WHERE code = '41'"))  # an unrelated write, open
        commit_change(feed_engine, SCOPE_ALL, "55바5555")
        chain.drain()
        assert chain.plates() == ["55바5555"]  # at once, while the other transaction is still open
    finally:
        other.rollback()
        other.close()


def test_a_transaction_that_wrote_before_registering_cannot_write_changes(feed_engine):
    with Session(feed_engine) as late:
        late.execute(text("UPDATE revenue_items SET name = name WHERE code = '41'"))
        with pytest.raises(FeedWriterLate):
            register_writer(late)
        late.rollback()
        late.execute(text("UPDATE revenue_items SET name = name WHERE code = '41'"))
        with pytest.raises(DBAPIError, match="must register before its first write"):
            record_change(late, SCOPE_ALL, TEST_ENTITY, "66사6666", hotlist("66사6666"))
        late.rollback()
    with Session(feed_engine) as check:
        assert check.scalar(text("SELECT count(*) FROM change_log WHERE key = '66사6666'")) == 0


# --- paging ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 3, 7])
def test_small_pages_deliver_the_whole_scope_in_feed_order_without_gaps_or_repeats(feed_engine, limit):
    device_id = new_device(feed_engine)
    for batch in range(4):
        with Session(feed_engine) as session:
            for n in range(5):
                plate = f"{batch}{n}마{batch}{n}"
                scope = (SCOPE_ALL, jurisdiction_scope("11110"), device_scope(device_id))[n % 3]
                record_change(session, scope, TEST_ENTITY, plate, hotlist(plate))
            record_change(session, jurisdiction_scope("11680"), TEST_ENTITY, f"강남{batch}", hotlist("x"))
            session.commit()

    chain = Chain(feed_engine, device_id)
    pages = 0
    while True:
        page = chain.pull(limit)
        pages += 1
        if not page["has_more"]:
            break
        assert pages < MAX_PAGES, "the cursor does not advance"
    expected = scope_rows(feed_engine, device_id, "11110")
    assert [(c["entity"], c["key"]) for c in chain.delivered] == expected
    assert len(expected) > 20 and pages >= len(expected) // limit
    assert not any(c["key"].startswith("강남") for c in chain.delivered)
    assert [c["key"] for c in chain.delivered if c["entity"] == "zone"] == ["Z11110-001", "Z11110-002", "Z11110-003"]


def test_an_empty_last_page_returns_the_same_position(feed_engine):
    device_id = new_device(feed_engine)
    chain = Chain(feed_engine, device_id)
    chain.drain()
    position = chain.cursor
    page = chain.pull()
    assert page["changes"] == [] and page["has_more"] is False
    assert page["next_cursor"] == position


def test_the_first_page_carries_the_device_settings_and_its_new_number_blocks_once(feed_engine):
    device_id = new_device(feed_engine)
    chain = Chain(feed_engine, device_id)
    with Session(feed_engine) as session:
        first = pull(session, device_id, None, 1000, utcnow(), SETTINGS)
        session.commit()
    synthetic = [c for c in first["changes"] if not is_from_change_log(c)]
    assert [c["entity"] for c in synthetic] == ["device_settings", "number_block", "number_block"]
    # the configured settings, and the device's issuing office (printed on its slips)
    assert synthetic[0]["data"] == {
        **DEVICE_SETTINGS,
        "office_name": "서울특별시 종로구",
        "office_address": "서울특별시 종로구 삼봉로 43 (종로구청)",
    }
    chain.cursor = first["next_cursor"]
    assert [c for c in chain.pull()["changes"] if not is_from_change_log(c)] == []


# --- refused cursors ------------------------------------------------------------------------------------------------


@pytest.fixture
def device_id(db_session: Session) -> str:
    device, _ = register_device(
        db_session, RegisterDevice("11110", "커서 시험 단말"), Actor.system(), utcnow(), timedelta(hours=1)
    )
    return device.id


def test_a_cursor_of_another_epoch_must_reset(db_session, device_id):
    cursor = pull(db_session, device_id, None, 10, utcnow(), SETTINGS)["next_cursor"]
    pull(db_session, device_id, cursor, 10, utcnow(), SETTINGS)  # still good in this epoch
    bump_epoch(db_session)
    with pytest.raises(ResetRequired) as refused:
        pull(db_session, device_id, cursor, 10, utcnow(), SETTINGS)
    assert refused.value.code == "reset_required"


def test_after_a_new_epoch_a_pull_from_no_cursor_starts_the_new_chain(db_session, device_id):
    old = pull(db_session, device_id, None, 10, utcnow(), SETTINGS)
    epoch = bump_epoch(db_session)
    fresh = pull(db_session, device_id, None, 10, utcnow(), SETTINGS)
    assert fresh["epoch"] == epoch != old["epoch"]
    assert Cursor.decode(fresh["next_cursor"]).epoch == epoch


def test_a_cursor_older_than_the_feed_keeps_must_reset(db_session, device_id):
    cursor = pull(db_session, device_id, None, 1, utcnow(), SETTINGS)["next_cursor"]
    state = db_session.scalar(select(ServerState))
    state.feed_floor_id = Cursor.decode(cursor).id + 1
    db_session.flush()
    with pytest.raises(ResetRequired):
        pull(db_session, device_id, cursor, 10, utcnow(), SETTINGS)


def raw_cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "garbage",
        "!!!!",
        "커서",
        Cursor("e", 1, 2, 3, "h").encode()[:-3],  # cut short
        raw_cursor(["e", 1, 2]),
        raw_cursor({"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}),
        raw_cursor(["e", -1, 2, 3, "h"]),
        raw_cursor(["e", 1.5, 2, 3, "h"]),
        raw_cursor(["e", True, 2, 3, "h"]),
        raw_cursor([1, 1, 2, 3, "h"]),
        raw_cursor(["e", 2**64, 2, 3, "h"]),  # beyond a bigint
        raw_cursor(["e", 1, 2, 3, None]),
        raw_cursor(123),
        raw_cursor("text"),
    ],
)
def test_a_garbage_cursor_is_invalid_input(db_session, device_id, cursor):
    with pytest.raises(InvalidInput) as refused:
        pull(db_session, device_id, cursor, 10, utcnow(), SETTINGS)
    assert refused.value.field == "cursor"


def test_a_revoked_device_cannot_pull(db_session, device_id):
    revoke_device(db_session, device_id, "분실", Actor.system(), utcnow())
    with pytest.raises(Forbidden) as refused:
        pull(db_session, device_id, None, 10, utcnow(), SETTINGS)
    assert refused.value.code == "device_revoked"
