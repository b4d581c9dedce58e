"""Declarative base, naming convention and the small shared column helpers of the ledger."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import MetaData, event
from sqlalchemy.orm import DeclarativeBase, ORMExecuteState, Session

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


@event.listens_for(Session, "do_orm_execute")
def _locked_rows_are_read_fresh(state: ORMExecuteState) -> None:
    """A row read ``FOR UPDATE`` is what the lock saw, never the session's earlier copy of it.

    Without this, an object already in the identity map keeps the attributes of its first, unlocked read: a
    transaction that read a payment, then waited on another transaction's lock, would see it ``initiated`` after the
    other had made it ``paid`` — and post it twice. Every locking read in every session refreshes what it loads.
    """
    if state.is_select and getattr(state.statement, "_for_update_arg", None) is not None:
        state.update_execution_options(populate_existing=True)


def utcnow() -> datetime:
    return datetime.now(UTC)


Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Actor:
    """Who does something: a staff user, a device (with its officer), or the system; recorded on every change."""

    user_id: int | None = None
    device_id: str | None = None
    address: str | None = None
    label: str = field(default="system")

    @classmethod
    def system(cls) -> Actor:
        return cls()


@dataclass(frozen=True)
class Scope:
    """Which jurisdictions a caller may see: ``None`` means every one (city roles).

    Built once from the caller's token in ``server.auth.scope_of``; every domain query about jurisdiction-bound
    rows goes through ``apply``/``allows``, so isolation is enforced in one place. Rows outside the scope are
    answered as not found (no oracle).
    """

    jurisdictions: frozenset[str] | None

    @classmethod
    def everything(cls) -> Scope:
        return cls(None)

    @classmethod
    def only(cls, *codes: str) -> Scope:
        return cls(frozenset(codes))

    def allows(self, code: str) -> bool:
        return self.jurisdictions is None or code in self.jurisdictions

    def apply(self, stmt: Any, column: Any) -> Any:
        if self.jurisdictions is None:
            return stmt
        return stmt.where(column.in_(sorted(self.jurisdictions)))
