"""``python -m fleet`` (and ``pda simulate``, which hands over to it): a fleet of simulated devices under injected
faults, then the invariant report read from the server's database (PROTOCOL.md §7 ``simulate``)."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import click

import fleet as sim


@click.command()
@click.option("--server", help="server base URL, e.g. http://127.0.0.1:5000 (not needed with --verify-only)")
@click.option("--devices", type=click.IntRange(min=1), default=20, show_default=True, help="devices in the fleet")
@click.option("--events", type=click.IntRange(min=0), default=200, show_default=True, help="events across the fleet")
@click.option("--offline-rate", type=click.FloatRange(0, 1), default=0.3, show_default=True,
              help="share of syncs skipped (the device is out of coverage)")  # fmt: skip
@click.option("--faults", default="", help="comma list of cut_before, lost_ack, duplicate, reorder, kill_server, "
              "or all")  # fmt: skip
@click.option("--fault-rate", type=click.FloatRange(0, 1), default=0.25, show_default=True,
              help="share of pushes and pulls that get one of the faults")  # fmt: skip
@click.option("--kills", type=click.IntRange(min=0), default=2, show_default=True, help="kill_server: how many times")
@click.option("--seed", type=int, default=None, help="replays the same run (default: a random seed, printed)")
@click.option("--database-url", envvar="DATABASE_URL", help="the server's database, read by the invariant report "
              "[env DATABASE_URL]")  # fmt: skip
@click.option("--server-cmd", help="shell command that starts the server at --server; the simulator runs it in its "
              "own process group, SIGKILLs that group for kill_server and runs it again")  # fmt: skip
@click.option("--concurrency", type=click.IntRange(min=1), default=4, show_default=True, help="devices syncing at once")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              help="where the device homes and fleet.json go (default: a new temporary directory)")  # fmt: skip
@click.option("--verify-only", is_flag=True, help="only check the invariants again for the fleet in --workdir")
@click.option("--admin-login", default="admin", show_default=True)
@click.option("--password", envvar="JINGSU_DEMO_PASSWORD", default="jingsu-demo",
              help="password of the admin and the demo officers [env JINGSU_DEMO_PASSWORD]")  # fmt: skip
def main(server: str | None, devices: int, events: int, offline_rate: float, faults: str, fault_rate: float,
         kills: int, seed: int | None, database_url: str | None, server_cmd: str | None, concurrency: int,
         workdir: Path | None, verify_only: bool, admin_login: str, password: str) -> None:  # fmt: skip
    """A fleet of simulated devices under injected faults; prints throughput and an invariant report read from
    the server's database, ending with `devices=.. events=.. lost=0 duplicated=0 unaccounted_numbers=0
    money_mismatch_won=0`; exits 1 when an invariant fails."""

    def progress(text: str) -> None:
        click.echo(text, err=True)

    if not database_url:
        raise click.UsageError("the invariant report reads the server's database: give --database-url or DATABASE_URL")
    try:
        if verify_only:
            if workdir is None:
                raise click.UsageError("--verify-only needs --workdir")
            report = sim.check_invariants(sim.load_manifest(workdir), database_url)
            click.echo(sim.render(None, report))
            sys.exit(0 if report.ok else 1)
        if not server:
            raise click.UsageError("--server is required (unless --verify-only)")
        options = sim.SimOptions(
            server=server.rstrip("/"), devices=devices, events=events, offline_rate=offline_rate,
            faults=sim.parse_faults(faults), fault_rate=fault_rate, kills=kills,
            seed=seed if seed is not None else random.SystemRandom().randrange(2**31), concurrency=concurrency,
            workdir=workdir, admin_login=admin_login, password=password,
        )  # fmt: skip
        control = sim.CommandServer(server_cmd, options.server) if server_cmd else None
        if control is not None:
            progress(f"starting the server: {server_cmd}")
            control.start()
        try:
            result = sim.simulate(options, database_url=database_url, control=control, echo=progress)
        finally:
            if control is not None:
                control.stop()
    except sim.SimulationError as exc:
        click.echo(f"오류: {exc}", err=True)
        sys.exit(2)
    assert result.report is not None
    click.echo(sim.render(result, result.report))
    sys.exit(0 if result.ok else 1)
