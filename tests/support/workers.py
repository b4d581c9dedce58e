"""Real worker processes (``python -m flask --app wsgi worker``) for the tests that run several side by side, and
polling with a deadline instead of sleeping.

    workers        fixture   workers(env, name, jobs=()) -> WorkerProcess, started; all are killed after the test
    worker_env()   helper    the environment a test worker runs with (tests.conftest.server_env plus overrides)
    until()        helper    until(what, check, timeout) -> check()'s first truthy answer, or the test fails
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import pytest

from server.config import ROOT
from tests.conftest import server_env

T = TypeVar("T")


def worker_env(db_url: str, var_dir: Path, **settings: str) -> dict[str, str]:
    """The environment of a worker on ``db_url`` keeping its files in ``var_dir``; ``settings``: more variables."""
    return {**os.environ, **server_env(db_url, var_dir, "http://127.0.0.1:5000"), **settings}


def until(what: str, check: Callable[[], T | None], timeout: float = 30.0, every: float = 0.05) -> T:
    """Ask ``check`` until it answers something truthy (returned); fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}", pytrace=False)
        time.sleep(every)


class WorkerProcess:
    """``flask --app wsgi worker --worker-id NAME [--job …]`` in a process group of its own, its output in a file."""

    def __init__(self, env: Mapping[str, str], name: str, log_dir: Path, jobs: Sequence[str] = ()) -> None:
        self.env = dict(env)
        self.name = name
        self.argv = [sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--worker-id", name]
        for job in jobs:
            self.argv += ["--job", job]
        self.log_path = log_dir / f"worker-{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for(self, text: str, timeout: float = 30.0) -> None:
        """Until ``text`` appears in the worker's output; fails if the worker exits first."""

        def seen() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                pytest.fail(f"worker {self.name} exited ({self.proc.returncode}):\n{self.output()}", pytrace=False)
            return text in self.output()

        until(f"worker {self.name} to log {text!r}", seen, timeout)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (the worker finishes the job at hand, then exits); its exit status."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"worker {self.name} did not stop on SIGTERM:\n{self.output()}", pytrace=False)

    def kill(self) -> None:
        """SIGKILL at once, whatever it is doing: a crash."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(env: Mapping[str, str], name: str, jobs: Sequence[str] = ()) -> WorkerProcess:
        worker = WorkerProcess(env, name, tmp_path, jobs).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()
