"""The device's local store: one SQLite file under the device home, the only database on the PDA.

It holds the enrollment, the signed-in officer, the reference data pulled from the server, the number blocks, the
notices issued here and the outbox of events. Every change that must survive a crash (issuing a notice = its number,
its event and its chain link) is one SQLite transaction; the file runs in WAL mode with ``synchronous=FULL`` so a
committed transaction survives a power cut or a SIGKILL.

Outbox states: ``pending`` (never acknowledged), ``held`` (the server holds it behind a gap), ``done`` (a final
fate: accepted, duplicate, rejected or conflict — kept with its result for ``retention_days``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS reference (
    entity TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (entity, key)
);
CREATE TABLE IF NOT EXISTS blocks (
    id TEXT PRIMARY KEY, jurisdiction TEXT NOT NULL, year2 TEXT NOT NULL,
    first_serial INTEGER NOT NULL, last_serial INTEGER NOT NULL, expires_at TEXT NOT NULL,
    cancelled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS used_numbers (
    notice_no TEXT PRIMARY KEY, how TEXT NOT NULL, at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS notices (
    notice_no TEXT PRIMARY KEY, kind TEXT NOT NULL, data TEXT NOT NULL, status TEXT NOT NULL,
    version INTEGER NOT NULL, issued_at TEXT NOT NULL, reprints INTEGER NOT NULL DEFAULT 0, paid_at TEXT
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, type TEXT NOT NULL, notice_no TEXT,
    body TEXT NOT NULL, hash TEXT NOT NULL, state TEXT NOT NULL, status TEXT, result TEXT,
    created_at TEXT NOT NULL, settled_at TEXT
);
CREATE INDEX IF NOT EXISTS outbox_state ON outbox (state, seq);
"""


@dataclass(frozen=True)
class OutboxEvent:
    seq: int
    event_id: str
    type: str
    notice_no: str | None
    body: str  # the exact JSON pushed; its hash is the chain link
    state: str
    status: str | None
    result: dict[str, Any] | None

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


class Store:
    """The SQLite store of one device home."""

    def __init__(self, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.path = home / "device.sqlite3"
        self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.executescript(_SCHEMA)
        if self.get("schema_version") is None:
            self.put("schema_version", SCHEMA_VERSION)

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``: all or nothing, and one writer at a time."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # --- meta (key → JSON value) -----------------------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row["value"]) if row else default

    def put(self, key: str, value: Any) -> None:
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value, ensure_ascii=False)),
        )

    def delete(self, key: str) -> None:
        self.conn.execute("DELETE FROM meta WHERE key = ?", (key,))

    # --- reference data ---------------------------------------------------------------------------------------------

    def upsert_reference(self, entity: str, key: str, data: dict[str, Any]) -> None:
        self.conn.execute(
            "INSERT INTO reference (entity, key, data) VALUES (?, ?, ?) "
            "ON CONFLICT (entity, key) DO UPDATE SET data = excluded.data",
            (entity, key, json.dumps(data, ensure_ascii=False)),
        )

    def delete_reference(self, entity: str, key: str) -> None:
        self.conn.execute("DELETE FROM reference WHERE entity = ? AND key = ?", (entity, key))

    def reference(self, entity: str) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT data FROM reference WHERE entity = ? ORDER BY key", (entity,))
        return [json.loads(row["data"]) for row in rows]

    def reference_one(self, entity: str, key: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT data FROM reference WHERE entity = ? AND key = ?", (entity, key)).fetchone()
        return json.loads(row["data"]) if row else None

    def clear_reference(self) -> None:
        self.conn.execute("DELETE FROM reference")

    # --- outbox -----------------------------------------------------------------------------------------------------

    def outbox(self, *states: str, limit: int | None = None) -> list[OutboxEvent]:
        sql = "SELECT * FROM outbox"
        params: list[Any] = []
        if states:
            sql += f" WHERE state IN ({','.join('?' for _ in states)})"
            params.extend(states)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [self._event(row) for row in self.conn.execute(sql, params)]

    @staticmethod
    def _event(row: sqlite3.Row) -> OutboxEvent:
        return OutboxEvent(
            seq=row["seq"],
            event_id=row["event_id"],
            type=row["type"],
            notice_no=row["notice_no"],
            body=row["body"],
            state=row["state"],
            status=row["status"],
            result=json.loads(row["result"]) if row["result"] else None,
        )

    def counts_by_state(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT coalesce(status, state) AS s, count(*) AS n FROM outbox GROUP BY s")
        return {row["s"]: row["n"] for row in rows}
