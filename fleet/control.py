"""A server the simulator may kill and start again (the ``kill_server`` fault)."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any, Protocol

from fleet.options import SimulationError


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
