"""The ``pda`` command (PROTOCOL.md §7): the officer's device, driven from a terminal.

pda --home DIR enroll --server URL --code CODE
pda --home DIR login --officer LOGIN [--password-stdin]
pda --home DIR issue --code P01 --plate 12가3456 --place "…" [--print escpos|pdf|png --out FILE]
pda --home DIR void|spoil NOTICE_NO --reason CODE · reprint NOTICE_NO --print … --out …
pda --home DIR sync · status · hotlist PLATE
pda simulate --server URL --devices N --events M [--offline-rate P] [--faults SPEC] [--seed S]  (python -m fleet)
"""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from pda_client import device as dev
from pda_client.config import PdaConfig
from pda_client.engine import SyncEngine
from pda_client.errors import PdaError
from pda_client.store import Store
from pda_client.text import table
from pda_client.transport import Transport

NOTICE_STATUS_LABELS = {
    "issued": "발급",
    "under_review": "검토 중",
    "voided": "취소(단속원)",
    "cancelled": "직권취소",
    "noticed": "사전통지",
    "paid": "납부 완료",
    "imposed": "부과",
    "objected": "이의제기",
    "in_court": "재판 중",
    "overdue": "체납",
    "closed": "종결",
}
STATUS_LABELS = {
    "pending": "전송 대기",
    "held": "보류(순번 누락)",
    "accepted": "접수",
    "duplicate": "중복(이미 접수)",
    "rejected": "거부",
    "conflict": "충돌",
}


@click.group()
@click.option("--home", type=click.Path(path_type=Path), default=None, help="device home (default ~/.jingsu-pda)")
@click.pass_context
def main(ctx: click.Context, home: Path | None) -> None:
    """Jingsu PDA: issue fine notices offline and sync them."""
    config = PdaConfig.from_env()
    ctx.obj = config.with_home(home) if home else config


@contextmanager
def _store(ctx: click.Context) -> Iterator[Store]:
    config: PdaConfig = ctx.obj
    store = Store(config.home)
    try:
        yield store
    except PdaError as exc:
        click.echo(f"오류: {exc}", err=True)
        sys.exit(exc.exit_code)
    finally:
        store.close()


@main.command()
@click.option("--server", required=True, help="server base URL, e.g. http://127.0.0.1:5000")
@click.option("--code", required=True, help="the one-use enrollment code the administrator gave")
@click.pass_context
def enroll(ctx: click.Context, server: str, code: str) -> None:
    """Enroll this device with the server."""
    config: PdaConfig = ctx.obj
    with _store(ctx) as store, Transport(server, timeout=config.timeout_s) as transport:
        dev.check_can_enroll(store)
        answer = transport.enroll(code, config.model, config.app_version)
        with store.transaction():
            dev.start_new_chain(store)
            store.put(
                "enrollment",
                {
                    "server_url": server.rstrip("/"),
                    "device_id": answer["device_id"],
                    "device_secret": answer["device_secret"],
                    "qr_key": answer["qr_key"],
                    "pay_base_url": answer["pay_base_url"],
                    "jurisdiction": answer["jurisdiction"],
                },
            )
            store.put("epoch", answer["epoch"])
        click.echo(f"등록 완료: 단말 {answer['device_id']} (관할 {answer['jurisdiction']})")


@main.command()
@click.option("--officer", "officer_login", required=True)
@click.option("--password-stdin", is_flag=True, help="read the password from standard input")
@click.pass_context
def login(ctx: click.Context, officer_login: str, password_stdin: bool) -> None:
    """Sign an officer in for the shift (needs the network once)."""
    config: PdaConfig = ctx.obj
    password = sys.stdin.readline().rstrip("\n") if password_stdin else getpass.getpass("비밀번호: ")
    with _store(ctx) as store:
        enrolled = dev.enrollment(store)
        with Transport(enrolled.server_url, timeout=config.timeout_s) as transport:
            answer = transport.session(enrolled.device_id, enrolled.device_secret, officer_login, password)
        with store.transaction():
            store.put(
                "officer", {"id": answer["officer"]["id"], "name": answer["officer"]["name"], "login": officer_login}
            )
            store.put("token", answer["access_token"])
            store.put("epoch", answer["epoch"])
        click.echo(f"로그인: {answer['officer']['name']} ({officer_login})")


