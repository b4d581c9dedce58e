"""What the three sandboxes (gateway, registry, e-approval) share: their errors and JSON answers, request signatures,
callback delivery, the state file, the web app's skeleton and page shell, the process (arguments, serving), and the
test controls every sandbox has:

- ``Idempotency-Key``: a request that carries one is applied once per key; the same key again gets the first answer
  (same status, same body) and applies nothing, the same key with another request is ``409 idempotency_conflict``.
  Per key the sandbox counts ``deliveries`` (requests that arrived) and ``effects`` (requests that changed something:
  a lookup logged, a submission created, a refund made): ``GET /sandbox/idempotency``.
- ``POST /sandbox/hold`` ``{"count": N, "path": "/v1/…"}``: the next N API requests (under ``path``) are applied and
  their answers made, then held back until ``POST /sandbox/release`` (or ``HOLD_TIMEOUT_S``): a test kills the caller
  in the middle of a delivery without sleeping. ``GET /sandbox/hold`` says how many wait to be held and are held.

The controls are sandbox-only and unsigned, like the approver's page.

The sandboxes import nothing of ``adapters``, ``models``, ``services``, ``server`` or ``sync``: they re-implement
their side of each contract from its document, so a mistake cannot pass on both sides of the wire.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import httpx
from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException
from werkzeug.serving import make_server

T = TypeVar("T")


class _Attempted(Protocol):
    attempts: list[dict[str, Any]]


R = TypeVar("R", bound=_Attempted)

STATE_VERSION = 1
CALLBACK_TIMEOUT_S = 10.0
JSON_UTF8 = "application/json; charset=utf-8"
IDEMPOTENCY_HEADER = "Idempotency-Key"
HOLD_TIMEOUT_S = 120.0


class SandboxError(Exception):
    """A request answered with an error: ``status`` (HTTP), ``code`` (stable) and ``detail`` (no personal data)."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status, self.code, self.detail = status, code, detail


def json_response(data: Any, status: int = 200) -> Response:
    """A JSON answer (UTF-8, Korean unescaped)."""
    return Response(json.dumps(data, ensure_ascii=False), status=status, mimetype="application/json")


def json_object(raw: bytes) -> dict[str, Any]:
    """A request body that must be a JSON object. Raises ``SandboxError(400, "invalid_request")``."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SandboxError(400, "invalid_request", "the body is not JSON") from exc
    if not isinstance(body, dict):
        raise SandboxError(400, "invalid_request", "the body must be a JSON object")
    return body


def utc_now() -> str:
    """Now, UTC, ISO 8601 with offset and whole seconds (``2025-11-25T07:41:09+00:00``)."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


# --- signatures -----------------------------------------------------------------------------------------------------


def sign(key: bytes, message: bytes) -> str:
    """Hex HMAC-SHA256 of ``message`` under ``key``."""
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign_stamped(key: bytes, timestamp: str, payload: bytes) -> str:
    """Hex HMAC-SHA256 under ``key`` of ``"<timestamp>." + payload``."""
    return sign(key, timestamp.encode("ascii") + b"." + payload)


def signature_matches(key: bytes, message: bytes, given: str | None) -> bool:
    """Constant-time check of a hex signature header (case-insensitive); a missing header never matches."""
    if not given:
        return False
    return hmac.compare_digest(sign(key, message).encode(), given.strip().lower().encode("utf-8", "replace"))


def check_stamped(
    key: bytes,
    max_skew: int,
    timestamp: str | None,
    signature: str | None,
    payload: bytes,
    *,
    headers: tuple[str, str] = ("X-Jingsu-Timestamp", "X-Jingsu-Signature"),
) -> None:
    """Raise ``SandboxError(401, "bad_signature" | "stale_timestamp")`` unless a timestamped request is signed and
    fresh (within ``max_skew`` seconds). The signature is checked first, so an unsigned caller learns nothing about
    our clock. ``headers`` names the timestamp and signature headers in the messages."""
    timestamp_header, signature_header = headers
    if not timestamp or not signature or not timestamp.isascii() or not timestamp.isdigit():
        raise SandboxError(401, "bad_signature", f"{timestamp_header} and {signature_header} are required")
    if not signature_matches(key, timestamp.encode("ascii") + b"." + payload, signature):
        raise SandboxError(401, "bad_signature", f"{signature_header} does not verify")
    if abs(time.time() - int(timestamp)) > max_skew:
        raise SandboxError(401, "stale_timestamp", f"{timestamp_header} is more than {max_skew} s from our clock")


