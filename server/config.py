"""The one configuration object: every environment variable Jingsu reads, by name, with coercion and dev defaults.

Nothing else in the product touches ``os.environ`` (only entry points: ``python -m models.migrate``, which must not
import ``server``, and the dev tooling in ``sandboxes``). Secrets (JWT signing key, personal-data key, RRN lookup
key) come from the environment; in development their defaults are generated once and kept in ``var/secrets.json`` so
that restarts keep tokens, QR keys at rest and encrypted rows readable. In production a missing secret is an error.

The adapters never see this object: each takes its own settings dataclass, built here (``gateway_settings`` …).
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from adapters.approval import ApprovalSettings
from adapters.gateway import GatewaySettings
from adapters.postal import PostalSettings
from adapters.registry import RegistrySettings

ROOT = Path(__file__).resolve().parent.parent

_SECRET_NAMES = (
    "jwt_secret",
    "pii_key",
    "lookup_key",
    "gateway_key",
    "registry_key",
    "approval_secret",
    "sen_key",
)


class ConfigError(RuntimeError):
    """The environment does not describe a runnable configuration."""


@dataclass(frozen=True)
class Config:
    env: str = "development"
    database_url: str = ""
    var_dir: Path = ROOT / "var"
    # secrets (hex strings); generated once per var/ in development
    jwt_secret: str = ""
    pii_key: str = ""
    lookup_key: str = ""
    # the payment gateway (PG): its base URL and the secret key it signs callbacks with (DESIGN.md §4)
    gateway_name: str = "sandbox"
    gateway_url: str = "http://127.0.0.1:5001"
    gateway_key: str = ""
    # payments still pending this long after they were started are asked about by the sweep (job sweep-payments)
    payment_sweep_minutes: int = 10
    # the vehicle registry (차적조회): base URL and the shared key requests are signed with (docs/registry.md)
    registry_name: str = "sandbox"
    registry_url: str = "http://127.0.0.1:5002"
    registry_key: str = ""
    # e-approval (전자결재): base URL, the shared secret of requests and callbacks, how far a callback's timestamp may
    # be from our clock, and (sandbox only, make run) approving pending documents after this many seconds, 0 = never
    # (docs/approval.md)
    approval_name: str = "sandbox"
    approval_url: str = "http://127.0.0.1:5003"
    approval_secret: str = ""
    approval_callback_window_seconds: int = 300
    approval_auto_approve_seconds: int = 0
    # public base URL printed in payment QR codes (no trailing slash)
    # the treasury bank (금고): virtual accounts (bank code, printed name, 4-digit account prefix), the key of its
    # real-time receipt feed (SEN) signature, the unmatched-money refund age (days a suspense payment waits)
    va_bank_code: str = "088"
    va_bank_name: str = "신한은행"
    va_prefix: str = "5620"
    va_account_holder: str = "서울특별시"
    sen_key: str = ""
    suspense_refund_days: int = 30
    # payments left initiated/pending this long are marked failed by the sweep (the gateway still says ready)
    payment_abandon_hours: int = 24
    # the outbox (models.outbox): the lease of a worker's claim (longer than the slowest call of a claimed batch),
    # attempts before a delivery is dead, the backoff between attempts (doubled each time, at most the cap, with
    # jitter), rows claimed per round, and how long delivered rows are kept
    outbox_lease_seconds: int = 120
    outbox_max_attempts: int = 12
    outbox_backoff_seconds: int = 10
    outbox_backoff_cap_seconds: int = 3600
    outbox_batch: int = 10
    outbox_keep_days: int = 30
    # the postal service (e-그린우편) adapter: "sandbox" writes the manifest under <var_dir>/postal
    postal_name: str = "sandbox"
    pay_base_url: str = "http://127.0.0.1:5000"
    demo_password: str = "jingsu-demo"
    # auth
    staff_token_minutes: int = 60
    device_token_hours: int = 12
    lockout_failures: int = 5
    lockout_window_minutes: int = 15
    lockout_minutes: int = 15
    enrollment_code_hours: int = 24
    # sync
    max_batch_events: int = 500
    max_batch_bytes: int = 2 * 1024 * 1024
    clock_skew_minutes: int = 5
    late_sync_hours: int = 72
    block_size: int = 500
    # the allocator's high-water marks, outside the database (default var/number-watermarks.json)
    number_watermark_file: Path | None = None
    block_expiry_days: int = 365
    min_live_blocks: int = 2
    retention_days: int = 30
    tombstone_days: int = 90
    # a device may stay offline this long and still continue its cursor (tombstones must outlive it)
    max_offline_days: int = 60
    # a change replaced by a later one of the same entity is compacted away after this many days
    superseded_days: int = 7
    printer_width_mm: int = 80
    pull_default_limit: int = 500
    pull_max_limit: int = 1000
    # the worker (server/worker.py): a claimed job's lease, renewed as a long job goes (a worker that died holds a
    # job this long at most); how often an idle worker asks for due jobs; the documents of a print run per chunk
    job_lease_seconds: int = 300
    worker_poll_ms: int = 1000
    print_run_chunk: int = 200
    # evidence photos (PROTOCOL.md §4): files under evidence_dir (default <var_dir>/evidence), at most this size
    evidence_dir: Path = ROOT / "var" / "evidence"
    max_attachment_bytes: int = 5 * 1024 * 1024
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    def with_overrides(self, **changes: Any) -> Config:
        return replace(self, **changes)

    # --- the adapters' settings

    def gateway_settings(self) -> GatewaySettings:
        """The payment gateway (``JINGSU_GATEWAY_URL``, ``_KEY``, ``_NAME``; docs/gateway.md)."""
        return GatewaySettings(url=self.gateway_url, key=self.gateway_key, name=self.gateway_name)

    def registry_settings(self) -> RegistrySettings:
        """The vehicle registry (``JINGSU_REGISTRY_URL``, ``_KEY``, ``_NAME``; docs/registry.md)."""
        return RegistrySettings(url=self.registry_url, key=self.registry_key, name=self.registry_name)

    def approval_settings(self) -> ApprovalSettings:
        """E-approval (``JINGSU_APPROVAL_URL``, ``_SECRET``, ``_NAME``, ``_CALLBACK_WINDOW_SECONDS``;
        docs/approval.md)."""
        return ApprovalSettings(
            url=self.approval_url,
            secret=self.approval_secret,
            name=self.approval_name,
            callback_window=self.approval_callback_window_seconds,
        )

    def postal_settings(self) -> PostalSettings:
        """The postal service (``JINGSU_POSTAL_NAME``; the sandbox writes under ``<var_dir>/postal``)."""
        return PostalSettings(name=self.postal_name, var_dir=self.var_dir)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Read the configuration from ``environ`` (default: the process environment)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "extra":
                continue
            name = "DATABASE_URL" if f.name == "database_url" else f"JINGSU_{f.name.upper()}"
            raw = env.get(name)
            if raw is None or raw == "":
                continue
            default = f.default
            try:
                if isinstance(default, bool):
                    values[f.name] = raw.lower() in ("1", "true", "yes", "on")
                elif isinstance(default, int):
                    values[f.name] = int(raw)
                elif isinstance(default, Path) or "Path" in str(f.type):
                    values[f.name] = Path(raw)
                else:
                    values[f.name] = raw
            except ValueError as exc:
                raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc
        config = cls(**values)
        if "evidence_dir" not in values:
            config = replace(config, evidence_dir=config.var_dir / "evidence")
        if not config.database_url:
            url_file = config.var_dir / "database_url"
            if url_file.exists():
                config = replace(config, database_url=url_file.read_text().strip())
        if config.tombstone_days <= config.max_offline_days:
            raise ConfigError(
                "JINGSU_TOMBSTONE_DAYS must exceed JINGSU_MAX_OFFLINE_DAYS: a device offline that long must still "
                "see every delete"
            )
        config = config._with_secrets()
        if config.pay_base_url.endswith("/"):
            config = replace(config, pay_base_url=config.pay_base_url.rstrip("/"))
        return config

    def _with_secrets(self) -> Config:
        missing = [name for name in _SECRET_NAMES if not getattr(self, name)]
        if not missing:
            return self
        if self.is_production:
            names = ", ".join(f"JINGSU_{n.upper()}" for n in missing)
            raise ConfigError(f"production needs these secrets in the environment: {names}")
        stored = _dev_secrets(self.var_dir)
        secrets_: dict[str, Any] = {name: stored[name] for name in missing}
        return replace(self, **secrets_)


def _dev_secrets(var_dir: Path) -> dict[str, str]:
    """Development secrets, generated once and kept in ``var/secrets.json`` (mode 0600)."""
    path = var_dir / "secrets.json"
    var_dir.mkdir(parents=True, exist_ok=True)
    # several processes (gunicorn workers, the worker, tests) may start at once: one generates, the others read
    with open(var_dir / ".secrets.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        if all(stored.get(n) for n in _SECRET_NAMES):
            return stored
        for name in _SECRET_NAMES:
            stored.setdefault(name, secrets.token_hex(32))
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(stored, indent=2))
        tmp.chmod(0o600)
        tmp.replace(path)
        return stored
