"""Start and stop a sandbox service (``python -m server.sandboxes.<name>``) as its own process, for tests and
``make run``.

Every sandbox answers ``GET /healthz`` with ``{"status": "ok", "pid": <its process id>}``; ``start`` waits for that
answer from the process it started, so another process already on the port is never mistaken for it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def start(
    module: str,
    args: Sequence[str],
    *,
    host: str,
    port: int,
    log_path: Path | None = None,
    timeout: float = 10.0,
    label: str | None = None,
) -> subprocess.Popen[bytes]:
    """Run ``python -m module --host host --port port *args`` (cwd = repo root); return once it answers ``/healthz``.

    Its stdout and stderr go to ``log_path`` (appended) if given, else to ours. Raises ``RuntimeError`` if it exits
    or does not answer within ``timeout`` seconds (it is killed then); ``label`` names it in that message.
    """
    argv = [sys.executable, "-m", module, "--host", host, "--port", str(port), *args]
    if log_path is not None:
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    else:
        proc = subprocess.Popen(argv, cwd=ROOT)
    url = f"http://{host}:{port}/healthz"
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    with httpx.Client(timeout=1.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                last = f"exited with status {proc.returncode}"
                break
            try:
                response = client.get(url)
                if response.status_code == 200 and response.json().get("pid") == proc.pid:
                    return proc
                last = f"/healthz answered {response.status_code} {response.text[:100]!r}"
            except (httpx.HTTPError, ValueError) as exc:
                last = repr(exc)
            time.sleep(0.05)
    stop(proc)
    tail = log_path.read_text(errors="replace")[-2000:] if log_path is not None and log_path.exists() else ""
    raise RuntimeError(f"{label or module} on {host}:{port} did not start: {last}\n{tail}".rstrip())


def stop(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """Terminate a process started by ``start`` (SIGTERM, then SIGKILL after ``timeout``) and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
            return
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait()