# --- callbacks ------------------------------------------------------------------------------------------------------


def deliver(url: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    """POST a callback; the attempt as recorded: ``at``, ``status_code`` (None on failure) and ``error``."""
    attempt: dict[str, Any] = {"at": utc_now(), "status_code": None, "error": None}
    try:
        # trust_env=False: Jingsu is local in every sandbox setup; a proxy from the environment would get in the way
        with httpx.Client(timeout=CALLBACK_TIMEOUT_S, trust_env=False) as client:
            response = client.post(url, content=body, headers={"Content-Type": JSON_UTF8, **headers})
        attempt["status_code"] = response.status_code
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        attempt["error"] = f"{type(exc).__name__}: {exc}"
    return attempt


# --- state ----------------------------------------------------------------------------------------------------------


def save_state(path: Path | None, key: str, records: Iterable[Any]) -> None:
    """Write ``{"version": …, key: [asdict(r) …]}`` to ``path`` atomically (a temporary file, fsync, rename);
    nothing when ``path`` is ``None`` (a sandbox kept in memory)."""
    if path is None:
        return
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        json.dump({"version": STATE_VERSION, key: [asdict(r) for r in records]}, out, ensure_ascii=False, indent=1)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)


def load_state(path: Path, key: str, record: Callable[..., T]) -> list[T]:
    """The records ``save_state`` wrote under ``key``, each built by ``record(**fields)``; ``ValueError`` naming the
    file when it cannot be read."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unknown state version {data.get('version')!r}")
        records = data[key]
        if not isinstance(records, list):
            raise ValueError(f"{key} is not a list")
        return [record(**r) for r in records]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"cannot read the state file {path}: {exc}") from exc


class RecordStore(Generic[R]):
    """A sandbox's records by id and by a second unique key (an order or reference id), under one lock, optionally
    kept in a file (``save_state``); each record keeps its callback delivery attempts. The sandbox holds ``lock``
    while it reads or changes ``records``; ``save`` writes the whole state (caller holds the lock)."""

    def __init__(
        self,
        state_path: Path | None,
        kind: str,
        record: Callable[..., R],
        id_of: Callable[[R], str],
        key_of: Callable[[R], str],
        missing: str,
    ) -> None:
        self.state_path, self.kind, self.missing = state_path, kind, missing
        self.id_of, self.key_of = id_of, key_of
        self.lock = threading.Lock()
        self.records: dict[str, R] = {}
        self.by_key: dict[str, str] = {}
        if state_path is not None and state_path.exists():
            for loaded in load_state(state_path, kind, record):
                self.add(loaded)

    @staticmethod
    def snapshot(record: R) -> R:
        """A copy that later changes under the lock do not reach."""
        return replace(record, attempts=[dict(a) for a in record.attempts])  # type: ignore[type-var]

    def add(self, record: R) -> None:
        self.records[self.id_of(record)] = record
        self.by_key[self.key_of(record)] = self.id_of(record)

    def get(self, record_id: str) -> R:
        """The record (caller holds the lock). Raises ``SandboxError(404, "not_found")``."""
        found = self.records.get(record_id)
        if found is None:
            raise SandboxError(404, "not_found", self.missing)
        return found

    def save(self) -> None:
        save_state(self.state_path, self.kind, self.records.values())

    def attempts(self, record_id: str) -> list[dict[str, Any]]:
        """Every callback delivery attempt, oldest first. Raises ``SandboxError(404, "not_found")``."""
        with self.lock:
            return [dict(a) for a in self.get(record_id).attempts]

    def record_attempt(self, record_id: str, attempt: dict[str, Any]) -> int | None:
        """Keep a delivery attempt and save; the attempt's HTTP status (``None``: not delivered)."""
        with self.lock:
            self.records[record_id].attempts.append(attempt)
            self.save()
        status_code: int | None = attempt["status_code"]
        return status_code


# --- idempotency keys and holds (test controls) ---------------------------------------------------------------------


