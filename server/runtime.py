"""What a request needs besides itself: configuration, the database, the personal-data cipher and the clock.

Built once per app in ``create_app`` and kept in ``app.extensions["jingsu"]``; nothing here exists at import time.
A request runs in one unit of work: one transaction, committed when the handler returns, rolled back otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import current_app, g, has_request_context, request
from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from adapters import postal as postal_adapter
from adapters.approval import ApprovalService, HttpApproval
from adapters.gateway import HttpGateway
from adapters.registry import HttpRegistry, VehicleRegistry
from adapters.watermarks import FileWatermarks
from models.base import Clock, utcnow
from models.crypto import PiiCipher
from models.users import LockoutPolicy
from server.config import Config
from services.uow import Transactions, committing, transactions
from sync.changes import PullSettings
from sync.push.outcome import SyncSettings


@dataclass
class Runtime:
    config: Config
    engine: Engine | None
    sessions: sessionmaker[Session]
    cipher: PiiCipher
    clock: Clock

    @classmethod
    def build(cls, config: Config, bind: Engine | Connection | None = None, clock: Clock | None = None) -> Runtime:
        engine = None
        if bind is None:
            if not config.database_url:
                raise RuntimeError("no DATABASE_URL: set it, or start the embedded database with `make run`")
            engine = create_engine(config.database_url, pool_pre_ping=True, pool_size=5, max_overflow=10)
            bind = engine
        if isinstance(bind, Connection):
            sessions = sessionmaker(bind=bind, join_transaction_mode="create_savepoint", expire_on_commit=False)
        else:
            sessions = sessionmaker(bind=bind, expire_on_commit=False)
        return cls(
            config=config,
            engine=engine,
            sessions=sessions,
            cipher=PiiCipher(config.pii_key, config.lookup_key),
            clock=clock or utcnow,
        )

    @property
    def lockout(self) -> LockoutPolicy:
        c = self.config
        return LockoutPolicy(
            failures=c.lockout_failures,
            window=timedelta(minutes=c.lockout_window_minutes),
            lock_for=timedelta(minutes=c.lockout_minutes),
        )

    @property
    def sync_settings(self) -> SyncSettings:
        return SyncSettings(
            clock_skew=timedelta(minutes=self.config.clock_skew_minutes),
            late_sync=timedelta(hours=self.config.late_sync_hours),
        )

    def device_settings(self) -> dict[str, Any]:
        c = self.config
        return {
            "pay_base_url": c.pay_base_url,
            "printer_width_mm": c.printer_width_mm,
            "retention_days": c.retention_days,
            "tombstone_days": c.tombstone_days,
            "block_size": c.block_size,
        }

    def registry(self) -> VehicleRegistry:
        """The vehicle registry (차적조회) the configuration names; the sandbox by default (docs/registry.md)."""
        return HttpRegistry(self.config.registry_settings())

    def approval(self) -> ApprovalService:
        """The e-approval service (전자결재) the configuration names; the sandbox by default (docs/approval.md)."""
        return HttpApproval(self.config.approval_settings())

    def gateway(self) -> HttpGateway:
        """The payment gateway (PG) the configuration names; the sandbox by default (docs/gateway.md)."""
        return HttpGateway(self.config.gateway_settings())

    def postal(self) -> postal_adapter.PostalService:
        """The postal service (e-그린우편) the configuration names; the sandbox by default."""
        return postal_adapter.connect(self.config.postal_settings())

    @property
    def pull_settings(self) -> PullSettings:
        c = self.config
        return PullSettings(
            block_size=c.block_size,
            min_live_blocks=c.min_live_blocks,
            block_expiry=timedelta(days=c.block_expiry_days),
            device_settings=self.device_settings(),
            watermarks=FileWatermarks(c.number_watermark_file or c.var_dir / "number-watermarks.json"),
        )


def close_request_session(_exc: BaseException | None = None) -> None:
    """Teardown: a transaction opened for the request's checks that no unit of work took over is rolled back."""
    session = g.pop("request_session", None)
    if session is not None:
        session.close()


def runtime() -> Runtime:
    found: Runtime = current_app.extensions["jingsu"]
    return found


def chunk_transactions() -> Transactions:
    """Transactions of their own for a long operation that commits a bounded chunk at a time (``services.steps``,
    ``services.treasury``), so no transaction of the request holds the change feed back for long."""
    return transactions(runtime().sessions)


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@contextmanager
def unit_of_work(*, writes_changes: bool | None = None) -> Iterator[Session]:
    """One transaction: committed on success, rolled back on error (``services.uow.committing``).

    A request that may change something (any method but GET, HEAD and OPTIONS, unless ``writes_changes`` says
    otherwise) registers as a writer of the change feed first; a read does not, so it never holds the feed back."""
    if writes_changes is None:
        writes_changes = not has_request_context() or request.method not in _SAFE_METHODS
    # a device route's check already opened the request's transaction (``server.auth.device``): continue it
    session = g.pop("request_session", None) or runtime().sessions()
    g.session = session
    try:
        with committing(session, writes_changes=writes_changes):
            yield session
    finally:
        g.pop("session", None)
