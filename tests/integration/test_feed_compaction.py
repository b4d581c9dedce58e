"""Compacting the device feed (DESIGN.md §6): replaced changes and old tombstones go, nothing a device ends up with
changes, and a cursor that may have missed a removed delete must reset."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Connection, Engine, create_engine, select
from sqlalchemy.orm import Session

from models.base import Actor, utcnow
from models.devices import RegisterDevice, register_device
from models.feed import ChangeLog, Compaction, compact, jurisdiction_scope
from models.server_state import ServerState, get_state
from server import create_app
from server.config import Config, ConfigError
from sync.changes import PullSettings, ResetRequired, pull
from tests.conftest import server_env

SETTINGS = PullSettings(block_size=10, min_live_blocks=1, block_expiry=timedelta(days=30), device_settings={})
NOW = utcnow()
AGES = {"tombstone_age": timedelta(days=90), "superseded_age": timedelta(days=7)}


@pytest.fixture
def feed(clone_db) -> Iterator[Engine]:
    """A fresh clone the test commits to (the feed serves committed transactions only)."""
    engine = create_engine(clone_db())
    try:
        yield engine
    finally:
        engine.dispose()


def change(engine: Engine, plate: str, op: str, days_ago: float, amount: int = 300_000) -> int:
    with Session(engine) as session:
        row = ChangeLog(
            scope=jurisdiction_scope("11110"),
            entity="hotlist",
            key=plate,
            op=op,
            data={"plate": plate, "amount": amount} if op == "upsert" else None,
            created_at=NOW - timedelta(days=days_ago),
        )
        session.add(row)
        session.commit()
        return row.id


def new_device(engine: Engine) -> str:
    with Session(engine) as session:
        device, _ = register_device(
            session, RegisterDevice("11110", "압축 시험 단말"), Actor.system(), NOW, timedelta(hours=1)
        )
        session.commit()
        return device.id


def pulled(engine: Engine, device_id: str, cursor: str | None = None) -> dict[str, Any]:
    with Session(engine) as session:
        page = pull(session, device_id, cursor, 1000, NOW, SETTINGS)
        session.commit()
        return page


def hotlist_of(engine: Engine, device_id: str) -> list[tuple[str, str, Any]]:
    return [(c["key"], c["op"], c["data"]) for c in pulled(engine, device_id)["changes"] if c["entity"] == "hotlist"]


def compacted(engine: Engine) -> Compaction:
    with Session(engine) as session:
        done = compact(session, NOW, **AGES)
        session.commit()
        return done


def test_a_change_replaced_by_a_later_one_of_the_same_entity_goes_and_a_fresh_device_gets_the_same_state(feed):
    device_id = new_device(feed)
    change(feed, "12가3456", "upsert", days_ago=30, amount=300_000)
    change(feed, "12가3456", "upsert", days_ago=20, amount=420_000)
    change(feed, "34나5678", "upsert", days_ago=30)
    change(feed, "56다7890", "upsert", days_ago=2, amount=1)  # replaced, but too recently to go yet
    change(feed, "56다7890", "upsert", days_ago=1, amount=2)
    before = {key: data for key, _, data in hotlist_of(feed, device_id)}

    done = compacted(feed)

    assert (done.superseded, done.tombstones) == (1, 0)
    after = hotlist_of(feed, device_id)
    assert (
        {key: data for key, _, data in after}
        == before
        == {
            "12가3456": {"plate": "12가3456", "amount": 420_000},
            "34나5678": {"plate": "34나5678", "amount": 300_000},
            "56다7890": {"plate": "56다7890", "amount": 2},
        }
    )
    assert [key for key, _, _ in after].count("12가3456") == 1
    assert [key for key, _, _ in after].count("56다7890") == 2
    assert done.feed_floor_id == 0  # nothing a cursor could miss


def test_an_old_tombstone_goes_with_what_it_deleted_and_an_older_cursor_must_reset(feed):
    device_id = new_device(feed)
    change(feed, "12가3456", "upsert", days_ago=200)
    old_cursor = pulled(feed, device_id)["next_cursor"]
    tombstone = change(feed, "12가3456", "delete", days_ago=100)
    change(feed, "34나5678", "upsert", days_ago=50)
    recent_delete = change(feed, "56다7890", "delete", days_ago=10)
    later_cursor = pulled(feed, device_id, old_cursor)["next_cursor"]

    done = compacted(feed)

    assert (done.superseded, done.tombstones) == (1, 1)
    assert done.feed_floor_id == tombstone + 1
    # a device that never saw the delete must refetch; one past it goes on
    with pytest.raises(ResetRequired):
        pulled(feed, device_id, old_cursor)
    assert pulled(feed, device_id, later_cursor)["changes"] == []
    # a fresh device gets what is left: no trace of the old plate, the recent delete kept
    fresh = hotlist_of(feed, device_id)
    assert [(key, op) for key, op, _ in fresh] == [("34나5678", "upsert"), ("56다7890", "delete")]
    with Session(feed) as session:
        assert session.get(ChangeLog, recent_delete) is not None


def test_compaction_never_lowers_the_floor_and_twice_is_a_no_op(feed):
    change(feed, "12가3456", "upsert", days_ago=200)
    change(feed, "12가3456", "delete", days_ago=100)
    first = compacted(feed)
    second = compacted(feed)
    assert (second.superseded, second.tombstones) == (0, 0)
    assert second.feed_floor_id == first.feed_floor_id > 0
    with Session(feed) as session:
        get_state(session).feed_floor_id += 10
        session.commit()
    assert compacted(feed).feed_floor_id == first.feed_floor_id + 10


def test_tombstones_must_outlive_the_longest_offline_period(tmp_path):
    env = server_env("postgresql+psycopg://nobody@/none", tmp_path, "http://localhost")
    with pytest.raises(ConfigError, match="TOMBSTONE_DAYS"):
        Config.from_env({**env, "JINGSU_TOMBSTONE_DAYS": "30", "JINGSU_MAX_OFFLINE_DAYS": "30"})
    assert Config.from_env({**env, "JINGSU_TOMBSTONE_DAYS": "31", "JINGSU_MAX_OFFLINE_DAYS": "30"}).tombstone_days == 31


def test_the_compact_feed_command_prints_what_it_removed(connection: Connection, test_config: Config) -> None:
    session = Session(bind=connection, join_transaction_mode="create_savepoint")
    session.add(ChangeLog(scope="all", entity="hotlist", key="9가9999", op="upsert", data={}, created_at=_ago(30)))
    session.add(ChangeLog(scope="all", entity="hotlist", key="9가9999", op="delete", data=None, created_at=_ago(95)))
    session.commit()
    app: Flask = create_app(test_config, bind=connection, clock=lambda: NOW)
    result = app.test_cli_runner().invoke(args=["compact-feed"])
    assert result.exit_code == 0, result.output
    assert "tombstones" in result.output and "feed floor is now id" in result.output
    assert session.scalar(select(ServerState.feed_floor_id)) > 0


def _ago(days: int) -> datetime:
    return NOW - timedelta(days=days)
