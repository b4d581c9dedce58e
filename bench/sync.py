"""``python -m bench.sync``: the sync path over HTTP (DESIGN.md §9), each figure beside a baseline of the same run.

- push ingestion: gunicorn (``wsgi:app``, ``-w 4``), 4 enrolled devices pushing valid ``notice.issued`` events in
  200-event batches at once → notices/s end to end;
- its baseline: PostgreSQL ``COPY`` of exactly the rows that ingestion writes per accepted event (every table,
  read back from the database after a small warm-up push), re-keyed and loaded into a scratch copy of those tables
  (same columns, defaults, checks, indexes and foreign keys) → notices/s, and the ratio of the two;
- pull with an empty delta: sequential p50/p99, and 50 devices each pulling once a second, open loop (latency from
  the scheduled send time, so a queue shows) → p99.

Needs ``DATABASE_URL`` (a PostgreSQL server we may CREATE DATABASE on), else starts the embedded one. Creates its own
database (migrated, demo data), drops it at the end. Prints a table with the targets and ends with one
machine-readable line. ``--profile`` also profiles one push in-process (cProfile through the Flask test client, and
the SQL statements per event); ``--py-spy FILE`` records the gunicorn workers during the timed push.

    python -m bench.sync [--notices 20000] [--batch 200] [--devices 4] [--workers 4] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import http.client
import io
import json
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import psycopg
from sqlalchemy import create_engine, make_url
from sqlalchemy.orm import Session

import protocol
from tests.conftest import DbAdmin, LiveServer, libpq_url, server_env
from tests.support.device import Device, now_kst, register_device, staff_token

JURISDICTIONS = ("11110", "11680")  # the demo districts with officers (officer.<district>.1 and .2)
BLOCK_SIZE = 100_000  # numbers per block: two blocks per device cover any run
SCRATCH = "bench_scratch"

TARGETS = {"push": 3300.0, "push_stretch": 5000.0, "ratio": 0.25, "pull_p99_ms": 5.0, "pull50_p99_ms": 20.0}


_T0 = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - _T0:6.1f} s] {message}", file=sys.stderr, flush=True)


# --- database and server -------------------------------------------------------------------------------------------


@contextmanager
def bench_database(server_url: str) -> Iterator[tuple[DbAdmin, str]]:
    """A new database on the server of ``server_url``, migrated and with the demo data; dropped afterwards."""
    from models.base import utcnow
    from models.demo import load_demo
    from models.migrate import upgrade

    admin = DbAdmin(server_url)
    name = admin.create("jingsu_bench_")
    try:
        url = admin.url_for(name)
        upgrade(url)
        engine = create_engine(url)
        try:
            with Session(engine) as session:
                load_demo(session, password="jingsu-demo", now=utcnow(), production=False, code_ttl=timedelta(hours=1))
                session.commit()
        finally:
            engine.dispose()
        yield admin, url
    finally:
        admin.drop(name)
        admin.close()


# --- devices -------------------------------------------------------------------------------------------------------


@dataclass
class BenchDevice:
    """A test device (``tests.support.device``) with the blocks it pulled kept as ranges, not lists of numbers."""

    device: Device
    blocks: list[tuple[str, str, int, int]] = field(default_factory=list)  # (jurisdiction, year2, first, count)
    used: int = 0

    def catch_up(self) -> int:
        """Pull pages until ``has_more`` is false; returns how many changes came."""
        dev = self.device
        seen = 0
        while True:
            response = dev.pull(dev.cursor)
            if response.status_code != 200:
                raise RuntimeError(f"pull answered {response.status_code}: {response.text[:500]}")
            page = response.json()
            for change in page["changes"]:
                seen += 1
                entity, op, data = change["entity"], change["op"], change.get("data")
                if entity == "fine_schedule" and op == "upsert":
                    row = protocol.ScheduleRow.from_wire(data)
                    dev.schedule = [r for r in dev.schedule if r.key != row.key] + [row]
                elif entity == "number_block" and op == "upsert":
                    first = protocol.parse_notice_no(data["first"])
                    assert first is not None
                    self.blocks.append((first.jurisdiction, first.year2, first.serial, data["count"]))
                elif entity == "device_settings":
                    dev.pay_base_url = data["pay_base_url"]
            dev.cursor = page["next_cursor"]
            if not page["has_more"]:
                return seen

    def take_numbers(self, count: int) -> None:
        """Give the device its next ``count`` unused numbers from its blocks."""
        numbers: list[str] = []
        skip = self.used
        for jurisdiction, year2, first, size in self.blocks:
            take = min(size - skip, count - len(numbers))
            if take > 0:
                numbers.extend(
                    protocol.format_notice_no(jurisdiction, year2, s) for s in range(first + skip, first + skip + take)
                )
            skip = max(0, skip - size)
            if len(numbers) == count:
                break
        if len(numbers) < count:
            raise RuntimeError(f"the device's blocks hold fewer than {count} unused numbers")
        self.used += count
        self.device.numbers = numbers

    def build_events(self, count: int, salt: int) -> list[dict[str, Any]]:
        """``count`` valid parking notices (numbers from the blocks, amounts, signed QR, hash chain), each with its
        own plate (``salt`` < 90 tells devices apart), so that none is a possible duplicate of another."""
        offset = self.used
        self.take_numbers(count)
        observed = now_kst() - timedelta(minutes=10)
        events = []
        for n in range(count):
            k = offset + n
            plate = f"{10 + salt % 90}{'가나다라마바사아자'[k // 9000 % 9]}{1000 + k % 9000}"
            events.append(self.device.issue_parking(plate=plate, observed_at=observed))
        return events


def enroll_devices(url: str, count: int, admin_token: str, label: str) -> list[BenchDevice]:
    """``count`` devices registered, enrolled, signed in (officers of the demo districts) and caught up, a few at a
    time."""

    def one(i: int) -> BenchDevice:
        jurisdiction = JURISDICTIONS[i % len(JURISDICTIONS)]
        officer = f"officer.{jurisdiction}.{(i // len(JURISDICTIONS)) % 2 + 1}"
        device = Device(httpx.Client(base_url=url, timeout=120))
        _, code = register_device(device.client, jurisdiction, f"{label} {i}", admin_token=admin_token)
        response = device.enroll(code)
        if response.status_code != 201:
            raise RuntimeError(f"enroll answered {response.status_code}: {response.text[:500]}")
        device.login(officer)
        bench_device = BenchDevice(device)
        bench_device.catch_up()
        return bench_device

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(one, range(count)))


def batch_body(events_json: bytes) -> bytes:
    """A push body around pre-serialised events; ``device_time`` is now, as at sending."""
    head = json.dumps({"batch_id": str(uuid.uuid4()), "device_time": now_kst().isoformat()})[:-1]
    return head.encode() + b',"events":' + events_json + b"}"


def push_raw(device: Device, body: bytes) -> dict[str, Any]:
    headers = {**device.headers, "Content-Type": "application/json"}
    response = device.client.post("/sync/v1/push", content=body, headers=headers)
    if response.status_code != 200:
        raise RuntimeError(f"push answered {response.status_code}: {response.text[:500]}")
    answer: dict[str, Any] = response.json()
    return answer


def serialise(events: list[dict[str, Any]]) -> bytes:
    return json.dumps(events, ensure_ascii=False, separators=(",", ":")).encode()


# --- push ----------------------------------------------------------------------------------------------------------


@dataclass
class PushRun:
    notices: int
    seconds: float
    statuses: Counter[str]
    flags: Counter[str]
    batch_ms: list[float]
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds during the push: app, postgres, client
    sent: list[int] = field(default_factory=list)  # batches each device sent
    planned: int = 0

    @property
    def per_s(self) -> float:
        return self.statuses["accepted"] / self.seconds


def timed_push(
    devices: list[BenchDevice], batches: list[list[bytes]], server_pid: int, database: str, max_seconds: float
) -> PushRun:
    """Every device pushes its batches one after another, all devices at once; the clock runs from the first send
    to the last answer. No batch is sent after ``max_seconds`` (a slow server still ends the run in time)."""
    barrier = threading.Barrier(len(devices) + 1)
    lock = threading.Lock()
    statuses: Counter[str] = Counter()
    flags: Counter[str] = Counter()
    batch_ms: list[float] = []
    errors: list[BaseException] = []
    sent = [0] * len(devices)

    def run(index: int, device: BenchDevice, bodies: list[bytes]) -> None:
        barrier.wait()
        try:
            for events_json in bodies:
                if time.perf_counter() > deadline:
                    break
                sent[index] += 1
                start = time.perf_counter()
                answer = push_raw(device.device, batch_body(events_json))
                elapsed = (time.perf_counter() - start) * 1000
                with lock:
                    batch_ms.append(elapsed)
                    for result in answer["results"]:
                        statuses[result["status"]] += 1
                        flags.update(result["flags"])
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, d, b)) for i, (d, b) in enumerate(zip(devices, batches))]
    for thread in threads:
        thread.start()
    cpu_before = cpu_seconds(server_pid, database)
    deadline = time.perf_counter() + 1e9
    barrier.wait()
    start = time.perf_counter()
    deadline = start + max_seconds
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    cpu = {k: v - cpu_before[k] for k, v in cpu_seconds(server_pid, database).items()}
    if errors:
        raise errors[0]
    return PushRun(sum(statuses.values()), seconds, statuses, flags, batch_ms, cpu, sent)


def cpu_seconds(app_pid: int, database: str) -> dict[str, float]:
    """CPU seconds (user + system) used so far by the process tree of ``app_pid`` (gunicorn), by the PostgreSQL
    backends connected to ``database`` (the machine may be shared), and by this process (the client)."""
    tick = os.sysconf("SC_CLK_TCK")
    procs: dict[int, tuple[str, int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        end = stat.rindex(")")
        rest = stat[end + 2 :].split()
        name = stat[stat.index("(") + 1 : end]
        if name.startswith("postgres"):
            try:
                name = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
        procs[int(entry.name)] = (name, int(rest[1]), (int(rest[11]) + int(rest[12])) / tick)
    tree = {app_pid}
    grown = True
    while grown:
        found = {pid for pid, (_, ppid, _) in procs.items() if ppid in tree} - tree
        tree |= found
        grown = bool(found)
    client = os.times()
    return {
        "app": sum(procs[pid][2] for pid in tree if pid in procs),
        "postgres": sum(
            cpu for name, _, cpu in procs.values() if name.startswith("postgres: ") and f" {database} " in name
        ),
        "client": client.user + client.system,
    }


# --- what one accepted event writes, and the COPY baseline ----------------------------------------------------------


@dataclass
class TableInfo:
    name: str
    columns: list[str]
    types: list[str]
    pk: str | None  # a single integer primary-key column
    count: int = 0
    max_pk: int = 0


def table_infos(conn: psycopg.Connection[Any]) -> dict[str, TableInfo]:
    infos: dict[str, TableInfo] = {}
    rows = conn.execute(
        """
        SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
        FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
          AND a.attgenerated = ''
        ORDER BY c.relname, a.attnum
        """
    ).fetchall()
    for table, column, type_ in rows:
        info = infos.setdefault(table, TableInfo(table, [], [], None))
        info.columns.append(column)
        info.types.append(type_)
    for table, column in conn.execute(
        """
        SELECT c.relname, a.attname FROM pg_index i
        JOIN pg_class c ON c.oid = i.indrelid
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]
        WHERE i.indisprimary AND i.indnatts = 1 AND c.relnamespace = 'public'::regnamespace
          AND format_type(a.atttypid, NULL) IN ('integer', 'bigint')
        """
    ).fetchall():
        if table in infos:
            infos[table].pk = column
    for info in infos.values():
        info.count = conn.execute(f'SELECT count(*) FROM public."{info.name}"').fetchone()[0]  # type: ignore[index]
        if info.pk:
            found = conn.execute(f'SELECT max("{info.pk}") FROM public."{info.name}"').fetchone()[0]  # type: ignore[index]
            info.max_pk = found or 0
    return infos


@dataclass
class SampleTable:
    info: TableInfo
    lines: list[str]  # COPY text rows written by the sample push


def rows_written(
    conn: psycopg.Connection[Any], before: dict[str, TableInfo]
) -> tuple[dict[str, SampleTable], list[str]]:
    """The rows each table gained since ``before`` (COPY text lines), and the tables that gained rows we cannot
    single out (no integer primary key)."""
    after = table_infos(conn)
    samples: dict[str, SampleTable] = {}
    unknown = []
    for name, info in after.items():
        gained = info.count - (before[name].count if name in before else 0)
        if gained <= 0:
            continue
        if info.pk is None:
            unknown.append(f"{name} (+{gained})")
            continue
        cols = ", ".join(f'"{c}"' for c in info.columns)
        query = (
            f'COPY (SELECT {cols} FROM public."{name}" WHERE "{info.pk}" > {before[name].max_pk} ORDER BY 1) TO STDOUT'
        )
        buffer = io.BytesIO()
        with conn.cursor().copy(query) as copy:
            for chunk in copy:
                buffer.write(chunk)
        lines = buffer.getvalue().decode().split("\n")
        samples[name] = SampleTable(info, [line for line in lines if line])
    return samples, unknown


@dataclass
class CopyPlan:
    order: list[str]
    columns: dict[str, list[str]]
    data: dict[str, bytes]
    rows: int


def plan_copy(conn: psycopg.Connection[Any], samples: dict[str, SampleTable], copies: int) -> CopyPlan:
    """A scratch schema with the written tables (``LIKE … INCLUDING ALL`` plus their foreign keys, pointing at the
    scratch copies where the referenced table is copied too), and ``copies`` re-keyed copies of the sample rows:
    primary keys renumbered, foreign keys to copied tables following them, one column of every other unique index
    made unique."""
    conn.execute(f"DROP SCHEMA IF EXISTS {SCRATCH} CASCADE")
    conn.execute(f"CREATE SCHEMA {SCRATCH}")
    for name in samples:
        conn.execute(f'CREATE TABLE {SCRATCH}."{name}" (LIKE public."{name}" INCLUDING ALL)')
    conn.execute("SET search_path = public")
    fks = conn.execute(
        """
        SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid), c.confrelid::regclass::text,
               (SELECT array_agg(a.attname ORDER BY k.n) FROM unnest(c.conkey) WITH ORDINALITY k(attnum, n)
                JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum)
        FROM pg_constraint c WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace
        """
    ).fetchall()
    references: dict[str, dict[str, str]] = {name: {} for name in samples}  # table → {fk column: copied table}
    parents: dict[str, set[str]] = {name: set() for name in samples}
    for table, conname, definition, ref, columns in fks:
        if table not in samples:
            continue
        target = f"{SCRATCH}.{ref}" if ref in samples else f"public.{ref}"
        definition = re.sub(r"REFERENCES \"?\w+\"?\(", f"REFERENCES {target}(", definition, count=1)
        conn.execute(f'ALTER TABLE {SCRATCH}."{table}" ADD CONSTRAINT "{conname}" {definition}')
        if ref in samples and ref != table and len(columns) == 1:
            references[table][columns[0]] = ref
            parents[table].add(ref)
    uniques = conn.execute(
        """
        SELECT c.relname, (SELECT array_agg(a.attname ORDER BY k.n) FROM unnest(i.indkey::int2[]) WITH ORDINALITY
                           k(attnum, n) JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum)
        FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
        WHERE i.indisunique AND NOT i.indisprimary AND i.indexprs IS NULL
          AND c.relnamespace = 'public'::regnamespace
        """
    ).fetchall()
    conn.commit()
    rekey_unique: dict[str, set[str]] = {name: set() for name in samples}
    for table, columns in uniques:
        if table not in samples or not columns:
            continue
        info = samples[table].info
        if any(c == info.pk or c in references[table] for c in columns):
            continue  # renumbered already
        rekey_unique[table].add(columns[-1])

    order: list[str] = []
    while len(order) < len(samples):  # parents first
        ready = [n for n in samples if n not in order and parents[n] <= set(order)]
        if not ready:
            raise RuntimeError(f"circular foreign keys among {sorted(samples)}")
        order.extend(sorted(ready))

    # old primary key → its index among the sample rows, per table
    index_of: dict[str, dict[str, int]] = {}
    for name, sample in samples.items():
        pk_at = sample.info.columns.index(sample.info.pk) if sample.info.pk else None
        index_of[name] = (
            {line.split("\t")[pk_at]: j for j, line in enumerate(sample.lines)} if pk_at is not None else {}
        )

    data: dict[str, bytes] = {}
    total = 0
    for name, sample in samples.items():
        info = sample.info
        m = len(sample.lines)
        split = [line.split("\t") for line in sample.lines]
        pk_at = info.columns.index(info.pk) if info.pk else None
        fk_at = [(info.columns.index(c), ref, len(samples[ref].lines)) for c, ref in references[name].items()]
        unique_at = [(info.columns.index(c), info.types[info.columns.index(c)]) for c in rekey_unique[name]]
        out = io.StringIO()
        for k in range(copies):
            for j, fields_ in enumerate(split):
                row = list(fields_)
                counter = k * m + j
                if pk_at is not None:
                    row[pk_at] = str(counter + 1)
                for at, ref, ref_m in fk_at:
                    if row[at] != "\\N":
                        row[at] = str(k * ref_m + index_of[ref][row[at]] + 1)
                for at, type_ in unique_at:
                    value = row[at]
                    if value == "\\N":
                        continue
                    if type_ in ("integer", "bigint", "smallint"):
                        row[at] = str(counter + 1)
                    else:
                        width = min(10, len(value))
                        row[at] = value[: len(value) - width] + str(counter).zfill(width)
                out.write("\t".join(row))
                out.write("\n")
        data[name] = out.getvalue().encode()
        total += copies * m
    return CopyPlan(order, {n: samples[n].info.columns for n in samples}, data, total)


def timed_copy(conn: psycopg.Connection[Any], plan: CopyPlan) -> float:
    """Seconds to COPY the plan into the scratch tables in one transaction, commit included."""
    chunk = 1 << 20
    start = time.perf_counter()
    with conn.cursor() as cur:
        for name in plan.order:
            cols = ", ".join(f'"{c}"' for c in plan.columns[name])
            with cur.copy(f'COPY {SCRATCH}."{name}" ({cols}) FROM STDIN') as copy:
                payload = plan.data[name]
                for offset in range(0, len(payload), chunk):
                    copy.write(payload[offset : offset + chunk])
    conn.commit()
    return time.perf_counter() - start


# --- pull ----------------------------------------------------------------------------------------------------------


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


class _LeanClient:
    """One kept-alive HTTP/1.1 connection through the standard library: a sequential latency then measures the
    server, not the Python HTTP client's own per-request work (httpx adds about a millisecond)."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(base_url)
        self.conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=60)
        self.headers = headers

    def get(self, path: str) -> tuple[int, bytes]:
        self.conn.request("GET", path, headers=self.headers)
        response = self.conn.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self.conn.close()


