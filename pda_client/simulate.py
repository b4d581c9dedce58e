"""The fleet simulator (PROTOCOL.md §7 ``simulate``, DESIGN.md §10): many real devices, injected faults, and an
invariant report read from the server's database.

Every simulated device is a real device: its own home with the real SQLite store, enrolled with a one-use code that
the simulator gets from the admin API, an officer signed in, notices issued by ``pda_client.device`` and synced by
the real ``SyncEngine``. Only the transport is wrapped (``FaultyTransport``) to inject faults, each decided by a
seeded random generator of its device, so a seed replays the same faults on the same requests:

- ``cut_before``  the connection breaks before the request reaches the server (push or pull);
- ``lost_ack``    the server commits, the answer is lost (push or pull): the device retries and settles by
                  ``duplicate``;
- ``duplicate``   the same push is sent twice, one time in two concurrently;
- ``reorder``     a push is split and its later half sent first (the server holds it), then the earlier half (which
                  releases it); one time in three the earlier half is lost instead, and the device re-sends it all;
- ``kill_server`` the server's process group gets SIGKILL while a push or a pull (which may allocate number blocks)
                  is in flight, then it is started again; requests of other devices in flight fail with it. Only
                  possible when the simulator controls the server: ``--server-cmd`` (the simulator starts that
                  command in its own process group), or ``simulate(..., control=...)`` from a test harness with any
                  object that has ``kill()`` and ``start()`` (e.g. ``tests.conftest.LiveServer``). The kills happen at
                  ``kills`` evenly spaced points of the run.

After the run the faults are healed and every device syncs until nothing waits; then the invariant report compares
each device's store with the server's database (never with the simulator's memory).

Reproducibility: each device draws its events and its faults from its own generators seeded by ``seed``, so with
``concurrency=1`` and no ``kill_server`` a seed replays the run exactly. With several threads the interleaving of
devices and, with ``kill_server``, which requests the outage hits, vary between runs; the invariants must hold
whatever they are. A server started with a small ``JINGSU_BLOCK_SIZE`` makes devices run out of numbers and top up
their blocks under the faults too.
"""

from __future__ import annotations

import json
import os
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Protocol

import httpx

import protocol
from pda_client import device as dev
from pda_client.engine import SyncEngine
from pda_client.errors import CannotIssue, Unreachable
from pda_client.store import Store
from pda_client.transport import Transport

FAULT_KINDS = ("cut_before", "lost_ack", "duplicate", "reorder", "kill_server")
JURISDICTIONS = ("11110", "11680")  # the demo districts, each with officers officer.<district>.1 and .2
OFFICERS_PER_DISTRICT = 2
DRAIN_ATTEMPTS = 20
REFILL_ATTEMPTS = 60  # syncs an officer out of numbers tries, each failing under the faults with p ≈ 0.6
MODEL = "jingsu-pda-sim"
Echo = Callable[[str], None]


class SimulationError(Exception):
    """The simulation could not run (bad options, setup refused, the server never came back)."""


def parse_faults(spec: str | None) -> tuple[str, ...]:
    """``"cut_before,lost_ack"`` or ``"all"`` → the fault kinds, in canonical order; raises ``SimulationError``."""
    if not spec:
        return ()
    names = {part.strip() for part in spec.split(",") if part.strip()}
    if "all" in names:
        return FAULT_KINDS
    unknown = sorted(names - set(FAULT_KINDS))
    if unknown:
        raise SimulationError(f"unknown fault {', '.join(unknown)}; known: {', '.join(FAULT_KINDS)}, all")
    return tuple(kind for kind in FAULT_KINDS if kind in names)


@dataclass(frozen=True)
class SimOptions:
    server: str
    devices: int = 20
    events: int = 200
    offline_rate: float = 0.3
    faults: tuple[str, ...] = ()
    fault_rate: float = 0.25  # share of requests that get one of the (non-kill) faults
    kills: int = 2  # how many times kill_server fires, evenly spaced over the run
    seed: int = 0
    concurrency: int = 4
    workdir: Path | None = None
    admin_login: str = "admin"
    password: str = "jingsu-demo"
    timeout_s: float = 15.0


class ServerControl(Protocol):
    """What ``kill_server`` needs: SIGKILL the whole server now; start it again and return once it is ready."""

    def kill(self) -> None: ...

    def start(self) -> Any: ...


