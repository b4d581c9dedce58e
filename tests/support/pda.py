"""Drive the real ``pda`` CLI (``python -m pda_client``) as a subprocess, as an officer would from a terminal; a
device registered, enrolled, signed in and synced (``enrolled_pda``); a parking notice issued on it."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from server.config import ROOT
from tests.support.device import register_device

DEMO_PASSWORD = "jingsu-demo"


@dataclass
class Pda:
    home: Path

    def run(self, *args: str, input: str | None = None, env: Mapping[str, str] | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:  # fmt: skip
        argv = [sys.executable, "-m", "pda_client", "--home", str(self.home), *args]
        proc = subprocess.run(
            argv,
            cwd=ROOT,
            input=input,
            capture_output=True,
            text=True,
            env={**os.environ, "PDA_TIMEOUT_S": "10", **(env or {})},
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"pda {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def enroll(self, server_url: str, code: str) -> None:
        self.run("enroll", "--server", server_url, "--code", code)

    def login(self, officer: str) -> None:
        self.run("login", "--officer", officer, "--password-stdin", input=DEMO_PASSWORD + "\n")

    def issue(self, *args: str) -> dict[str, str]:
        """Issue a notice; returns the fields the CLI printed (고지번호, 과태료, 감경 금액, 의견제출기한, QR)."""
        out = self.run("issue", *args).stdout
        fields = {}
        for label in ("고지번호", "위반내용", "과태료", "감경 금액", "의견제출기한", "QR"):
            match = re.search(rf"^{label}\s+(.+)$", out, re.MULTILINE)
            assert match, f"pda issue printed no {label}:\n{out}"
            fields[label] = match.group(1).strip()
        return fields

    def db(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.home / "device.sqlite3")
        conn.row_factory = sqlite3.Row
        return conn

    def outbox(self) -> list[sqlite3.Row]:
        with self.db() as conn:
            return list(conn.execute("SELECT seq, event_id, type, notice_no, state, status FROM outbox ORDER BY seq"))


def enrolled_pda(server: Any, home: Path) -> tuple[Pda, str]:
    """A device of 11110 registered on ``server`` (a LiveServer), enrolled, officer.11110.1 signed in, synced."""
    with httpx.Client(base_url=server.url, timeout=15) as api:
        device_id, code = register_device(api, "11110", "단말 시험")
    pda = Pda(home)
    pda.enroll(server.url, code)
    pda.login("officer.11110.1")
    pda.run("sync")
    return pda, device_id


def issue_parking(pda: Pda, plate: str) -> str:
    """A P01 parking notice issued on ``pda``; its number."""
    return pda.issue("--code", "P01", "--plate", plate, "--place", "서울특별시 종로구 종로 1")["고지번호"]