def sequential_pulls(device: BenchDevice, count: int) -> tuple[list[float], int, list[float]]:
    """``count`` pulls one after another on a caught-up cursor, and as many ``GET /healthz`` on the same connection
    (the floor: the HTTP stack alone); returns pull latencies (ms), how many carried changes (should be none), and
    the floor's latencies."""
    dev = device.device
    client = _LeanClient(str(dev.client.base_url), {k: v for k, v in dev.headers.items()})
    latencies, floor = [], []
    nonempty = 0
    try:
        for _ in range(count):
            start = time.perf_counter()
            status, body = client.get(f"/sync/v1/changes?{urlencode({'cursor': dev.cursor})}")
            latencies.append((time.perf_counter() - start) * 1000)
            if status != 200:
                raise RuntimeError(f"pull answered {status}: {body[:500]!r}")
            page = json.loads(body)
            nonempty += bool(page["changes"])
            dev.cursor = page["next_cursor"]
            start = time.perf_counter()
            status, _ = client.get("/healthz")
            floor.append((time.perf_counter() - start) * 1000)
    finally:
        client.close()
    return latencies, nonempty, floor


def open_loop_pulls(devices: list[BenchDevice], seconds: float, rate_hz: float = 1.0) -> tuple[list[float], int]:
    """Each device pulls ``rate_hz`` times a second, the devices' schedules spread evenly over the second; latency
    is measured from the scheduled send time (a late send counts), so queueing is not hidden."""
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()
    start = time.perf_counter() + 0.5
    period = 1.0 / rate_hz
    rounds = int(seconds * rate_hz)

    def run(index: int, device: BenchDevice) -> None:
        nonlocal failures
        dev = device.device
        for n in range(rounds):
            scheduled = start + (index / len(devices) + n) * period
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            try:
                response = dev.pull(dev.cursor)
                ok = response.status_code == 200
                if ok:
                    dev.cursor = response.json()["next_cursor"]
            except httpx.HTTPError:
                ok = False
            elapsed = (time.perf_counter() - scheduled) * 1000
            with lock:
                latencies.append(elapsed)
                failures += not ok

    threads = [threading.Thread(target=run, args=(i, d)) for i, d in enumerate(devices)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, failures


# --- in-process profile of one push --------------------------------------------------------------------------------


class SqlCounter:
    """Counts the SQL statements an engine runs, by verb and table, and the time spent inside the driver."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.statements: Counter[str] = Counter()
        self.seconds_by: defaultdict[str, float] = defaultdict(float)
        self.seconds = 0.0
        self._starts: dict[int, tuple[float, str]] = {}

    def __enter__(self) -> SqlCounter:
        from sqlalchemy import event

        event.listen(self.engine, "before_cursor_execute", self._before)
        event.listen(self.engine, "after_cursor_execute", self._after)
        return self

    def __exit__(self, *exc: object) -> None:
        from sqlalchemy import event

        event.remove(self.engine, "before_cursor_execute", self._before)
        event.remove(self.engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        words = statement.split()
        verb = words[0].upper() if words else "?"
        keyword = {"SELECT": "FROM", "INSERT": "INTO", "UPDATE": "UPDATE", "DELETE": "FROM"}.get(verb)
        target = "?"
        if keyword in words and words.index(keyword) + 1 < len(words):
            target = words[words.index(keyword) + 1].strip('"(')
        key = f"{verb} {target}{' (executemany)' if many else ''}"
        self.statements[key] += 1
        self._starts[id(cursor)] = (time.perf_counter(), key)

    def _after(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        start, key = self._starts.pop(id(cursor), (time.perf_counter(), "?"))
        self.seconds += time.perf_counter() - start
        self.seconds_by[key] += time.perf_counter() - start


def profile_push(db_url: str, device: BenchDevice, batch: int, var_dir: Path) -> str:
    """In-process, through the Flask test client (the whole request: auth, JSON, reconcile, response schema): one
    batch timed with the SQL statements counted, then one under cProfile; and one empty pull likewise. Returns the
    report text."""
    from server import create_app
    from server.config import Config

    config = Config.from_env(server_env(db_url, var_dir, device.device.pay_base_url))
    app = create_app(config)
    engine = app.extensions["jingsu"].engine
    client = app.test_client()
    headers = {**device.device.headers, "Content-Type": "application/json"}
    out = io.StringIO()

    def push(events: list[dict[str, Any]]) -> int:
        response = client.post("/sync/v1/push", data=batch_body(serialise(events)), headers=headers)
        answer = response.get_json()
        if response.status_code != 200 or any(r["status"] != "accepted" for r in answer["results"]):
            raise RuntimeError(f"in-process push failed: {response.status_code} {str(answer)[:500]}")
        return len(answer["results"])

    push(device.build_events(5, salt=97))  # warm: imports, compiled-statement cache, pool
    events = device.build_events(batch, salt=98)
    with SqlCounter(engine) as sql:
        start = time.perf_counter()
        push(events)
        wall = time.perf_counter() - start
    n = len(events)
    out.write(
        f"in-process push of {n} events (no profiler): {wall * 1000:.0f} ms = {wall / n * 1000:.2f} ms/event "
        f"→ {n / wall:,.0f} notices/s per process; inside the DB driver {sql.seconds / n * 1000:.2f} ms/event "
        f"({sql.seconds / wall:.0%}), Python {(wall - sql.seconds) / n * 1000:.2f} ms/event; "
        f"{sum(sql.statements.values()) / n:.1f} SQL statements/event\n"
    )
    out.write("SQL statements per event (count, ms in the driver per event, verb and table):\n")
    for key, count in sql.statements.most_common():
        out.write(f"  {count / n:6.2f}  {sql.seconds_by[key] / n * 1000:6.3f} ms  {key}\n")

    events = device.build_events(batch, salt=99)
    profiler = cProfile.Profile()
    profiler.enable()
    push(events)
    profiler.disable()
    stats = pstats.Stats(profiler, stream=io.StringIO()).strip_dirs()
    out.write(_stats_text(stats, "cumulative", 35))
    out.write(_stats_text(stats, "tottime", 25))
    for name in (r"engine.py:\d+\(_issue\)", r"notices.py:\d+\(issue_notice\)", r"engine.py:\d+\(push\)"):
        text = io.StringIO()
        stats.stream = text  # type: ignore[attr-defined]
        stats.sort_stats("cumulative").print_callees(name)
        out.write("\n" + "\n".join(line for line in text.getvalue().splitlines() if line.strip()) + "\n")

    # one empty pull
    device.device.cursor = None
    pull_headers = device.device.headers
    cursor = None
    while True:
        response = client.get(
            "/sync/v1/changes", query_string={"cursor": cursor} if cursor else {}, headers=pull_headers
        )
        page = response.get_json()
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    for _ in range(20):
        client.get("/sync/v1/changes", query_string={"cursor": cursor}, headers=pull_headers)
    with SqlCounter(engine) as sql:
        start = time.perf_counter()
        for _ in range(100):
            client.get("/sync/v1/changes", query_string={"cursor": cursor}, headers=pull_headers)
        wall = (time.perf_counter() - start) / 100
    out.write(
        f"\nin-process empty pull: {wall * 1000:.2f} ms (inside the DB driver {sql.seconds / 100 * 1000:.2f} ms), "
        f"{sum(sql.statements.values()) / 100:.0f} SQL statements: "
        + ", ".join(f"{c / 100:g}× {k}" for k, c in sql.statements.most_common())
        + "\n"
    )
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(100):
        client.get("/sync/v1/changes", query_string={"cursor": cursor}, headers=pull_headers)
    profiler.disable()
    out.write(_stats_text(pstats.Stats(profiler, stream=io.StringIO()).strip_dirs(), "cumulative", 30))
    engine.dispose()
    return out.getvalue()


def _stats_text(stats: pstats.Stats, sort: str, limit: int) -> str:
    text = io.StringIO()
    stats.stream = text  # type: ignore[attr-defined]
    stats.sort_stats(sort).print_stats(limit)
    lines = [line for line in text.getvalue().splitlines() if line.strip()]
    return f"\ncProfile, top {limit} by {sort}:\n" + "\n".join(lines) + "\n"


# --- the run -------------------------------------------------------------------------------------------------------


@dataclass
class Results:
    push: PushRun
    copy_per_s: float
    copy_rows: int
    rows_per_event: dict[str, float]
    unknown_tables: list[str]
    pull_ms: list[float]
    pull_nonempty: int
    floor_ms: list[float]
    pull50_ms: list[float]
    pull50_failures: int
    profile: str = ""

    @property
    def ratio(self) -> float:
        return self.push.per_s / self.copy_per_s

    def line(self) -> str:
        return (
            f"push_per_s={self.push.per_s:.0f} copy_baseline_per_s={self.copy_per_s:.0f} ratio={self.ratio:.2f} "
            f"pull_p99_ms={percentile(self.pull_ms, 99):.1f} healthz_p99_ms={percentile(self.floor_ms, 99):.1f} "
            f"pull50_p99_ms={percentile(self.pull50_ms, 99):.1f}"
        )


def verdict_at_least(value: float, target: float, unit: str, fmt: str = "{:,.0f}") -> str:
    if value >= target:
        return "met"
    short = target - value
    return f"MISSED by {fmt.format(short)}{unit} ({value / target:.0%} of target)"


def verdict_at_most(value: float, target: float) -> str:
    if value <= target:
        return "met"
    return f"MISSED by {value - target:.1f} ms ({value / target:.1f}× the target)"


def table(results: Results) -> str:
    push = results.push
    p99 = percentile(results.pull_ms, 99)
    p50 = percentile(results.pull_ms, 50)
    p99_50 = percentile(results.pull50_ms, 99)
    stretch = "" if push.per_s < TARGETS["push_stretch"] else " (stretch 5,000 met too)"
    rows = [
        ("push ingestion (HTTP, 200/batch, 4 devices)", f"{push.per_s:,.0f} notices/s",
         f"{results.copy_per_s:,.0f} notices/s (COPY)", f"{results.ratio:.2f}", "≥ 3,300/s (stretch 5,000)",
         verdict_at_least(push.per_s, TARGETS["push"], "/s") + stretch),
        ("push / COPY ratio", f"{results.ratio:.2f}", "", "", "≥ 0.25",
         verdict_at_least(results.ratio, TARGETS["ratio"], "", "{:.2f}")),
        ("pull, empty delta, sequential", f"p50 {p50:.1f} ms, p99 {p99:.1f} ms",
         f"GET /healthz p50 {percentile(results.floor_ms, 50):.1f} ms, p99 {percentile(results.floor_ms, 99):.1f} ms",
         f"{p50 / percentile(results.floor_ms, 50):.1f}×", "p99 ≤ 5 ms", verdict_at_most(p99, TARGETS["pull_p99_ms"])),
        ("pull, 50 devices × 1/s open loop", f"p99 {p99_50:.1f} ms (p50 {percentile(results.pull50_ms, 50):.1f})",
         "", "", "p99 ≤ 20 ms", verdict_at_most(p99_50, TARGETS["pull50_p99_ms"])),
    ]  # fmt: skip
    headers = ("benchmark", "ours", "baseline (same run)", "ratio", "target (DESIGN §9)", "verdict")
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for n, row in enumerate([headers, *rows]):
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    written = ", ".join(f"{name} {count:g}" for name, count in results.rows_per_event.items())
    lines.append("")
    lines.append(
        f"push: {push.notices:,} events{' (stopped at --max-seconds)' if push.notices < push.planned else ''} in "
        f"{push.seconds:.2f} s; {dict(push.statuses)}; flags {dict(push.flags)}; "
        f"batch latency p50 {percentile(push.batch_ms, 50):.0f} ms, p99 {percentile(push.batch_ms, 99):.0f} ms"
    )
    cpu = push.cpu
    if cpu:
        per = {k: v / push.notices * 1000 for k, v in cpu.items()}
        busy = sum(cpu.values()) / push.seconds
        lines.append(
            f"CPU per notice during the push: gunicorn workers {per['app']:.2f} ms, "
            f"PostgreSQL {per['postgres']:.2f} ms, bench client {per['client']:.2f} ms; "
            f"{busy:.2f} of {os.cpu_count()} CPUs busy"
        )
    lines.append(f"rows written per accepted event (the COPY baseline loads these): {written}")
    if results.unknown_tables:
        lines.append(f"  not in the baseline (no integer primary key to single rows out): {results.unknown_tables}")
    lines.append(
        f"COPY baseline: {results.copy_rows:,} rows into a scratch copy of those tables (indexes, checks, foreign "
        "keys), one session, one transaction"
    )
    lines.append(
        f"pulls: {len(results.pull_ms)} sequential ({results.pull_nonempty} not empty); {len(results.pull50_ms)} "
        f"open-loop ({results.pull50_failures} failed)"
    )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> Results:
    server_url = os.environ.get("DATABASE_URL", "")
    if not server_url:
        from sandboxes import embedded_db

        server_url = embedded_db.ensure_running()
        log(f"DATABASE_URL unset: using the embedded PostgreSQL at {server_url}")
    per_device = -(-args.notices // args.devices)
    var_dir = Path(tempfile.mkdtemp(prefix="jingsu-bench-sync-"))
    try:
        with bench_database(server_url) as (_, db_url):
            log(f"database {make_url(db_url).database} ready; starting gunicorn -w {args.workers}")
            server = LiveServer(db_url, var_dir, env={"JINGSU_BLOCK_SIZE": str(BLOCK_SIZE)}, workers=args.workers)
            server.start()
            try:
                return _measure(args, server, db_url, var_dir, per_device)
            finally:
                server.stop()
    finally:
        shutil.rmtree(var_dir, ignore_errors=True)


def _measure(args: argparse.Namespace, server: LiveServer, db_url: str, var_dir: Path, per_device: int) -> Results:
    with httpx.Client(base_url=server.url, timeout=120) as client:
        admin_token = staff_token(client, "admin")
        log(f"enrolling {args.devices} push devices …")
        devices = enroll_devices(server.url, args.devices, admin_token, "bench push")

        log(f"building {per_device * args.devices:,} notice.issued events …")
        sample = [d.build_events(args.sample, salt=i) for i, d in enumerate(devices)]
        bodies = []
        links: list[list[tuple[int, str]]] = []  # per device, per batch: seq and hash of its last event
        for i, device in enumerate(devices):
            events = device.build_events(per_device, salt=i)
            chunks = [events[b : b + args.batch] for b in range(0, len(events), args.batch)]
            bodies.append([serialise(chunk) for chunk in chunks])
            links.append([(chunk[-1]["seq"], protocol.event_hash(chunk[-1])) for chunk in chunks])

        with psycopg.connect(libpq_url(db_url)) as conn:
            before = table_infos(conn)
            conn.commit()
            log(f"sample push ({args.sample} events per device, also the warm-up) …")
            for device, events in zip(devices, sample):
                answer = push_raw(device.device, batch_body(serialise(events)))
                bad = [r for r in answer["results"] if r["status"] != "accepted"]
                if bad:
                    raise RuntimeError(f"sample events not accepted: {bad[:3]}")
                flagged = Counter(flag for r in answer["results"] for flag in r["flags"])
                if flagged:
                    log(f"sample events flagged: {dict(flagged)} (accepted; they wait in the review queue)")
            samples, unknown = rows_written(conn, before)
            conn.commit()
        sample_events = args.sample * len(devices)
        rows_per_event = {n: len(s.lines) / sample_events for n, s in sorted(samples.items())}

        log(f"timed push: {per_device * args.devices:,} events, {args.batch}/batch, {args.devices} devices …")
        spy = start_py_spy(server, args.py_spy) if args.py_spy else None
        assert server.proc is not None
        push = timed_push(devices, bodies, server.proc.pid, str(make_url(db_url).database), args.max_seconds)
        if spy is not None:
            spy.send_signal(2)
            spy.wait(60)
        push.planned = per_device * args.devices
        if push.notices < push.planned:
            log(f"stopped sending after {args.max_seconds:g} s: {push.notices:,} events pushed")
            for device, sent, device_links, first in zip(devices, push.sent, links, sample):
                # the chain goes on from the last event sent
                last = device_links[sent - 1] if sent else (first[-1]["seq"], protocol.event_hash(first[-1]))
                device.device.seq, device.device.last_hash = last
        if push.statuses["accepted"] != push.notices:
            raise RuntimeError(f"not every event was accepted: {dict(push.statuses)}")

        log("COPY baseline …")
        copies = -(-push.notices // sample_events)
        with psycopg.connect(libpq_url(db_url)) as conn:
            plan = plan_copy(conn, samples, copies)
            seconds = timed_copy(conn, plan)
            conn.execute(f"DROP SCHEMA {SCRATCH} CASCADE")
            conn.commit()
        copy_per_s = copies * sample_events / seconds

        log(f"sequential pulls ({args.pulls}) …")
        devices[0].catch_up()
        sequential_pulls(devices[0], 20)  # warm
        pull_ms, nonempty, floor_ms = sequential_pulls(devices[0], args.pulls)

        log(f"enrolling {args.pull_devices} pulling devices …")
        pullers = enroll_devices(server.url, args.pull_devices, admin_token, "bench pull")
        log(f"{args.pull_devices} devices pulling once a second for {args.pull_seconds:g} s …")
        pull50_ms, failures = open_loop_pulls(pullers, args.pull_seconds)
        for device in [*devices, *pullers]:
            device.device.client.close()

    profile = ""
    if args.profile:
        log("profiling one push in-process …")
        profile = profile_push(db_url, devices[0], args.batch, var_dir)
    return Results(
        push, copy_per_s, plan.rows, rows_per_event, unknown, pull_ms, nonempty, floor_ms, pull50_ms, failures, profile
    )


def start_py_spy(server: LiveServer, out: str) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists() or server.proc is None:
        log("py-spy not found: install it into the venv (pip install py-spy) to record the workers")
        return None
    argv = [spy, "record", "--pid", str(server.proc.pid), "--subprocesses", "--rate", "250", "--format", "raw"]
    proc = subprocess.Popen([*argv, "-o", out], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # let it attach before the clock starts
    return proc


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.sync", description=__doc__.split("\n")[0])
    parser.add_argument("--notices", type=int, default=20_000, help="notices in the timed push (default 20000)")
    parser.add_argument(
        "--max-seconds", type=float, default=30.0, help="send no push batch after this many seconds (default 30)"
    )
    parser.add_argument("--batch", type=int, default=200, help="events per push batch (default 200)")
    parser.add_argument("--devices", type=int, default=4, help="concurrent pushing devices (default 4)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers (default 4)")
    parser.add_argument("--sample", type=int, default=10, help="events per device in the sample push (default 10)")
    parser.add_argument("--pulls", type=int, default=500, help="sequential empty pulls (default 500)")
    parser.add_argument("--pull-devices", type=int, default=50, help="open-loop pulling devices (default 50)")
    parser.add_argument("--pull-seconds", type=float, default=10.0, help="open-loop duration (default 10)")
    parser.add_argument("--profile", action="store_true", help="also profile one push in-process (cProfile, SQL)")
    parser.add_argument("--py-spy", metavar="FILE", help="record the gunicorn workers with py-spy during the push")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> Results:
    args = parse_args(argv)
    results = run(args)
    if results.profile:
        print(results.profile)
    print(table(results))
    print(results.line())
    return results


if __name__ == "__main__":
    main()
