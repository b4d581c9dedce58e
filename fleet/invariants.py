"""The invariant report: every device's store compared with the server's database (one read-only snapshot), never
with the simulator's memory. ``check_invariants`` reads both sides, then runs one small named check after another;
each adds to the ``Check`` rows it owns, and each row counts as one of the four totals of the summary line.

- lost: a notice a device printed that is not in ``notices`` exactly once with the same notice_no, kind, code,
  schedule key, amounts, deadline, plate, vehicle type, officer, QR and device; a device event missing from
  ``sync_events`` (same event_id and content hash) or with another fate; an event still pending or held after the
  drain; an accepted void or spoil without its effect; an ``acked_seq`` that moved back, or that differs between
  device and server, or stops short of the device's last ``seq``.
- duplicated: a notice, spoiled number or event of a device that it never made; a number that is both a notice
  and spoiled, used by two devices or allocated in two blocks; a second receivable or principal charge.
- unaccounted_numbers: a number a device used outside its blocks or unknown to the server; a number below the
  highest used of a block that the server never saw (a gap); a block whose ``used_count`` differs from the numbers
  the ledger holds in it; a live block only one side knows.
- money_mismatch_won: |printed − ledger| amounts, |principal charge − printed amount|, and |balance − expected|
  where a live notice owes its printed amount and a voided or cancelled one 0.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import protocol
from fleet.options import SimDevice, SimulationError
from pda_client.store import Store

Row = dict[str, Any]
Block = tuple[str, str, int, int]  # (jurisdiction, year2, first_serial, last_serial)


@dataclass
class Check:
    """One invariant: how often it failed (in units of its counter) and the first few examples."""

    name: str
    counter: str  # which of lost / duplicated / unaccounted_numbers / money_mismatch_won it adds to
    count: int = 0
    examples: list[str] = field(default_factory=list)

    def fail(self, example: str, n: int = 1) -> None:
        self.count += n
        if len(self.examples) < 3:
            self.examples.append(example)


@dataclass
class InvariantReport:
    """The checks and the fleet's ledger in numbers; ``summary_line`` is the last line of the report."""

    devices: int
    events: int
    checks: list[Check]
    notices: int = 0
    voided: int = 0
    spoiled: int = 0
    money_on_receivables: int = 0
    allocated: int = 0  # numbers in the fleet's blocks
    used: int = 0  # of them issued or spoiled, as the server holds them

    def total(self, counter: str) -> int:
        return sum(c.count for c in self.checks if c.counter == counter)

    @property
    def ok(self) -> bool:
        return all(c.count == 0 for c in self.checks)

    def summary_line(self) -> str:
        return (
            f"devices={self.devices} events={self.events} lost={self.total('lost')} "
            f"duplicated={self.total('duplicated')} unaccounted_numbers={self.total('unaccounted_numbers')} "
            f"money_mismatch_won={self.total('money_mismatch_won')}"
        )


@dataclass
class _Local:
    """One device's store, read back after the run."""

    device: SimDevice
    notices: dict[str, dict[str, Any]]  # notice_no → the notice.issued data the device printed
    events: dict[str, dict[str, Any]]  # event_id → seq, type, notice_no, hash, state, status
    used: dict[str, str]  # notice_no → issued / spoiled
    blocks: set[Block]  # live ones
    acked_seq: int
    seq: int


def _read_local(device: SimDevice) -> _Local:
    store = Store(device.home)
    try:
        rows = store.conn.execute("SELECT notice_no, data FROM notices")
        notices = {row["notice_no"]: json.loads(row["data"]) for row in rows}
        events = {
            row["event_id"]: dict(row)
            for row in store.conn.execute("SELECT seq, event_id, type, notice_no, hash, state, status FROM outbox")
        }
        used = {row[0]: row[1] for row in store.conn.execute("SELECT notice_no, how FROM used_numbers")}
        blocks = {
            (row[0], row[1], int(row[2]), int(row[3]))
            for row in store.conn.execute(
                "SELECT jurisdiction, year2, first_serial, last_serial FROM blocks WHERE cancelled = 0"
            )
        }
        return _Local(device, notices, events, used, blocks, int(store.get("acked_seq", 0)), int(store.get("seq", 0)))
    finally:
        store.close()


