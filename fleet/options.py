"""The simulator's options, its fault kinds and the devices of a fleet (plain data, shared by every part)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

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
    """What ``python -m fleet`` (and ``pda simulate``) takes on its command line."""

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


@dataclass
class SimDevice:
    """One simulated device: its home (a real SQLite store), its officer, its quota and what it saw."""

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