class CommandServer:
    """A server the simulator starts itself from a shell command, in its own process group (``--server-cmd``)."""

    def __init__(self, command: str, url: str, *, ready_timeout_s: float = 30.0) -> None:
        self.command = command
        self.url = url.rstrip("/")
        self.ready_timeout_s = ready_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> CommandServer:
        if self.proc is not None and self.proc.poll() is None:
            raise SimulationError("the server is already running")
        self.proc = subprocess.Popen(
            shlex.split(self.command), start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SimulationError(f"the server command exited with status {self.proc.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.kill()
        raise SimulationError(f"the server at {self.url} was not ready after {self.ready_timeout_s:.0f} s")

    def kill(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self.kill()


# --- fault injection -------------------------------------------------------------------------------------------


class FaultLog:
    """Counts of injected faults and of what they led to, shared by every device (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.seconds: defaultdict[str, float] = defaultdict(float)  # per request kind, summed over devices
        self.requests: Counter[str] = Counter()
        self.anomalies: list[str] = []

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counts[name] += n

    def took(self, name: str, seconds: float) -> None:
        with self._lock:
            self.seconds[name] += seconds
            self.requests[name] += 1

    def mean_seconds(self, name: str, default: float) -> float:
        with self._lock:
            return self.seconds[name] / self.requests[name] if self.requests[name] else default

    def anomaly(self, text: str) -> None:
        with self._lock:
            self.anomalies.append(text)


class KillSwitch:
    """Fires ``kill_server`` on the first request after the fleet has issued each threshold's number of events, one
    kill at a time; ``wait_up`` holds new requests back until the restart is done."""

    def __init__(self, control: ServerControl, thresholds: list[int], log: FaultLog) -> None:
        self.control = control
        self.thresholds = sorted(thresholds)
        self.log = log
        self._lock = threading.Lock()
        self._busy = False
        self._up = threading.Event()
        self._up.set()
        self.events_done = 0

    def issued(self) -> None:
        with self._lock:
            self.events_done += 1

    def take(self) -> bool:
        with self._lock:
            if self._busy or not self.thresholds or self.events_done < self.thresholds[0]:
                return False
            self.thresholds.pop(0)
            self._busy = True
            self._up.clear()
            return True

    def wait_up(self, timeout_s: float = 60.0) -> None:
        """Block while a kill's restart is in progress (the fleet does not race through its quota meanwhile)."""
        self._up.wait(timeout_s)

    def restart(self) -> None:
        try:
            self.control.start()
            self.log.add("server_restarts")
        finally:
            with self._lock:
                self._busy = False
            self._up.set()


@dataclass
class FaultSwitch:
    """Faults are on during the run and healed (off) for the final drain."""

    on: bool = True


class FaultyTransport(Transport):
    """The real transport with seeded faults on ``push_raw`` and ``changes`` (every other call passes through)."""

    def __init__(self, base_url: str, token: str | None, *, timeout: float, rng: random.Random,
                 kinds: tuple[str, ...], rate: float, log: FaultLog, switch: FaultSwitch,
                 kill_switch: KillSwitch | None = None) -> None:  # fmt: skip
        super().__init__(base_url, token, timeout=timeout)
        self.rng = rng
        self.kinds = tuple(kind for kind in kinds if kind != "kill_server")
        self.pull_kinds = tuple(kind for kind in self.kinds if kind in ("cut_before", "lost_ack"))
        self.rate = rate
        self.log = log
        self.switch = switch
        self.kill_switch = kill_switch
        self.acked_answers: list[int] = []  # acked_seq of every push answer the device was given, in order

    def _draw(self, kinds: tuple[str, ...]) -> str | None:
        # always two draws per request, so the sequence does not depend on which faults are enabled
        roll, pick = self.rng.random(), self.rng.random()
        if not self.switch.on or not kinds or roll >= self.rate:
            return None
        return kinds[int(pick * len(kinds))]

    def _call(self, method: str, path: str, extra_headers: dict[str, str] | None = None,
              **kwargs: Any) -> dict[str, Any]:  # fmt: skip
        started = time.monotonic()
        try:
            return super()._call(method, path, extra_headers, **kwargs)
        finally:
            self.log.took(f"{method} {path.split('?')[0]}", time.monotonic() - started)

    def changes(self, cursor: str | None, limit: int = 500) -> dict[str, Any]:
        fault = self._draw(self.pull_kinds)
        if self.switch.on and self.kill_switch is not None and self.kill_switch.take():
            # a pull allocates number blocks in its transaction: a kill there must not lose or double any
            return self._killing("pull", "GET /sync/v1/changes", lambda: Transport.changes(self, cursor, limit))
        if fault == "cut_before":
            self.log.add("pull.cut_before")
            raise Unreachable("fault injected: connection cut before the pull reached the server")
        answer = super().changes(cursor, limit)
        if fault == "lost_ack":
            self.log.add("pull.lost_ack")
            raise Unreachable("fault injected: the pull's answer was lost")
        return answer

    def push_raw(self, body: bytes) -> dict[str, Any]:
        fault = self._draw(self.kinds)
        if self.switch.on and self.kill_switch is not None and self.kill_switch.take():
            fault = "kill_server"
        if fault is None:
            answer = self._checked(super().push_raw(body))
        else:  # each fault is counted once it took effect (a request may also fail for real, e.g. server down)
            answer = getattr(self, f"_push_{fault}")(body)
        self.acked_answers.append(int(answer.get("acked_seq", 0)))
        for result in answer.get("results", []):  # the fates the device was told
            self.log.add(f"result.{result['status']}")
        return answer

    def _checked(self, answer: dict[str, Any]) -> dict[str, Any]:
        """PROTOCOL.md §2: ``acked_seq`` covers exactly the events with a final status; held ones lie beyond it."""
        acked = int(answer.get("acked_seq", 0))
        for result in answer.get("results", []):
            if (result["status"] == protocol.HELD) != (result["seq"] > acked):
                self.log.anomaly(f"seq {result['seq']} answered {result['status']} with acked_seq {acked}")
        return answer

    def _push_cut_before(self, body: bytes) -> dict[str, Any]:
        self.log.add("push.cut_before")
        raise Unreachable("fault injected: connection cut before the push reached the server")

    def _push_lost_ack(self, body: bytes) -> dict[str, Any]:
        answer = self._checked(super().push_raw(body))
        self.acked_answers.append(int(answer.get("acked_seq", 0)))
        self.log.add("push.lost_ack")
        raise Unreachable("fault injected: the server committed the push, its answer was lost")

    def _push_duplicate(self, body: bytes) -> dict[str, Any]:
        if self.rng.random() < 0.5:
            answers: list[dict[str, Any] | BaseException] = [RuntimeError("not answered")] * 2

            def send(i: int) -> None:
                try:
                    answers[i] = Transport.push_raw(self, body)
                except BaseException as exc:  # reported below, in the calling thread
                    answers[i] = exc

            threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            for answer in answers:
                if isinstance(answer, BaseException):
                    raise answer
            first, second = answers[0], answers[1]
            assert isinstance(first, dict) and isinstance(second, dict)
            self.log.add("push.duplicate.concurrent")
        else:
            first = super().push_raw(body)
            second = super().push_raw(body)
        self.log.add("push.duplicate")
        self._checked(first)
        self._checked(second)
        self._check_same_fate(first, second)
        return first

    def _check_same_fate(self, first: dict[str, Any], second: dict[str, Any]) -> None:
        """The two answers of one batch must agree: ``accepted`` in one is ``duplicate`` or ``accepted`` in the
        other, and any other status is the same in both."""
        other = {r["event_id"]: r["status"] for r in second.get("results", [])}
        for result in first.get("results", []):
            a, b = result["status"], other.get(result["event_id"])
            same = {a, b} <= {protocol.ACCEPTED, protocol.DUPLICATE} or a == b
            if not same:
                self.log.anomaly(f"batch sent twice answered {a} then {b} for event {result['event_id']}")

    def _push_reorder(self, body: bytes) -> dict[str, Any]:
        envelope = json.loads(body)
        events = envelope["events"]
        if len(events) < 2:
            return super().push_raw(body)  # nothing to reorder: sent as it is
        cut = self.rng.randint(1, len(events) - 1)
        lose_earlier = self.rng.random() < 1 / 3

        def part(chunk: list[dict[str, Any]]) -> bytes:
            text = {"batch_id": str(uuid.uuid4()), "device_time": envelope["device_time"], "events": chunk}
            return json.dumps(text, ensure_ascii=False, separators=(",", ":")).encode()

        # the server may already have the earlier half (an answer lost before): then nothing is held
        later = self._checked(super().push_raw(part(events[cut:])))
        self.acked_answers.append(int(later.get("acked_seq", 0)))
        if lose_earlier:
            self.log.add("push.reorder")
            self.log.add("push.reorder.earlier_lost")
            raise Unreachable("fault injected: the later half arrived first, the earlier half was lost")
        earlier = self._checked(super().push_raw(part(events[:cut])))
        released = {r["event_id"]: r for r in earlier.get("results", [])}
        for result in later.get("results", []):
            if result["status"] == protocol.HELD and result["event_id"] not in released:
                self.log.anomaly(f"held event seq {result['seq']} was not released when its gap was filled")
        self.log.add("push.reorder")
        results = {r["event_id"]: r for r in later.get("results", [])}
        results.update(released)  # the releasing answer wins
        return {**earlier, "results": list(results.values())}

    def _push_kill_server(self, body: bytes) -> dict[str, Any]:
        return self._killing("push", "POST /sync/v1/push", lambda: Transport.push_raw(self, body))

    def _killing(self, what: str, path: str, call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """SIGKILL the server while ``call`` is in flight (maybe inside its transaction), then start it again."""
        assert self.kill_switch is not None
        control = self.kill_switch.control
        self.log.add(f"{what}.kill_server")
        # most kills land while the request is being served: within 1.5 × its mean duration so far
        delay = self.rng.uniform(0.0, 1.5 * self.log.mean_seconds(path, default=0.1))

        def kill_soon() -> None:
            time.sleep(delay)
            control.kill()

        killer = threading.Thread(target=kill_soon)
        killer.start()
        try:
            answer = call()
            self.log.add(f"{what}.kill_server.after_answer")
            return answer
        except Unreachable:
            self.log.add(f"{what}.kill_server.before_answer")
            raise
        finally:
            killer.join()
            self.kill_switch.restart()


# --- the fleet ---------------------------------------------------------------------------------------------------


@dataclass
class SimDevice:
    index: int
    home: Path
    jurisdiction: str
    officer: str
    device_id: str = ""
    code: str = ""
    quota: int = 0
    acked_history: list[int] = field(default_factory=list)
    answer_history: list[int] = field(default_factory=list)
    syncs: int = 0
    failed_syncs: int = 0
    plates: int = 0


@dataclass
class SimResult:
    options: SimOptions
    devices: list[SimDevice]
    log: FaultLog
    elapsed_s: float
    events: int
    errors: list[str]
    report: InvariantReport | None = None

    @property
    def ok(self) -> bool:
        return not self.errors and not self.log.anomalies and self.report is not None and self.report.ok


class Fleet:
    def __init__(self, options: SimOptions, control: ServerControl | None, echo: Echo) -> None:
        if "kill_server" in options.faults and control is None:
            raise SimulationError(
                "kill_server needs a server the simulator controls: give --server-cmd (or a control from a test)"
            )
        self.options = options
        self.echo = echo
        self.log = FaultLog()
        self.switch = FaultSwitch()
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self.kill_switch = None
        if control is not None and "kill_server" in options.faults and options.kills > 0:
            step = options.events / (options.kills + 1)
            thresholds = [max(1, round(step * (k + 1))) for k in range(options.kills)]
            self.kill_switch = KillSwitch(control, thresholds, self.log)
        self.issued = 0
        workdir = options.workdir or Path(tempfile.mkdtemp(prefix="jingsu-fleet-"))
        if (workdir / "fleet.json").exists():
            raise SimulationError(f"{workdir} already holds a fleet (check it with --verify-only, or pick another)")
        self.workdir = workdir
        self.devices = [
            SimDevice(
                index=i,
                home=workdir / f"device-{i:04d}",
                jurisdiction=JURISDICTIONS[i % len(JURISDICTIONS)],
                officer=f"officer.{JURISDICTIONS[i % len(JURISDICTIONS)]}.{1 + (i // 2) % OFFICERS_PER_DISTRICT}",
                quota=options.events // options.devices + (1 if i < options.events % options.devices else 0),
            )
            for i in range(options.devices)
        ]

    # --- setup: registration through the admin API ------------------------------------------------------------

    def register(self) -> None:
        try:
            self._register()
        except httpx.HTTPError as exc:
            raise SimulationError(f"the server at {self.options.server} could not be reached: {exc}") from exc

    def _register(self) -> None:
        with httpx.Client(base_url=self.options.server, timeout=self.options.timeout_s) as api:
            login = api.post(
                "/api/v1/auth/login", json={"login": self.options.admin_login, "password": self.options.password}
            )
            if login.status_code != 200:
                raise SimulationError(f"admin sign-in refused: {login.status_code} {login.text[:200]}")
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            for device in self.devices:
                answer = api.post(
                    "/api/v1/devices",
                    json={"jurisdiction": device.jurisdiction, "label": f"시뮬레이터 {device.index + 1}호기"},
                    headers=headers,
                )
                if answer.status_code != 201:
                    raise SimulationError(f"device registration refused: {answer.status_code} {answer.text[:200]}")
                device.device_id = answer.json()["device_id"]
                device.code = answer.json()["enrollment_code"]

    def _enroll_and_sign_in(self, device: SimDevice, store: Store) -> None:
        """As ``pda enroll`` and ``pda login`` do, then a first full sync (codes, schedules, number blocks)."""
        with Transport(self.options.server, timeout=self.options.timeout_s) as transport:
            answer = transport.enroll(device.code, MODEL, "sim")
            with store.transaction():
                dev.start_new_chain(store)
                store.put(
                    "enrollment",
                    {
                        "server_url": self.options.server.rstrip("/"),
                        "device_id": answer["device_id"],
                        "device_secret": answer["device_secret"],
                        "qr_key": answer["qr_key"],
                        "pay_base_url": answer["pay_base_url"],
                        "jurisdiction": answer["jurisdiction"],
                    },
                )
                store.put("epoch", answer["epoch"])
            session = transport.session(answer["device_id"], answer["device_secret"], device.officer,
                                        self.options.password)  # fmt: skip
            with store.transaction():
                store.put("officer", {"id": session["officer"]["id"], "name": session["officer"]["name"],
                                      "login": device.officer})  # fmt: skip
                store.put("token", session["access_token"])
            transport.token = session["access_token"]
            SyncEngine(store, transport).sync()

    # --- the run ------------------------------------------------------------------------------------------------

    def run(self) -> float:
        """Enroll, issue and sync on ``concurrency`` threads (each owns its devices' stores); returns the seconds
        from the first event to the end of the drain."""
        workers = max(1, min(self.options.concurrency, len(self.devices)))
        ready = threading.Barrier(workers + 1)
        issued_all = threading.Barrier(workers + 1)
        healed = threading.Barrier(workers + 1)
        threads = [
            threading.Thread(
                target=self._worker, args=(self.devices[w::workers], ready, issued_all, healed), daemon=True
            )
            for w in range(workers)
        ]
        for thread in threads:
            thread.start()
        ticker = threading.Event()
        try:
            ready.wait()
            self.echo(f"{len(self.devices)} devices enrolled and synced; issuing {self.options.events} events")
            started = time.monotonic()
            threading.Thread(target=self._progress, args=(ticker, started), daemon=True).start()
            issued_all.wait()
            self.switch.on = False
            self.echo("faults healed; draining every outbox")
            healed.wait()
            for thread in threads:
                thread.join()
            return time.monotonic() - started
        except threading.BrokenBarrierError:
            for thread in threads:
                thread.join()
            raise SimulationError("; ".join(self.errors) or "a simulator thread failed") from None
        finally:
            ticker.set()

    def _progress(self, stop: threading.Event, started: float) -> None:
        while not stop.wait(1.0):
            faults = " ".join(f"{k}={v}" for k, v in sorted(self.log.counts.items()))
            syncs = sum(d.syncs for d in self.devices)
            failed = sum(d.failed_syncs for d in self.devices)
            self.echo(f"[{time.monotonic() - started:5.1f}s] events {self.issued}/{self.options.events} "
                      f"syncs {syncs} (failed {failed}) {faults}")  # fmt: skip

    def _worker(
        self,
        devices: list[SimDevice],
        ready: threading.Barrier,
        issued_all: threading.Barrier,
        healed: threading.Barrier,
    ) -> None:
        stores: dict[int, Store] = {}
        try:
            for device in devices:
                stores[device.index] = Store(device.home)
                self._enroll_and_sign_in(device, stores[device.index])
            transports = {d.index: self._transport(d, stores[d.index]) for d in devices}
            ready.wait()
            rngs = {d.index: random.Random(f"{self.options.seed}/{d.index}/actions") for d in devices}
            active = [d for d in devices if d.quota > 0]
            while active:
                for device in list(active):
                    self._round(device, stores[device.index], transports[device.index], rngs[device.index])
                    if device.quota == 0:
                        active.remove(device)
            issued_all.wait()
            healed.wait()
            for device in devices:
                self._drain(device, stores[device.index], transports[device.index])
            for device in devices:
                device.answer_history = list(transports[device.index].acked_answers)
                transports[device.index].close()
        except threading.BrokenBarrierError:
            return
        except BaseException as exc:  # a worker's failure ends the run: reported by the main thread
            with self._lock:
                self.errors.append(f"device thread failed: {type(exc).__name__}: {exc}")
            for barrier in (ready, issued_all, healed):
                barrier.abort()
        finally:
            for store in stores.values():
                store.close()

    def _transport(self, device: SimDevice, store: Store) -> FaultyTransport:
        return FaultyTransport(
            self.options.server,
            store.get("token"),
            timeout=self.options.timeout_s,
            rng=random.Random(f"{self.options.seed}/{device.index}/faults"),
            kinds=self.options.faults,
            rate=self.options.fault_rate,
            log=self.log,
            switch=self.switch,
            kill_switch=self.kill_switch,
        )

    def _round(self, device: SimDevice, store: Store, transport: FaultyTransport, rng: random.Random) -> None:
        """One stretch of an officer's shift: a burst of events, then a sync unless the device is offline."""
        burst = min(device.quota, rng.randint(1, 6))
        for _ in range(burst):
            self._event(device, store, transport, rng)
            device.quota -= 1
            with self._lock:
                self.issued += 1
            if self.kill_switch is not None:
                self.kill_switch.issued()
        if rng.random() >= self.options.offline_rate:
            self._sync(device, store, transport)

    def _event(self, device: SimDevice, store: Store, transport: FaultyTransport, rng: random.Random) -> None:
        live = [
            row[0]
            for row in store.conn.execute("SELECT notice_no FROM notices WHERE status IN ('issued', 'under_review')")
        ]
        roll = rng.random()
        if live and roll < 0.10:
            dev.void(store, rng.choice(sorted(live)), rng.choice(protocol.VOID_REASONS))
            return
        if live and roll < 0.14:
            dev.reprint(store, rng.choice(sorted(live)))
            return
        for _attempt in range(REFILL_ATTEMPTS):
            try:
                if roll >= 0.96:
                    number = dev.next_free_number(store, dev.system_clock())
                    if number is None:
                        raise CannotIssue("no notice numbers left on this device")
                    dev.spoil(store, number, rng.choice(protocol.SPOIL_REASONS))
                else:
                    dev.issue(store, self._command(device, rng))
                return
            except CannotIssue as exc:
                if "no notice numbers left" not in str(exc):
                    raise
                self._sync(device, store, transport)  # an officer out of numbers goes online for a new block
        raise SimulationError(f"device {device.index} got no new number block after {REFILL_ATTEMPTS} syncs")

    @staticmethod
    def _command(device: SimDevice, rng: random.Random) -> dev.IssueCommand:
        device.plates += 1
        district = "종로구" if device.jurisdiction == "11110" else "강남구"
        place = f"서울특별시 {district} 시뮬레이션로 {rng.randint(1, 300)}"
        if rng.random() < 0.1:
            return dev.IssueCommand(
                code="S01",
                place=place,
                name=rng.choice(("홍길동", "김철수", "이영희", "박민수")),
                birth_date=date(rng.randint(1950, 2004), rng.randint(1, 12), rng.randint(1, 28)),
                address=f"서울특별시 {district} 종로 {rng.randint(1, 99)}",
            )
        # unique per device and event: no two simulated notices look like the same violation (possible_duplicate)
        plate = f"{10 + device.index % 90}{'가나다라마바사아자'[device.index // 90 % 9]}{device.plates:04d}"
        return dev.IssueCommand(code="P01", place=place, plate=plate, vehicle_type=rng.choice(protocol.VEHICLE_TYPES))

    def _sync(self, device: SimDevice, store: Store, transport: FaultyTransport) -> bool:
        if self.kill_switch is not None:
            # requests in flight when the server is killed fail with it; new ones wait for the restart, so that the
            # faults are drawn against a running server
            self.kill_switch.wait_up()
        device.syncs += 1
        try:
            report = SyncEngine(store, transport).sync()
            ok = True
            if report.reset:  # the server's epoch changed (a restore): the device re-sent all it kept
                self.log.add("reset_required")
        except Unreachable:
            device.failed_syncs += 1
            ok = False
        device.acked_history.append(int(store.get("acked_seq", 0)))
        return ok

    def _drain(self, device: SimDevice, store: Store, transport: FaultyTransport) -> None:
        for _attempt in range(DRAIN_ATTEMPTS):
            if self._sync(device, store, transport) and not store.outbox("pending", "held"):
                return
            time.sleep(0.2)
        with self._lock:
            self.errors.append(f"device {device.index} still has unsettled events after {DRAIN_ATTEMPTS} syncs")


def save_manifest(workdir: Path, options: SimOptions, devices: list[SimDevice]) -> None:
    """What ``--verify-only`` needs to check the same fleet again: its homes, ids and cursor histories."""
    manifest = {
        "server": options.server,
        "seed": options.seed,
        "faults": list(options.faults),
        "devices": [
            {
                "index": d.index,
                "home": str(d.home),
                "device_id": d.device_id,
                "jurisdiction": d.jurisdiction,
                "officer": d.officer,
                "acked_history": d.acked_history,
                "answer_history": d.answer_history,
            }
            for d in devices
        ],
    }
    (workdir / "fleet.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1))


def load_manifest(workdir: Path) -> list[SimDevice]:
    try:
        manifest = json.loads((workdir / "fleet.json").read_text())
    except OSError as exc:
        raise SimulationError(f"no fleet in {workdir}: {exc}") from exc
    return [
        SimDevice(
            index=d["index"],
            home=Path(d["home"]),
            jurisdiction=d["jurisdiction"],
            officer=d["officer"],
            device_id=d["device_id"],
            acked_history=d["acked_history"],
            answer_history=d["answer_history"],
        )
        for d in manifest["devices"]
    ]


def simulate(options: SimOptions, *, database_url: str, control: ServerControl | None = None,
             echo: Echo = lambda text: print(text, file=sys.stderr)) -> SimResult:  # fmt: skip
    """Run the fleet against ``options.server``, then check the invariants in ``database_url``.

    Raises ``SimulationError`` when the run itself cannot proceed (setup refused, a thread failed)."""
    fleet = Fleet(options, control, echo)
    echo(f"fleet of {options.devices} devices in {fleet.workdir} (seed {options.seed}, "
         f"faults {','.join(options.faults) or 'none'})")  # fmt: skip
    fleet.register()
    elapsed = fleet.run()
    save_manifest(fleet.workdir, options, fleet.devices)
    result = SimResult(options, fleet.devices, fleet.log, elapsed, fleet.issued, list(fleet.errors))
    result.report = check_invariants(fleet.devices, database_url)
    return result


# --- the invariant report ------------------------------------------------------------------------------------------


@dataclass
class Check:
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
    blocks: set[tuple[str, str, int, int]]  # live (jurisdiction, year2, first, last)
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


def check_invariants(devices: list[SimDevice], database_url: str) -> InvariantReport:
    """Compare every device's store with the server's database (one read-only snapshot); the counts come from there.

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
    locals_ = [_read_local(d) for d in devices]
    ids = [d.device_id for d in devices]
    device_numbers = sorted({n for loc in locals_ for n in loc.used})
    server = _read_server(database_url, ids, device_numbers)

    printed = Check("printed notice in the ledger exactly once, as printed", "lost")
    events_lost = Check("device event on the server with the same content and fate", "lost")
    unsettled = Check("nothing left pending or held after the drain", "lost")
    effects = Check("accepted void/spoil took effect on the server", "lost")
    cursors = Check("acked_seq only moved forward and matches the server", "lost")
    phantom = Check("no server notice or event the device did not make", "duplicated")
    reused = Check("no number used twice (notices ∪ spoiled, devices, blocks)", "duplicated")
    doubled = Check("one receivable and one principal charge per notice", "duplicated")
    outside = Check("numbers used ⊆ the device's blocks", "unaccounted_numbers")
    blocks_check = Check("every allocated number issued, spoiled or unused; no gaps", "unaccounted_numbers")
    money = Check("principal = printed amount; balance = sum of entries (voided → 0)", "money_mismatch_won")
    checks = [printed, events_lost, unsettled, effects, cursors, phantom, reused, doubled, outside, blocks_check,
              money]  # fmt: skip

    notices_by_no: dict[str, list[dict[str, Any]]] = {}
    for row in server["notices"]:
        notices_by_no.setdefault(row["notice_no"], []).append(row)
    spoiled_by_no: dict[str, list[dict[str, Any]]] = {}
    for row in server["spoiled"]:
        spoiled_by_no.setdefault(row["notice_no"], []).append(row)
    events_by_id = {row["event_id"]: row for row in server["events"]}
    acked_on_server = {row["id"]: int(row["acked_seq"]) for row in server["devices"]}
    sim_blocks = [b for b in server["blocks"] if b["device_id"] in set(ids)]

    report = InvariantReport(devices=len(devices), events=0, checks=checks)
    for loc in locals_:
        did = loc.device.device_id
        report.events += loc.seq
        # 1. every printed notice is in the ledger once, identical, issued by this device
        for notice_no, data in loc.notices.items():
            rows = notices_by_no.get(notice_no, [])
            if not rows:
                printed.fail(f"{notice_no} (device {loc.device.index}) is not on the server")
                continue
            if len(rows) > 1:
                reused.fail(f"{notice_no} has {len(rows)} notices rows", len(rows) - 1)
            row = rows[0]
            diffs = [name for name, get in _PRINTED_FIELDS.items() if str(get(data)) != str(row[name])]
            if row["device_id"] != did:
                diffs.append("device_id")
            if diffs:
                printed.fail(f"{notice_no} differs in {', '.join(diffs)}")
            if row["amount"] != data["amount"]:
                money.fail(f"{notice_no} printed {data['amount']} won, ledger {row['amount']}",
                           abs(int(row["amount"]) - int(data["amount"])))  # fmt: skip
        # 2. every event the device made is on the server with the same content and the same fate
        for event in loc.events.values():
            if event["state"] != "done":
                unsettled.fail(f"device {loc.device.index} seq {event['seq']} is {event['state']}")
            stored = events_by_id.get(event["event_id"])
            if stored is None or stored["device_id"] != did or stored["content_hash"] != event["hash"]:
                events_lost.fail(f"device {loc.device.index} seq {event['seq']} ({event['type']}) is not on the server")
                continue
            fate = protocol.ACCEPTED if event["status"] == protocol.DUPLICATE else event["status"]
            if event["state"] == "done" and fate != stored["status"]:
                events_lost.fail(f"seq {event['seq']}: device says {event['status']}, server {stored['status']}")
            if stored["status"] != protocol.ACCEPTED:
                continue
            if event["type"] == protocol.NOTICE_VOIDED:
                rows = notices_by_no.get(event["notice_no"], [])
                if not rows or rows[0]["status"] != "voided":
                    effects.fail(f"void of {event['notice_no']} accepted, notice is not voided")
            elif event["type"] == protocol.NUMBER_SPOILED:
                spoils = spoiled_by_no.get(event["notice_no"], [])
                if not any(s["event_id"] == event["event_id"] for s in spoils):
                    effects.fail(f"spoil of {event['notice_no']} accepted, no spoiled_numbers row")
        # 3. cursors only move forward, and end where the server is
        for history, what in ((loc.device.acked_history, "stored"), (loc.device.answer_history, "answered")):
            for before, after in zip(history, history[1:]):
                if after < before:
                    cursors.fail(f"device {loc.device.index}: {what} acked_seq went {before} → {after}")
        if acked_on_server.get(did) != loc.acked_seq or loc.acked_seq != loc.seq:
            cursors.fail(f"device {loc.device.index}: acked_seq device {loc.acked_seq}, server "
                         f"{acked_on_server.get(did)}, last seq {loc.seq}")  # fmt: skip
        # 4. nothing on the server that the device did not make
        mine = {row["event_id"] for row in server["events"] if row["device_id"] == did}
        for event_id in sorted(mine - set(loc.events)):
            phantom.fail(f"event {event_id} of device {loc.device.index} was never made by it")
        for row in server["notices"]:
            if row["device_id"] == did and row["notice_no"] not in loc.notices:
                phantom.fail(f"notice {row['notice_no']} of device {loc.device.index} was never printed by it")
        for row in server["spoiled"]:
            if row["device_id"] == did and loc.used.get(row["notice_no"]) != "spoiled":
                phantom.fail(f"spoiled {row['notice_no']} of device {loc.device.index} was never spoiled by it")
        # 5. the numbers a device used lie in its blocks, and the server knows each of them
        blocks = [
            (b["jurisdiction"], b["year2"], int(b["first_serial"]), int(b["last_serial"]))
            for b in sim_blocks
            if b["device_id"] == did
        ]
        for notice_no in loc.used:
            parsed = protocol.parse_notice_no(notice_no)
            if parsed is None or not any(
                j == parsed.jurisdiction and y == parsed.year2 and f <= parsed.serial <= la for j, y, f, la in blocks
            ):
                outside.fail(f"{notice_no} used by device {loc.device.index} is outside its blocks")
            if notice_no not in notices_by_no and notice_no not in spoiled_by_no:
                outside.fail(f"{notice_no} used by device {loc.device.index} is unknown to the server")
        live_server_blocks = {
            (b["jurisdiction"], b["year2"], int(b["first_serial"]), int(b["last_serial"]))
            for b in sim_blocks
            if b["device_id"] == did and b["status"] == "active"
        }
        for j, y, f, la in live_server_blocks ^ loc.blocks:
            blocks_check.fail(f"block {j}{y} {f}..{la}: device and server disagree", la - f + 1)

    # 6. no number used twice; every number of a block accounted for
    for notice_no in sorted(set(notices_by_no) & set(spoiled_by_no)):
        reused.fail(f"{notice_no} is both a notice and spoiled")
    owners: dict[str, int] = {}
    for loc in locals_:
        for notice_no in loc.used:
            if notice_no in owners:
                reused.fail(f"{notice_no} used by devices {owners[notice_no]} and {loc.device.index}")
            owners[notice_no] = loc.device.index
    for a in sim_blocks:
        for b in server["blocks"]:
            if b["id"] == a["id"] or (b["device_id"] in set(ids) and b["id"] < a["id"]):
                continue
            if (a["jurisdiction"], a["year2"]) == (b["jurisdiction"], b["year2"]):
                overlap = min(a["last_serial"], b["last_serial"]) - max(a["first_serial"], b["first_serial"]) + 1
                if overlap > 0:
                    reused.fail(f"blocks {a['id']} and {b['id']} share {overlap} numbers", overlap)
    used_serials: dict[tuple[str, str], set[int]] = {}
    for notice_no in list(notices_by_no) + list(spoiled_by_no):
        parsed = protocol.parse_notice_no(notice_no)
        if parsed is not None:
            used_serials.setdefault((parsed.jurisdiction, parsed.year2), set()).add(parsed.serial)
    for b in sim_blocks:
        first, last = int(b["first_serial"]), int(b["last_serial"])
        serials = {s for s in used_serials.get((b["jurisdiction"], b["year2"]), set()) if first <= s <= last}
        if serials:
            gaps = (max(serials) - first + 1) - len(serials)
            if gaps:
                blocks_check.fail(f"block {b['id']} has {gaps} numbers below its highest used that were never seen",
                                  gaps)  # fmt: skip
        report.allocated += last - first + 1
        report.used += len(serials)
        if int(b["used_count"]) != len(serials):
            blocks_check.fail(f"block {b['id']} counts {b['used_count']} used, the ledger holds {len(serials)}",
                              abs(int(b["used_count"]) - len(serials)))  # fmt: skip

    # 7. money: one receivable per notice, its principal charge is the printed amount, voided ones net 0
    money_rows: dict[str, list[dict[str, Any]]] = {}
    for row in server["money"]:
        money_rows.setdefault(row["notice_no"], []).append(row)
    for row in server["notices"]:
        if row["device_id"] not in set(ids):
            continue
        report.notices += 1
        receivables = money_rows.get(row["notice_no"], [])
        amount = int(row["amount"])
        if not receivables:
            money.fail(f"{row['notice_no']} has no receivable", amount)
            continue
        if len(receivables) > 1:
            doubled.fail(f"{row['notice_no']} has {len(receivables)} receivables", len(receivables) - 1)
        principal = sum(int(r["principal"]) for r in receivables)
        charges = sum(int(r["charges"]) for r in receivables)
        balance = sum(int(r["balance"]) for r in receivables)
        report.money_on_receivables += balance
        if charges > 1:
            doubled.fail(f"{row['notice_no']} was charged {charges} times", charges - 1)
        if principal != amount:
            money.fail(f"{row['notice_no']} principal {principal} won, printed {amount}", abs(principal - amount))
        expected = 0 if row["status"] in ("voided", "cancelled") else amount
        if row["status"] == "voided":
            report.voided += 1
        if row["status"] in ("voided", "cancelled", "issued", "under_review") and balance != expected:
            money.fail(f"{row['notice_no']} ({row['status']}) balance {balance} won, expected {expected}",
                       abs(balance - expected))  # fmt: skip
    report.spoiled = sum(1 for row in server["spoiled"] if row["device_id"] in set(ids))
    return report


# --- output ------------------------------------------------------------------------------------------------------


def table(rows: list[tuple[Any, ...]], headers: tuple[str, ...]) -> str:
    """A plain text table (Hangul counted as two columns)."""

    def width(text: str) -> int:
        return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)

    cells = [tuple(str(c) for c in headers)] + [tuple(str(c) for c in row) for row in rows]
    widths = [max(width(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(cell + " " * (widths[i] - width(cell)) for i, cell in enumerate(row)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render(result: SimResult | None, report: InvariantReport) -> str:
    """The throughput and fault tables (after a run), the invariant table, and the one-line summary last."""
    parts = []
    if result is not None:
        syncs = sum(d.syncs for d in result.devices)
        failed = sum(d.failed_syncs for d in result.devices)
        rate = result.events / result.elapsed_s if result.elapsed_s > 0 else 0.0
        parts.append(
            table(
                [
                    ("devices", len(result.devices)),
                    ("events", result.events),
                    ("seconds", f"{result.elapsed_s:.1f}"),
                    ("throughput (events/s)", f"{rate:.1f}"),
                    ("syncs (failed)", f"{syncs} ({failed})"),
                    ("seed", result.options.seed),
                ],
                ("run", "value"),
            )
        )
        log = result.log
        timings = [
            (
                name,
                log.requests[name],
                f"{log.seconds[name]:.1f}",
                f"{1000 * log.seconds[name] / log.requests[name]:.0f}",
            )
            for name in sorted(log.requests)
        ]
        parts.append(table(timings or [("-", 0, 0, 0)], ("request", "count", "seconds", "mean ms")))
        faults = sorted(result.log.counts.items())
        parts.append(table(faults or [("-", 0)], ("faults injected, results answered", "count")))
        problems = result.errors + result.log.anomalies
        if problems:
            parts.append("problems:\n" + "\n".join(f"  {p}" for p in problems))
    parts.append(
        table(
            [
                ("server notices", report.notices),
                ("of them voided", report.voided),
                ("spoiled numbers", report.spoiled),
                ("numbers allocated", report.allocated),
                ("  used (issued or spoiled)", report.used),
                ("  unused", report.allocated - report.used),
                ("money on receivables (won)", f"{report.money_on_receivables:,}"),
            ],
            ("ledger of the fleet", "value"),
        )
    )
    rows = []
    for check in report.checks:
        rows.append(("ok" if check.count == 0 else "FAIL", check.name, check.counter, check.count))
    parts.append(table(rows, ("", "invariant", "counts as", "count")))
    failures = [f"  {c.name}: {example}" for c in report.checks for example in c.examples]
    if failures:
        parts.append("examples:\n" + "\n".join(failures))
    parts.append(report.summary_line())
    return "\n\n".join(parts)