_SERVER_QUERIES = {
    "devices": "SELECT id, acked_seq FROM devices WHERE id = ANY(:ids)",
    "notices": (
        "SELECT id, notice_no, device_id, kind, violation_code, schedule_key, amount, reduced_amount, "
        "opinion_deadline, vehicle_plate, vehicle_type, officer_id, qr, status, issued_event_id FROM notices "
        "WHERE device_id = ANY(:ids) OR notice_no = ANY(:nos)"
    ),
    "spoiled": "SELECT notice_no, device_id, event_id FROM spoiled_numbers WHERE device_id = ANY(:ids) "
    "OR notice_no = ANY(:nos)",
    "events": "SELECT event_id, device_id, seq, type, notice_no, content_hash, status FROM sync_events "
    "WHERE device_id = ANY(:ids)",
    "blocks": (
        "SELECT b.id, b.device_id, b.jurisdiction, b.year2, b.first_serial, b.last_serial, b.used_count, b.status "
        "FROM number_blocks b WHERE b.device_id = ANY(:ids) OR EXISTS (SELECT 1 FROM number_blocks s "
        "WHERE s.device_id = ANY(:ids) AND s.id <> b.id AND s.jurisdiction = b.jurisdiction AND s.year2 = b.year2 "
        "AND s.first_serial <= b.last_serial AND b.first_serial <= s.last_serial)"
    ),
    "money": (
        "SELECT n.notice_no, r.id AS receivable_id, "
        "coalesce(sum(e.amount) FILTER (WHERE e.kind = 'charge' AND h.kind = 'principal'), 0) AS principal, "
        "count(e.id) FILTER (WHERE e.kind = 'charge' AND h.kind = 'principal') AS charges, "
        "coalesce(sum(e.amount), 0) AS balance "
        "FROM notices n JOIN receivables r ON r.notice_id = n.id "
        "LEFT JOIN ledger_entries e ON e.receivable_id = r.id LEFT JOIN charge_heads h ON h.id = e.charge_head_id "
        "WHERE n.device_id = ANY(:ids) GROUP BY n.notice_no, r.id"
    ),
}

# printed field on the device → column of the server's notices row
_PRINTED_FIELDS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "kind": lambda d: d["kind"],
    "violation_code": lambda d: d["violation_code"],
    "schedule_key": lambda d: d["schedule_key"],
    "amount": lambda d: d["amount"],
    "reduced_amount": lambda d: d["reduced_amount"],
    "opinion_deadline": lambda d: d["opinion_deadline"],
    "vehicle_plate": lambda d: (d.get("vehicle") or {}).get("plate"),
    "vehicle_type": lambda d: (d.get("vehicle") or {}).get("type"),
    "officer_id": lambda d: d["officer_id"],
    "qr": lambda d: d["qr"],
}


