"""Fault injection: the device's real transport with seeded faults, and the switches and counts the fleet shares.

- ``cut_before``  the connection breaks before the request reaches the server (push or pull);
- ``lost_ack``    the server commits, the answer is lost (push or pull): the device retries and settles by
                  ``duplicate``;
- ``duplicate``   the same push is sent twice, one time in two concurrently;
- ``reorder``     a push is split and its later half sent first (the server holds it), then the earlier half (which
                  releases it); one time in three the earlier half is lost instead, and the device re-sends it all;
- ``kill_server`` the server's process group gets SIGKILL while a push or a pull is in flight (``KillSwitch``).
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import protocol
from fleet.control import ServerControl
from pda_client.errors import Unreachable
from pda_client.transport import Transport


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