def _print(store: Store, notice_no: str, fmt: str | None, out: Path | None) -> None:
    if not fmt:
        return
    if out is None:
        raise click.UsageError("--print needs --out FILE")
    from pda_client.slips import render

    out.write_bytes(render(store, notice_no, fmt))
    click.echo(f"인쇄: {fmt} → {out}")


@main.command()
@click.option("--code", required=True, help="violation code, e.g. P01")
@click.option("--plate")
@click.option("--vehicle-type", type=click.Choice(["car", "van"]), default="car", show_default=True)
@click.option("--name")
@click.option("--birth-date", type=click.DateTime(formats=["%Y-%m-%d"]))
@click.option("--address")
@click.option("--rrn")
@click.option("--phone")
@click.option("--place", required=True)
@click.option("--lat", type=float)
@click.option("--lon", type=float)
@click.option("--zone")
@click.option("--photo", "photos", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--memo")
@click.option("--print", "fmt", type=click.Choice(["escpos", "pdf", "png"]))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def issue(ctx: click.Context, fmt: str | None, out: Path | None, birth_date: datetime | None, photos: tuple[Path, ...],
          **fields: Any) -> None:  # fmt: skip
    """Issue a notice (works with no network) and optionally print it."""
    with _store(ctx) as store:
        issued = dev.issue(
            store,
            dev.IssueCommand(birth_date=birth_date.date() if birth_date else None, photos=list(photos), **fields),
        )
        click.echo(
            table(
                [
                    ("고지번호", issued.notice_no),
                    ("위반내용", f"{issued.violation_code} {issued.violation_name}"),
                    ("과태료", f"{issued.amount:,}원"),
                    ("감경 금액", f"{issued.reduced_amount:,}원"),
                    ("의견제출기한", issued.opinion_deadline.isoformat()),
                    ("QR", issued.qr),
                ],
                ("항목", "값"),
            )
        )
        _print(store, issued.notice_no, fmt, out)


@main.command()
@click.argument("notice_no")
@click.option(
    "--reason", required=True, help="wrong_vehicle, wrong_code, driver_returned, duplicate, test_print, other"
)
@click.option("--memo")
@click.pass_context
def void(ctx: click.Context, notice_no: str, reason: str, memo: str | None) -> None:
    """Void a notice issued on this device."""
    with _store(ctx) as store:
        dev.void(store, notice_no, reason, memo)
        click.echo(f"취소 기록: {notice_no} ({reason}) — 다음 동기화 때 전송됩니다")


@main.command()
@click.argument("notice_no")
@click.option("--reason", required=True, help="why (kept with the notice)")
@click.option("--plate")
@click.option("--vehicle-type", type=click.Choice(["car", "van"]))
@click.option("--code", help="the right violation code (the amounts are recomputed)")
@click.option("--place")
@click.option("--zone")
@click.option("--memo")
@click.option("--print", "fmt", type=click.Choice(["escpos", "pdf", "png"]))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def correct(ctx: click.Context, notice_no: str, fmt: str | None, out: Path | None, **fields: Any) -> None:
    """Correct a notice issued on this device (its number never changes); print it again with --print."""
    with _store(ctx) as store:
        event = dev.correct(store, dev.CorrectCommand(notice_no=notice_no, **fields))
        changed = ", ".join(k for k in event["data"] if k not in ("prev_hash", "reason"))
        click.echo(f"정정 기록: {notice_no} ({changed}) — 다음 동기화 때 전송됩니다")
        _print(store, notice_no, fmt, out)


@main.command()
@click.argument("notice_no")
@click.option("--reason", required=True, help="printer_jam, misprint, other")
@click.pass_context
def spoil(ctx: click.Context, notice_no: str, reason: str) -> None:
    """Account for a number that will never be issued."""
    with _store(ctx) as store:
        dev.spoil(store, notice_no, reason)
        click.echo(f"폐기 기록: {notice_no} ({reason})")


@main.command()
@click.argument("notice_no")
@click.option("--print", "fmt", type=click.Choice(["escpos", "pdf", "png"]), required=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.pass_context
def reprint(ctx: click.Context, notice_no: str, fmt: str, out: Path) -> None:
    """Print a notice again (recorded and synced)."""
    with _store(ctx) as store:
        dev.reprint(store, notice_no)
        _print(store, notice_no, fmt, out)


@main.command("sync")
@click.pass_context
def sync_cmd(ctx: click.Context) -> None:
    """Push everything, then pull everything; exit 0 when all was transmitted."""
    config: PdaConfig = ctx.obj
    with _store(ctx) as store:
        enrolled = dev.enrollment(store)
        bars: dict[str, Any] = {}

        def progress(phase: str, done: int, total: int) -> None:
            label = {"upload": "사진", "push": "전송", "pull": "수신"}[phase]
            bar = bars.get(phase)
            if bar is None:
                bar = bars[phase] = click.progressbar(length=max(total, 1), label=label, file=sys.stderr)
                bar.__enter__()
            bar.length = max(total, 1)
            bar.update(done - bar.pos)

        with Transport(enrolled.server_url, store.get("token"), timeout=config.timeout_s) as transport:
            engine = SyncEngine(store, transport, progress=progress, fault=config.fault)
            try:
                report = engine.sync()
            finally:
                for bar in bars.values():
                    bar.__exit__(None, None, None)
        rows = [(STATUS_LABELS.get(s, s), s, n) for s, n in sorted(report.pushed.items())]
        click.echo(table(rows or [("-", "-", 0)], ("결과", "status", "건수")))
        for seq, notice_no, status, code in report.problems:
            click.echo(f"  seq {seq} {notice_no}: {status} {code}")
        if report.statuses:
            click.echo("")
            changed = [
                (notice_no, NOTICE_STATUS_LABELS.get(st, st), st) for notice_no, st in sorted(report.statuses.items())
            ]
            click.echo(table(changed, ("고지번호", "상태", "status")))
        click.echo(f"acked_seq={report.acked_seq} pulled={report.pulled}" + (" reset=yes" if report.reset else ""))


@main.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """Queue by state, numbers left, last sync, clock offset, epoch."""
    with _store(ctx) as store:
        enrolled = dev.enrollment(store)
        officer = store.get("officer") or {}
        counts = store.counts_by_state()
        now = datetime.now(UTC)
        rows = [(STATUS_LABELS.get(s, s), s, n) for s, n in sorted(counts.items())]
        click.echo(table(rows or [("-", "-", 0)], ("상태", "state", "건수")))
        refused = store.conn.execute(
            "SELECT seq, notice_no, status, result FROM outbox WHERE status IN ('rejected', 'conflict') ORDER BY seq"
        ).fetchall()
        if refused:
            click.echo("\n거부·충돌 이벤트:")
            import json

            for row in refused:
                problems = json.loads(row["result"]).get("problems") or [{}]
                first = problems[0]
                click.echo(f"  seq {row['seq']} {row['notice_no']}: {row['status']} {first.get('code', '')} "
                           f"{first.get('field', '')} {first.get('message', '')}")  # fmt: skip
        click.echo("")
        click.echo(
            table(
                [
                    ("단말", enrolled.device_id),
                    ("관할", enrolled.jurisdiction),
                    ("단속원", f"{officer.get('name', '-')} ({officer.get('login', '-')})"),
                    ("남은 번호", dev.numbers_left(store, now)),
                    ("마지막 동기화", store.get("last_sync_at", "-")),
                    ("시계 오차(초)", store.get("clock_offset_s", "-")),
                    ("acked_seq", store.get("acked_seq", 0)),
                    ("epoch", store.get("epoch", "-")),
                ],
                ("항목", "값"),
            )
        )


@main.command()
@click.argument("plate")
@click.pass_context
def hotlist(ctx: click.Context, plate: str) -> None:
    """Is this plate on the arrears hotlist (as of the last sync)?"""
    with _store(ctx) as store:
        entry = store.reference_one("hotlist", plate)
        if entry is None:
            click.echo(f"{plate}: 체납 차량 목록에 없음")
        else:
            click.echo(f"{plate}: 체납 차량 — {entry.get('reason', '')} {entry.get('amount_due', 0):,}원")
            sys.exit(1)


@main.command(
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False, "help_option_names": []},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def simulate(args: tuple[str, ...]) -> None:
    """A fleet of simulated devices under injected faults, with an invariant report (`pda simulate --help`).

    The simulator is test tooling and reads the server's database, so it lives in its own package (``fleet``),
    which the device may not import (``pda_client`` imports only ``protocol`` and ``printing``). This command hands
    every argument, ``--help`` included, over to ``python -m fleet`` in a child process of the same interpreter and
    exits with its status: the options, the report and its last line are the fleet's."""
    env = {**os.environ, "JINGSU_FLEET_PROG": "pda simulate"}
    code = subprocess.run([sys.executable, "-m", "fleet", *args], env=env).returncode
    sys.exit(code if code >= 0 else 128 - code)  # killed by a signal: the shell's convention