def _read_server(database_url: str, ids: list[str], numbers: list[str]) -> dict[str, list[dict[str, Any]]]:
    """One consistent, read-only snapshot of everything the report needs from the server's database."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError
    from sqlalchemy.pool import NullPool

    try:
        engine = create_engine(database_url, poolclass=NullPool)
    except ArgumentError as exc:
        raise SimulationError(f"not a database URL: {exc}") from exc
    try:
        return _snapshot(engine, text, ids, numbers)
    except SQLAlchemyError as exc:
        raise SimulationError(f"cannot read the server's database: {exc}") from exc
    finally:
        engine.dispose()


def _snapshot(engine: Any, text: Any, ids: list[str], numbers: list[str]) -> dict[str, list[dict[str, Any]]]:
    with engine.connect() as conn:
        conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
        params = {"ids": ids, "nos": numbers}
        out = {
            name: [dict(row._mapping) for row in conn.execute(text(sql), params)]
            for name, sql in _SERVER_QUERIES.items()
        }
        conn.rollback()
        return out


# --- the checks ----------------------------------------------------------------------------------------------------


def _check(name: str, counter: str) -> Any:
    return field(default_factory=lambda: Check(name, counter))


@dataclass
class _Checks:
    """The rows of the invariant table, in the order it shows them."""

    printed: Check = _check("printed notice in the ledger exactly once, as printed", "lost")
    events_lost: Check = _check("device event on the server with the same content and fate", "lost")
    unsettled: Check = _check("nothing left pending or held after the drain", "lost")
    effects: Check = _check("accepted void/spoil took effect on the server", "lost")
    cursors: Check = _check("acked_seq only moved forward and matches the server", "lost")
    phantom: Check = _check("no server notice or event the device did not make", "duplicated")
    reused: Check = _check("no number used twice (notices ∪ spoiled, devices, blocks)", "duplicated")
    doubled: Check = _check("one receivable and one principal charge per notice", "duplicated")
    outside: Check = _check("numbers used ⊆ the device's blocks", "unaccounted_numbers")
    blocks: Check = _check("every allocated number issued, spoiled or unused; no gaps", "unaccounted_numbers")
    money: Check = _check("principal = printed amount; balance = sum of entries (voided → 0)", "money_mismatch_won")

    def rows(self) -> list[Check]:
        return [self.printed, self.events_lost, self.unsettled, self.effects, self.cursors, self.phantom,
                self.reused, self.doubled, self.outside, self.blocks, self.money]  # fmt: skip


def _group(rows: list[Row], key: str) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = {}
    for row in rows:
        out.setdefault(row[key], []).append(row)
    return out


def _block(row: Row) -> Block:
    return row["jurisdiction"], row["year2"], int(row["first_serial"]), int(row["last_serial"])


@dataclass
class _Server:
    """The snapshot of the server's database, indexed the ways the checks look it up."""

    rows: dict[str, list[Row]]
    ids: set[str]  # the fleet's devices

    def __post_init__(self) -> None:
        self.notices_by_no = _group(self.rows["notices"], "notice_no")
        self.spoiled_by_no = _group(self.rows["spoiled"], "notice_no")
        self.money_by_no = _group(self.rows["money"], "notice_no")
        self.events_by_id = {row["event_id"]: row for row in self.rows["events"]}
        self.acked = {row["id"]: int(row["acked_seq"]) for row in self.rows["devices"]}
        self.fleet_blocks = [b for b in self.rows["blocks"] if b["device_id"] in self.ids]
        self.fleet_notices = [row for row in self.rows["notices"] if row["device_id"] in self.ids]


# each device's store against the server


def _printed_notices_on_server(c: _Checks, server: _Server, loc: _Local) -> None:
    """Every printed notice is in the ledger once, identical, issued by this device."""
    for notice_no, data in loc.notices.items():
        rows = server.notices_by_no.get(notice_no, [])
        if not rows:
            c.printed.fail(f"{notice_no} (device {loc.device.index}) is not on the server")
            continue
        if len(rows) > 1:
            c.reused.fail(f"{notice_no} has {len(rows)} notices rows", len(rows) - 1)
        row = rows[0]
        diffs = [name for name, get in _PRINTED_FIELDS.items() if str(get(data)) != str(row[name])]
        if row["device_id"] != loc.device.device_id:
            diffs.append("device_id")
        if diffs:
            c.printed.fail(f"{notice_no} differs in {', '.join(diffs)}")
        if row["amount"] != data["amount"]:
            c.money.fail(f"{notice_no} printed {data['amount']} won, ledger {row['amount']}",
                         abs(int(row["amount"]) - int(data["amount"])))  # fmt: skip


def _events_on_server(c: _Checks, server: _Server, loc: _Local) -> None:
    """Every event the device made is settled and on the server, with the same content and the same fate."""
    for event in loc.events.values():
        if event["state"] != "done":
            c.unsettled.fail(f"device {loc.device.index} seq {event['seq']} is {event['state']}")
        stored = server.events_by_id.get(event["event_id"])
        if stored is None or stored["device_id"] != loc.device.device_id or stored["content_hash"] != event["hash"]:
            c.events_lost.fail(f"device {loc.device.index} seq {event['seq']} ({event['type']}) is not on the server")
            continue
        fate = protocol.ACCEPTED if event["status"] == protocol.DUPLICATE else event["status"]
        if event["state"] == "done" and fate != stored["status"]:
            c.events_lost.fail(f"seq {event['seq']}: device says {event['status']}, server {stored['status']}")
        if stored["status"] == protocol.ACCEPTED:
            _accepted_took_effect(c, server, event)


def _accepted_took_effect(c: _Checks, server: _Server, event: Row) -> None:
    """An accepted void voided its notice; an accepted spoil left its spoiled_numbers row."""
    if event["type"] == protocol.NOTICE_VOIDED:
        rows = server.notices_by_no.get(event["notice_no"], [])
        if not rows or rows[0]["status"] != "voided":
            c.effects.fail(f"void of {event['notice_no']} accepted, notice is not voided")
    elif event["type"] == protocol.NUMBER_SPOILED:
        spoils = server.spoiled_by_no.get(event["notice_no"], [])
        if not any(s["event_id"] == event["event_id"] for s in spoils):
            c.effects.fail(f"spoil of {event['notice_no']} accepted, no spoiled_numbers row")


