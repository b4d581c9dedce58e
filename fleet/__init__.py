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

Its own package, beside the device's: it is test tooling, and its invariant report reads the server's database,
which ``pda_client`` (the device: ``protocol`` and ``printing`` only) must not. It may import ``pda_client``,
``protocol`` and ``printing``, and reads the database with plain SQL (no ``models``). Entry points: ``python -m
fleet`` (``fleet.cli``), and ``pda simulate``, which hands its arguments over to it.

Modules: ``options`` (options, fault kinds, the devices), ``control`` (a server to kill and restart), ``faults`` (the
faulty transport), ``run`` (the fleet, its manifest, ``simulate``), ``invariants`` (the report's checks),
``report`` (the text tables and the summary line), ``cli``.
"""

from fleet.control import CommandServer, ServerControl
from fleet.invariants import Check, InvariantReport, check_invariants
from fleet.options import FAULT_KINDS, SimDevice, SimOptions, SimulationError, parse_faults
from fleet.report import render, table
from fleet.run import SimResult, load_manifest, save_manifest, simulate

__all__ = [
    "FAULT_KINDS",
    "Check",
    "CommandServer",
    "InvariantReport",
    "ServerControl",
    "SimDevice",
    "SimOptions",
    "SimResult",
    "SimulationError",
    "check_invariants",
    "load_manifest",
    "parse_faults",
    "render",
    "save_manifest",
    "simulate",
    "table",
]
