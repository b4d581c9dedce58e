"""The one launcher of the sandboxes: start and stop a sandbox service (``python -m sandboxes.<name>``) as its own
process, for tests and ``make run`` (``sandboxes.devrun``). Adapters never start a sandbox; whoever needs one does,
through here.

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

ROOT = Path(__file__).resolve().parents[1]


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


def start_gateway(
    port: int,
    key: str,
    state_path: Path | None = None,
    *,
    host: str = "127.0.0.1",
    fail_callbacks: bool = False,
    public_url: str | None = None,
    log_path: Path | None = None,
    timeout: float = 10.0,
) -> subprocess.Popen[bytes]:
    """Start the payment gateway sandbox (``python -m sandboxes.gateway``) and return once it answers ``/healthz``.

    Its stdout and stderr go to ``log_path`` (appended) if given, else to ours. Stop it with ``stop``. Raises
    ``RuntimeError`` if it exits or does not answer within ``timeout`` seconds (it is killed then).
    """
    args = ["--key", key]
    if state_path is not None:
        args += ["--state", str(state_path)]
    if fail_callbacks:
        args.append("--fail-callbacks")
    if public_url:
        args += ["--public-url", public_url]
    return start(
        "sandboxes.gateway", args, host=host, port=port, log_path=log_path, timeout=timeout, label="the gateway sandbox"
    )


def start_registry(
    port: int,
    key: str,
    *,
    host: str = "127.0.0.1",
    log_path: Path | None = None,
    timeout: float = 10.0,
) -> subprocess.Popen[bytes]:
    """Start the vehicle registry sandbox (``python -m sandboxes.registry``) and return once it answers
    ``/healthz``. Output goes to ``log_path`` (appended) if given. Stop it with ``stop``. Raises ``RuntimeError`` if
    it does not start within ``timeout`` seconds.
    """
    return start(
        "sandboxes.registry",
        ["--key", key],
        host=host,
        port=port,
        log_path=log_path,
        timeout=timeout,
        label="the vehicle registry sandbox",
    )


def start_approval(
    port: int,
    secret: str,
    state_path: Path | None = None,
    *,
    host: str = "127.0.0.1",
    auto_approve_after: float | None = None,
    public_url: str | None = None,
    log_path: Path | None = None,
    timeout: float = 10.0,
) -> subprocess.Popen[bytes]:
    """Start the e-approval sandbox (``python -m sandboxes.approval``) and return once it answers ``/healthz``.

    ``auto_approve_after`` (seconds) approves every pending submission that long after it arrived (demos); None or 0
    leaves decisions to the approver's page. Output goes to ``log_path`` (appended) if given. Stop it with ``stop``.
    Raises ``RuntimeError`` if it does not start within ``timeout`` seconds.
    """
    args = ["--secret", secret]
    if state_path is not None:
        args += ["--state", str(state_path)]
    if auto_approve_after:
        args += ["--auto-approve-after", str(auto_approve_after)]
    if public_url:
        args += ["--public-url", public_url]
    return start(
        "sandboxes.approval",
        args,
        host=host,
        port=port,
        log_path=log_path,
        timeout=timeout,
        label="the e-approval sandbox",
    )