def _cursors_only_forward(c: _Checks, server: _Server, loc: _Local) -> None:
    """Cursors only move forward, and end where the server is, at the device's last seq."""
    for history, what in ((loc.device.acked_history, "stored"), (loc.device.answer_history, "answered")):
        for before, after in zip(history, history[1:]):
            if after < before:
                c.cursors.fail(f"device {loc.device.index}: {what} acked_seq went {before} → {after}")
    on_server = server.acked.get(loc.device.device_id)
    if on_server != loc.acked_seq or loc.acked_seq != loc.seq:
        c.cursors.fail(f"device {loc.device.index}: acked_seq device {loc.acked_seq}, server "
                       f"{on_server}, last seq {loc.seq}")  # fmt: skip


def _nothing_the_device_did_not_make(c: _Checks, server: _Server, loc: _Local) -> None:
    """No event, notice or spoiled number of this device on the server that it never made."""
    did = loc.device.device_id
    mine = {row["event_id"] for row in server.rows["events"] if row["device_id"] == did}
    for event_id in sorted(mine - set(loc.events)):
        c.phantom.fail(f"event {event_id} of device {loc.device.index} was never made by it")
    for row in server.rows["notices"]:
        if row["device_id"] == did and row["notice_no"] not in loc.notices:
            c.phantom.fail(f"notice {row['notice_no']} of device {loc.device.index} was never printed by it")
    for row in server.rows["spoiled"]:
        if row["device_id"] == did and loc.used.get(row["notice_no"]) != "spoiled":
            c.phantom.fail(f"spoiled {row['notice_no']} of device {loc.device.index} was never spoiled by it")


def _numbers_in_the_device_blocks(c: _Checks, server: _Server, loc: _Local) -> None:
    """The numbers a device used lie in its blocks, and the server knows each of them."""
    blocks = [_block(b) for b in server.fleet_blocks if b["device_id"] == loc.device.device_id]
    for notice_no in loc.used:
        parsed = protocol.parse_notice_no(notice_no)
        if parsed is None or not any(
            j == parsed.jurisdiction and y == parsed.year2 and f <= parsed.serial <= la for j, y, f, la in blocks
        ):
            c.outside.fail(f"{notice_no} used by device {loc.device.index} is outside its blocks")
        if notice_no not in server.notices_by_no and notice_no not in server.spoiled_by_no:
            c.outside.fail(f"{notice_no} used by device {loc.device.index} is unknown to the server")


def _live_blocks_agree(c: _Checks, server: _Server, loc: _Local) -> None:
    """The device and the server know the same live blocks."""
    live_on_server = {
        _block(b) for b in server.fleet_blocks if b["device_id"] == loc.device.device_id and b["status"] == "active"
    }
    for j, y, f, la in sorted(live_on_server ^ loc.blocks):
        c.blocks.fail(f"block {j}{y} {f}..{la}: device and server disagree", la - f + 1)


_PER_DEVICE: tuple[Callable[[_Checks, _Server, _Local], None], ...] = (
    _printed_notices_on_server,
    _events_on_server,
    _cursors_only_forward,
    _nothing_the_device_did_not_make,
    _numbers_in_the_device_blocks,
    _live_blocks_agree,
)


# the fleet as a whole


def _no_number_both_notice_and_spoiled(c: _Checks, server: _Server) -> None:
    for notice_no in sorted(set(server.notices_by_no) & set(server.spoiled_by_no)):
        c.reused.fail(f"{notice_no} is both a notice and spoiled")


def _no_number_on_two_devices(c: _Checks, locals_: list[_Local]) -> None:
    owners: dict[str, int] = {}
    for loc in locals_:
        for notice_no in loc.used:
            if notice_no in owners:
                c.reused.fail(f"{notice_no} used by devices {owners[notice_no]} and {loc.device.index}")
            owners[notice_no] = loc.device.index


