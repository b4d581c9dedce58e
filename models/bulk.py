"""Bulk writes for the hot paths (a sync batch writes hundreds of rows into each of several tables).

Rows go in with PostgreSQL ``COPY`` inside the caller's transaction: column defaults and constraints apply as for
``INSERT``, one round trip per table instead of one per row. Ids a later table needs are drawn from the table's
sequence beforehand (``next_ids``), so nothing has to be read back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import text
from sqlalchemy.orm import Session


def _driver_connection(session: Session) -> Any:
    return session.connection().connection.driver_connection


def next_ids(session: Session, table: str, count: int) -> list[int]:
    """``count`` new ids from ``table``'s ``id`` sequence, in one statement."""
    if count <= 0:
        return []
    return list(
        session.scalars(
            text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :count)"),
            {"table": table, "count": count},
        )
    )


def copy_rows(session: Session, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """``COPY`` ``rows`` (tuples in ``columns`` order; dicts become JSONB) into ``table`` in the session's
    transaction. ``table`` and ``columns`` are our own identifiers, never input."""
    session.flush()  # pending ORM rows first: ours may refer to them
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with _driver_connection(session).cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row([Jsonb(value) if isinstance(value, dict) else value for value in row])
