"""Server-wide sync state: the epoch devices must share, and the oldest change still kept in the feed."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Integer, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base


class ServerState(Base):
    __tablename__ = "server_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    epoch: Mapped[str] = mapped_column(String(40))
    # changes with id below this were compacted away; cursors before it must reset
    feed_floor_id: Mapped[int] = mapped_column(BigInteger, default=0)
    epoch_changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)


def new_epoch() -> str:
    return secrets.token_hex(8)


def get_state(session: Session) -> ServerState:
    state = session.scalar(select(ServerState).where(ServerState.id == 1))
    if state is None:
        state = ServerState(id=1, epoch=new_epoch(), feed_floor_id=0)
        session.add(state)
        session.flush()
    return state


def current_epoch(session: Session) -> str:
    return get_state(session).epoch


def bump_epoch(session: Session) -> str:
    """Start a new sync epoch (after a restore or a data reset): every device cursor becomes ``reset_required``."""
    state = session.scalar(select(ServerState).where(ServerState.id == 1).with_for_update())
    if state is None:
        state = get_state(session)
    state.epoch = new_epoch()
    state.epoch_changed_at = func.now()
    session.flush()
    return state.epoch
