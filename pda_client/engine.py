"""The device's sync engine (PROTOCOL.md §2–§3): push everything, then pull everything.

Crash safety: an event's text is fixed when it is created, and its fate is written only after the server answered.
If the process dies between the server's commit and that write (SIGKILL, power cut), the next sync sends the same
events again and the server answers them as ``duplicate``: each event settles exactly once. Acknowledged events are
kept for ``retention_days`` and re-sent after a ``reset_required``, before the scope is fetched again, so a restored
server loses nothing.
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import protocol
from pda_client import evidence
from pda_client.device import Clock, enrollment, system_clock
from pda_client.errors import ResetRequired
from pda_client.store import OutboxEvent, Store
from pda_client.transport import Transport

PUSH_BATCH = 200
Progress = Callable[[str, int, int], None]  # (phase, done, total)

# Fault injection for tests of crash safety: "kill_after_push" sends SIGKILL to this process right after the
# server answered a push, before the answer is stored — the lost-acknowledgement case.
FAULT_KILL_AFTER_PUSH = "kill_after_push"


@dataclass
class SyncReport:
    pushed: Counter[str] = field(default_factory=Counter)
    pulled: int = 0
    acked_seq: int = 0
    reset: bool = False
    problems: list[tuple[int, str, str, str]] = field(default_factory=list)  # seq, notice_no, status, code
    statuses: dict[str, str] = field(default_factory=dict)  # notice_no → its status as last pulled


def _no_progress(phase: str, done: int, total: int) -> None:
    return None


class SyncEngine:
    def __init__(self, store: Store, transport: Transport, *, clock: Clock = system_clock,
                 progress: Progress = _no_progress, fault: str | None = None) -> None:  # fmt: skip
        self.store = store
        self.transport = transport
        self.clock = clock
        self.progress = progress
        self.fault = fault

    # --- push ------------------------------------------------------------------------------------------------------

    def push_all(self, report: SyncReport, *, include_done: bool = False) -> None:
        """Send every unsettled event (and, after a reset, every kept one) in ``seq`` order."""
        states = ("pending", "held", "done") if include_done else ("pending", "held")
        events = self.store.outbox(*states)
        total = len(events)
        sent = 0
        self.progress("push", 0, total)
        for start in range(0, total, PUSH_BATCH):
            batch = events[start : start + PUSH_BATCH]
            answer = self._push_batch(batch)
            self._settle(batch, answer, report)
            sent += len(batch)
            self.progress("push", sent, total)

    def _push_batch(self, batch: list[OutboxEvent]) -> dict[str, Any]:
        now = self.clock()
        # the events' exact text is spliced in: the server hashes what the device hashed
        body = (
            '{"batch_id":' + json.dumps(str(uuid.uuid4())) + ',"device_time":' + json.dumps(now.isoformat())
            + ',"events":[' + ",".join(event.body for event in batch) + "]}"
        )  # fmt: skip
        answer = self.transport.push_raw(body.encode())
        if self.fault == FAULT_KILL_AFTER_PUSH:
            os.kill(os.getpid(), signal.SIGKILL)
        self._record_clock(answer.get("server_time"), now)
        return answer

    def _record_clock(self, server_time: Any, sent_at: datetime) -> None:
        if isinstance(server_time, str):
            try:
                server = datetime.fromisoformat(server_time)
            except ValueError:
                return
            self.store.put("clock_offset_s", round((sent_at - server).total_seconds(), 1))

    def _settle(self, batch: list[OutboxEvent], answer: dict[str, Any], report: SyncReport) -> None:
        results = {r["event_id"]: r for r in answer.get("results", [])}
        now = self.clock().isoformat()
        with self.store.transaction():
            for event in self.store.outbox("pending", "held"):
                result = results.get(event.event_id)
                if result is None:
                    continue
                status = result["status"]
                state = "held" if status == protocol.HELD else "done"
                self.store.conn.execute(
                    "UPDATE outbox SET state = ?, status = ?, result = ?, settled_at = ? WHERE seq = ?",
                    (
                        state,
                        status,
                        json.dumps(result, ensure_ascii=False),
                        now if state == "done" else None,
                        event.seq,
                    ),
                )
                self._apply_result(event, result)
            for event in batch:
                result = results.get(event.event_id)
                if result is None:
                    continue
                report.pushed[result["status"]] += 1
                if result["status"] in (protocol.REJECTED, protocol.CONFLICT):
                    code = result["problems"][0]["code"] if result.get("problems") else ""
                    report.problems.append((event.seq, event.notice_no or "", result["status"], code))
            acked = int(answer.get("acked_seq", 0))
            self.store.put("acked_seq", acked)
            report.acked_seq = acked

    def _apply_result(self, event: OutboxEvent, result: dict[str, Any]) -> None:
        if result["status"] not in (protocol.ACCEPTED, protocol.DUPLICATE) or not event.notice_no:
            return
        if (
            event.type in (protocol.NOTICE_ISSUED, protocol.NOTICE_VOIDED, protocol.NOTICE_CORRECTED)
            and result.get("version") is not None
        ):
            self.store.conn.execute(
                "UPDATE notices SET version = max(version, ?) WHERE notice_no = ?", (result["version"], event.notice_no)
            )

    # --- pull ------------------------------------------------------------------------------------------------------

    def pull_all(self, report: SyncReport) -> None:
        """Pull pages until ``has_more`` is false; on ``reset_required``, re-send everything kept and start over."""
        cursor = self.store.get("cursor")
        pages = 0
        while True:
            try:
                page = self.transport.changes(cursor)
            except ResetRequired:
                if report.reset:
                    raise
                report.reset = True
                self.push_all(report, include_done=True)
                self._forget_scope()
                cursor = None
                continue
            with self.store.transaction():
                for change in page["changes"]:
                    self._apply_change(change)
                    if change["entity"] == "notice_status" and change.get("data"):
                        report.statuses[change["key"]] = change["data"]["status"]
                self.store.put("cursor", page["next_cursor"])
                self.store.put("epoch", page["epoch"])
            report.pulled += len(page["changes"])
            cursor = page["next_cursor"]
            pages += 1
            self.progress("pull", pages, pages + (1 if page["has_more"] else 0))
            if not page["has_more"]:
                return

    def _forget_scope(self) -> None:
        """Before refetching from no cursor: drop reference data and the cursor, never unsynced work."""
        with self.store.transaction():
            self.store.clear_reference()
            self.store.delete("cursor")

    def _apply_change(self, change: dict[str, Any]) -> None:
        entity, op, key = change["entity"], change["op"], change["key"]
        data: dict[str, Any] = change.get("data") or {}
        conn = self.store.conn
        if entity == "number_block":
            if op == "delete":
                conn.execute("UPDATE blocks SET cancelled = 1 WHERE id = ?", (key,))
                return
            first = protocol.parse_notice_no(data["first"])
            last = protocol.parse_notice_no(data["last"])
            if first is None or last is None:
                return
            conn.execute(
                "INSERT INTO blocks (id, jurisdiction, year2, first_serial, last_serial, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at, "
                "cancelled = 0",
                (key, first.jurisdiction, first.year2, first.serial, last.serial,
                 datetime.fromisoformat(data["expires_at"]).astimezone(UTC).isoformat()),
            )  # fmt: skip
        elif entity == "notice_status":
            conn.execute(
                "UPDATE notices SET status = ?, version = ?, paid_at = ? WHERE notice_no = ?",
                (data["status"], data["version"], data.get("paid_at"), key),
            )
        elif op == "delete":
            self.store.delete_reference(entity, key)
        else:
            self.store.upsert_reference(entity, key, data)

    # --- both ------------------------------------------------------------------------------------------------------

    def sync(self) -> SyncReport:
        """Push all, then pull all; then forget acknowledged events older than ``retention_days``."""
        enrollment(self.store)
        report = SyncReport()
        # evidence photos first, so that notices arrive without photos_missing (PROTOCOL.md §4)
        for photo in evidence.upload_photos(self.store, self.transport, self.progress, self.fault):
            report.problems.append((self._issue_seq(photo.notice_no), photo.notice_no, "photo_not_sent",
                                    f"{photo.reason} {photo.sha256[:12]}"))  # fmt: skip
        self.push_all(report)
        self.pull_all(report)
        self.store.put("last_sync_at", self.clock().isoformat())
        self._forget_old_events()
        return report

    def _issue_seq(self, notice_no: str) -> int:
        row = self.store.conn.execute(
            "SELECT seq FROM outbox WHERE notice_no = ? AND type = ?", (notice_no, protocol.NOTICE_ISSUED)
        ).fetchone()
        return int(row["seq"]) if row else 0

    def _forget_old_events(self) -> None:
        settings = self.store.reference_one("device_settings", "settings") or {}
        days = int(settings.get("retention_days", 30))
        horizon = (self.clock() - timedelta(days=days)).isoformat()
        with self.store.transaction():
            self.store.conn.execute("DELETE FROM outbox WHERE state = 'done' AND settled_at <= ?", (horizon,))
