"""Bulk writes for the hot paths (a sync batch writes hundreds of rows into each of several tables).

Rows go in with PostgreSQL ``COPY`` inside the caller's transaction: column defaults and constraints apply as for
``INSERT``, one round trip per table instead of one per row. Ids a later table needs are drawn from the table's
sequence beforehand (``next_ids``), so nothing has to be read back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import Table, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
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


def insert_returning(
    session: Session,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    returning: Sequence[str],
    conflict_column: str | None = None,
) -> list[tuple[Any, ...]]:
    """``INSERT`` ``rows`` (dicts with the same keys) into ``table`` as one statement over ``unnest`` of one array
    per column — a short statement whatever the row count, so the driver neither re-parses thousands of
    placeholders nor the server plans them — ``ON CONFLICT (conflict_column) DO NOTHING`` when given. Answers the
    ``returning`` columns of the rows inserted (a row skipped by the conflict is absent)."""
    if not rows:
        return []
    session.flush()
    columns = list(rows[0])
    dialect = postgresql.dialect()
    params: list[list[Any]] = []
    arrays, selected = [], []
    for i, name in enumerate(columns, start=1):
        column_type = table.c[name].type
        sql_type = column_type.compile(dialect=dialect)
        values = [row[name] for row in rows]
        if isinstance(column_type, ARRAY | JSONB):
            # arrays and documents travel as text, cast back per row (unnest would flatten arrays of arrays)
            as_text = _array_literal if isinstance(column_type, ARRAY) else _json_text
            params.append([None if v is None else as_text(v) for v in values])
            arrays.append("CAST(%s AS TEXT[])")
            selected.append(f"CAST(c{i} AS {sql_type})")
        else:
            params.append(values)
            arrays.append(f"CAST(%s AS {sql_type}[])")
            selected.append(f"c{i}")
    aliases = ", ".join(f"c{i}" for i in range(1, len(columns) + 1))
    statement = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT {', '.join(selected)} "
        f"FROM unnest({', '.join(arrays)}) AS u({aliases})"
    )
    if conflict_column is not None:
        statement += f" ON CONFLICT ({conflict_column}) DO NOTHING"
    statement += f" RETURNING {', '.join(returning)}"
    with _driver_connection(session).cursor() as cursor:
        cursor.execute(statement, params)
        return [tuple(row) for row in cursor.fetchall()]


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _array_literal(items: Sequence[str]) -> str:
    """A PostgreSQL array literal of strings, each quoted (so commas, braces and quotes inside are safe)."""
    quoted = ('"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"' for item in items)
    return "{" + ",".join(quoted) + "}"