@dataclass
class _Keyed:
    """What one idempotency key got: how often it came, how often it changed something, and its first answer."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    deliveries: int = 0
    effects: int = 0
    fingerprint: bytes | None = None
    answer: tuple[int, bytes, str] | None = None  # status, body, mimetype


class Deliveries:
    """The sandbox's memory of idempotency keys (for the life of the process): ``answer`` applies a request once per
    key and answers a repeated key as the first time; ``counts`` is what ``GET /sandbox/idempotency`` shows."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, _Keyed] = {}

    def answer(self, fingerprint: bytes, run: Callable[[], tuple[Response, bool]]) -> Response:
        """Answer the current request (signature already checked): ``run()`` applies it and returns the response
        and whether it changed anything. A request with an ``Idempotency-Key`` seen before gets the first answer
        without ``run()``; a read (GET) is only counted. ``fingerprint`` is what makes two requests the same (the
        method, path and body, not the timestamp or signature). Requests of one key wait for each other."""
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is None:
            return _run(run)[0]
        if not key or len(key) > 255 or not key.isprintable():
            raise SandboxError(400, "invalid_request", f"{IDEMPOTENCY_HEADER}: 1-255 printable characters")
        with self._lock:
            keyed = self._keys.setdefault(key, _Keyed())
        with keyed.lock:
            keyed.deliveries += 1
            if keyed.answer is not None and request.method != "GET":
                if keyed.fingerprint != fingerprint:
                    raise SandboxError(409, "idempotency_conflict", "this Idempotency-Key came with another request")
                status, body, mimetype = keyed.answer
                return Response(body, status=status, mimetype=mimetype)
            response, changed = _run(run)
            keyed.effects += int(changed)
            if response.status_code < 500 and request.method != "GET":  # a 5xx is worth another try
                keyed.fingerprint = fingerprint
                keyed.answer = (response.status_code, response.get_data(), response.mimetype or JSON_UTF8)
            return response

    def counts(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {key: {"deliveries": k.deliveries, "effects": k.effects} for key, k in self._keys.items()}


def _run(run: Callable[[], tuple[Response, bool]]) -> tuple[Response, bool]:
    try:
        return run()
    except SandboxError as exc:  # an error is an answer too: the same key gets it again
        return error_json(exc), False


class Holds:
    """Requests held back after their answer is made (``POST /sandbox/hold``), until released."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._to_hold: list[str] = []  # path prefixes, one per request still to hold
        self._held = 0
        self._released = threading.Event()

    def hold(self, count: int, path: str) -> None:
        with self._lock:
            self._to_hold.extend([path] * count)
            self._released = threading.Event()

    def wait_if_held(self, path: str) -> None:
        """Called with the answer ready: wait for ``release`` if this request is one to hold."""
        with self._lock:
            prefix = next((p for p in self._to_hold if path.startswith(p)), None)
            if prefix is None:
                return
            self._to_hold.remove(prefix)
            self._held += 1
            released = self._released
        try:
            released.wait(HOLD_TIMEOUT_S)
        finally:
            with self._lock:
                self._held -= 1

    def release(self) -> int:
        """Let every held request go (and forget the holds not used yet); how many were held."""
        with self._lock:
            held, self._to_hold = self._held, []
            self._released.set()
            return held

    def state(self) -> dict[str, int]:
        with self._lock:
            return {"to_hold": len(self._to_hold), "held": self._held}


# --- web ------------------------------------------------------------------------------------------------------------


def base_app(name: str, max_content_length: int) -> Flask:
    """A sandbox's Flask app with what every sandbox answers: ``GET /healthz`` with ``{"status": "ok", "pid": …}``
    (the pid lets the launcher tell its own process from another one already on the port), HTTP errors as
    ``{"code", "detail"}``, and the test controls (``/sandbox/idempotency``, ``/sandbox/hold``,
    ``/sandbox/release``; ``deliveries(app)`` is the app's ``Deliveries``). The sandbox adds its own
    ``SandboxError`` handler and routes."""
    app = Flask(name)
    app.config["MAX_CONTENT_LENGTH"] = max_content_length
    keys, holds = Deliveries(), Holds()
    app.extensions["sandbox_deliveries"] = keys

    @app.after_request
    def _hold(response: Response) -> Response:
        if request.path.startswith("/v1/"):
            holds.wait_if_held(request.path)
        return response

    @app.get("/sandbox/idempotency")
    def idempotency() -> Response:
        return json_response({"keys": keys.counts()})

    @app.post("/sandbox/hold")
    def hold() -> Response:
        body = request.get_json(silent=True) or {}
        count, path = body.get("count", 1), body.get("path", "/v1/")
        if not isinstance(count, int) or isinstance(count, bool) or not 0 < count <= 100 or not isinstance(path, str):
            return json_response({"code": "invalid_request", "detail": "count: 1-100, path: a prefix"}, 400)
        holds.hold(count, path)
        return json_response(holds.state())

    @app.get("/sandbox/hold")
    def hold_state() -> Response:
        return json_response(holds.state())

    @app.post("/sandbox/release")
    def release() -> Response:
        return json_response({"released": holds.release()})

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        code = (exc.name or "error").lower().replace(" ", "_")
        return json_response({"code": code, "detail": exc.description or ""}, exc.code or 500)

    @app.get("/healthz")
    def healthz() -> Response:
        return json_response({"status": "ok", "pid": os.getpid()})

    return app


def deliveries(app: Flask) -> Deliveries:
    """The app's memory of idempotency keys (made by ``base_app``)."""
    found: Deliveries = app.extensions["sandbox_deliveries"]
    return found


def error_json(exc: SandboxError) -> Response:
    """A ``SandboxError`` as the contracts answer it: ``{"code", "detail"}`` with its status."""
    return json_response({"code": exc.code, "detail": exc.detail}, exc.status)


class CallbackLog(Protocol):
    """A sandbox's callbacks: delivered again on request, every attempt listed (``SandboxError(404)`` if unknown)."""

    def resend(self, item_id: str, /) -> int | None: ...

    def attempts(self, item_id: str, /) -> list[dict[str, Any]]: ...


def callback_routes(
    app: Flask, collection: str, log: CallbackLog, signed_path: Callable[[str, str, str], None]
) -> None:
    """The operator's routes every calling-back sandbox has, both signed like any request of the contract:
    ``POST <collection>/<id>/callbacks`` delivers the last callback again (``{"delivered": <status or null>}``) and
    ``GET <collection>/<id>/callbacks`` lists the delivery attempts, oldest first."""

    @app.post(f"{collection}/<item_id>/callbacks")
    def resend_callback(item_id: str) -> Response:
        signed_path("POST", item_id, "/callbacks")
        return json_response({"delivered": log.resend(item_id)})

    @app.get(f"{collection}/<item_id>/callbacks")
    def callback_attempts(item_id: str) -> Response:
        signed_path("GET", item_id, "/callbacks")
        return json_response(log.attempts(item_id))


def page_template(title_suffix: str, banner: str, max_width: str, css: str, body: str) -> str:
    """A sandbox's Jinja page: the common head, style and banner around its own ``css`` and ``body``."""
    return (
        """<!doctype html>
<html lang="ko">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} · """
        + title_suffix
        + """</title>
<style>
 body { font-family: system-ui, "Apple SD Gothic Neo", "Noto Sans KR", sans-serif; margin: 0; background: #f4f5f7; }
 main { max-width: """
        + max_width
        + """; margin: 0 auto; padding: 1.5rem 1rem; }
 .sandbox { display: inline-block; background: #fff3cd; color: #7a5b00; border-radius: .3rem; padding: .1rem .5rem;
   font-size: .8rem; }
"""
        + css
        + """</style>
</head>
<body>
<main>
<p class="sandbox">"""
        + banner
        + """</p>
<h1>{{ title }}</h1>
"""
        + body
        + """</main>
</body>
</html>
"""
    )


# --- process --------------------------------------------------------------------------------------------------------


def hex_secret(what: str) -> Callable[[str], bytes]:
    """An argparse type: a hex secret (``what`` names it in errors: "the key", "the secret")."""

    def parse(value: str) -> bytes:
        try:
            key = bytes.fromhex(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{what} must be hex") from exc
        if not key:
            raise argparse.ArgumentTypeError(f"{what} must not be empty")
        return key

    return parse


def arg_parser(name: str, description: str, port: int) -> argparse.ArgumentParser:
    """The options every sandbox takes (``--host``, ``--port``); the sandbox adds its key and its own."""
    parser = argparse.ArgumentParser(prog=f"python -m sandboxes.{name}", description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port, help="0 picks a free port (printed)")
    return parser


def serve(app: Flask, host: str, port: int, name: str, on_stop: Callable[[], None] | None = None) -> None:
    """Serve ``app`` until interrupted; prints ``<name> sandbox on http://host:port`` once it is listening.

    make_server is the threaded server run_simple builds; making it ourselves lets the line be printed only once the
    socket is bound and listening (and name the real port for ``--port 0``).
    """
    server = make_server(host, port, app, threaded=True)
    print(f"{name} sandbox on http://{host}:{server.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if on_stop is not None:
            on_stop()
        server.server_close()