def _no_number_in_two_blocks(c: _Checks, server: _Server) -> None:
    """A block of the fleet overlaps no other block (of the fleet, counted once per pair, or of anyone else)."""
    for a in server.fleet_blocks:
        for b in server.rows["blocks"]:
            if b["id"] == a["id"] or (b["device_id"] in server.ids and b["id"] < a["id"]):
                continue
            if (a["jurisdiction"], a["year2"]) == (b["jurisdiction"], b["year2"]):
                overlap = min(a["last_serial"], b["last_serial"]) - max(a["first_serial"], b["first_serial"]) + 1
                if overlap > 0:
                    c.reused.fail(f"blocks {a['id']} and {b['id']} share {overlap} numbers", overlap)


def _every_block_number_accounted_for(c: _Checks, server: _Server, report: InvariantReport) -> None:
    """No gap below a block's highest used number, and its ``used_count`` is what the ledger holds in it."""
    used_serials: dict[tuple[str, str], set[int]] = {}
    for notice_no in list(server.notices_by_no) + list(server.spoiled_by_no):
        parsed = protocol.parse_notice_no(notice_no)
        if parsed is not None:
            used_serials.setdefault((parsed.jurisdiction, parsed.year2), set()).add(parsed.serial)
    for b in server.fleet_blocks:
        first, last = int(b["first_serial"]), int(b["last_serial"])
        serials = {s for s in used_serials.get((b["jurisdiction"], b["year2"]), set()) if first <= s <= last}
        gaps = (max(serials) - first + 1) - len(serials) if serials else 0
        if gaps:
            c.blocks.fail(f"block {b['id']} has {gaps} numbers below its highest used that were never seen", gaps)
        report.allocated += last - first + 1
        report.used += len(serials)
        if int(b["used_count"]) != len(serials):
            c.blocks.fail(f"block {b['id']} counts {b['used_count']} used, the ledger holds {len(serials)}",
                          abs(int(b["used_count"]) - len(serials)))  # fmt: skip


def _one_receivable_owing_the_printed_amount(c: _Checks, server: _Server, report: InvariantReport) -> None:
    """One receivable per notice, its principal charge is the printed amount, voided ones net 0."""
    for row in server.fleet_notices:
        report.notices += 1
        receivables = server.money_by_no.get(row["notice_no"], [])
        if not receivables:
            c.money.fail(f"{row['notice_no']} has no receivable", int(row["amount"]))
            continue
        if len(receivables) > 1:
            c.doubled.fail(f"{row['notice_no']} has {len(receivables)} receivables", len(receivables) - 1)
        report.money_on_receivables += sum(int(r["balance"]) for r in receivables)
        if row["status"] == "voided":
            report.voided += 1
        _receivables_match(c, row, receivables)


def _receivables_match(c: _Checks, row: Row, receivables: list[Row]) -> None:
    amount = int(row["amount"])
    principal = sum(int(r["principal"]) for r in receivables)
    charges = sum(int(r["charges"]) for r in receivables)
    balance = sum(int(r["balance"]) for r in receivables)
    if charges > 1:
        c.doubled.fail(f"{row['notice_no']} was charged {charges} times", charges - 1)
    if principal != amount:
        c.money.fail(f"{row['notice_no']} principal {principal} won, printed {amount}", abs(principal - amount))
    expected = 0 if row["status"] in ("voided", "cancelled") else amount
    if row["status"] in ("voided", "cancelled", "issued", "under_review") and balance != expected:
        c.money.fail(f"{row['notice_no']} ({row['status']}) balance {balance} won, expected {expected}",
                     abs(balance - expected))  # fmt: skip


def check_invariants(devices: list[SimDevice], database_url: str) -> InvariantReport:
    """Compare every device's store with the server's database (one read-only snapshot); the counts come from there
    (what each counter covers: this module's docstring)."""
    locals_ = [_read_local(d) for d in devices]
    ids = [d.device_id for d in devices]
    device_numbers = sorted({n for loc in locals_ for n in loc.used})
    server = _Server(_read_server(database_url, ids, device_numbers), set(ids))
    checks = _Checks()
    report = InvariantReport(devices=len(devices), events=0, checks=checks.rows())
    for loc in locals_:
        report.events += loc.seq
        for check in _PER_DEVICE:
            check(checks, server, loc)
    _no_number_both_notice_and_spoiled(checks, server)
    _no_number_on_two_devices(checks, locals_)
    _no_number_in_two_blocks(checks, server)
    _every_block_number_accounted_for(checks, server, report)
    _one_receivable_owing_the_printed_amount(checks, server, report)
    report.spoiled = sum(1 for row in server.rows["spoiled"] if row["device_id"] in server.ids)
    return report
