"""The fleet: register devices through the admin API, enroll them, issue and sync on threads, drain, and save the
manifest that ``--verify-only`` reads again."""

from __future__ import annotations

import json
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx

import protocol
from fleet.control import ServerControl
from fleet.faults import FaultLog, FaultSwitch, FaultyTransport, KillSwitch
from fleet.invariants import InvariantReport, check_invariants
from fleet.options import (
    DRAIN_ATTEMPTS,
    JURISDICTIONS,
    MODEL,
    OFFICERS_PER_DISTRICT,
    REFILL_ATTEMPTS,
    Echo,
    SimDevice,
    SimOptions,
    SimulationError,
)
from pda_client import device as dev
from pda_client.engine import SyncEngine
from pda_client.errors import CannotIssue, Unreachable
from pda_client.store import Store
from pda_client.transport import Transport


@dataclass
class SimResult:
    """A run: its devices, the faults injected, its duration, and the invariant report."""

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
    """The devices of one run and the threads that drive them."""

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
            self._issue_quotas(devices, stores, transports)
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

    def _issue_quotas(
        self, devices: list[SimDevice], stores: dict[int, Store], transports: dict[int, FaultyTransport]
    ) -> None:
        """Round after round over the thread's devices until each has issued its quota."""
        rngs = {d.index: random.Random(f"{self.options.seed}/{d.index}/actions") for d in devices}
        active = [d for d in devices if d.quota > 0]
        while active:
            for device in list(active):
                self._round(device, stores[device.index], transports[device.index], rngs[device.index])
                if device.quota == 0:
                    active.remove(device)

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
