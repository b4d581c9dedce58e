"""One unit of work outside a request: a transaction committed on success, rolled back on error.

``Transactions`` is how a service that commits on its own (a print run commits its claim before it renders) opens
one: the server passes its request-aware ``server.runtime.unit_of_work``, the worker and the commands pass
``transactions(sessions)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from sqlalchemy.orm import Session, sessionmaker

from models import feed
from models.devices import AFTER_COMMIT
from models.errors import DomainError

Transactions = Callable[[], AbstractContextManager[Session]]


def _after_commit(session: Session) -> None:
    for callback in session.info.pop(AFTER_COMMIT, []):
        callback()


@contextmanager
def committing(session: Session, *, writes_changes: bool = True) -> Iterator[Session]:
    """Run the block in ``session``'s transaction: commit (then the after-commit callbacks) on success, roll back
    on error — a domain error may ask to keep its changes (e.g. a failed sign-in's counter); close it either way.

    A unit that may write changes for devices registers as a writer of the feed first (``models.feed``): almost
    every back-office decision tells a device something. Keep such units short; a long job commits in chunks."""
    try:
        if writes_changes:
            feed.register_writer(session)
        yield session
        session.commit()
        _after_commit(session)
    except DomainError as exc:
        if exc.extra.get("keep_changes"):
            session.commit()
            _after_commit(session)
        else:
            session.rollback()
        raise
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def transactions(sessions: sessionmaker[Session], *, writes_changes: bool = True) -> Transactions:
    """Each call opens a new session from ``sessions`` as one unit of work (registered as a writer of changes
    unless ``writes_changes`` is false)."""

    def open_one() -> AbstractContextManager[Session]:
        return committing(sessions(), writes_changes=writes_changes)

    return open_one
