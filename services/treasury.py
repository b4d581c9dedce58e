"""The treasury bank's daily file imported a chunk of lines per transaction (issue 12 §1).

The whole file is checked first (every bad line reported, nothing imported); then each chunk of lines posts or
confirms its receipts and moves the file's cursor (``treasury_files.lines_done``) in one transaction, so no import
holds the change feed back for long. An import cut short is resumed by importing the same file again: the
unfinished import of the same bytes is found and continued after its cursor.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from models.base import Actor
from models.treasury import matching
from services.uow import Transactions

CHUNK = 500  # lines per transaction


def import_daily_file(
    transaction: Transactions,
    data: bytes,
    name: str,
    actor: Actor,
    now: datetime,
    *,
    bank_code: str | None = None,
    chunk: int = CHUNK,
    progress: Callable[[int, int], None] | None = None,
) -> matching.FileImport:
    """Import (or resume importing) a daily file; the whole file's outcomes. Raises what
    ``matching.start_import`` raises, before anything is imported."""
    with transaction() as session:
        tfile, parsed = matching.start_import(session, data, name, actor, now, bank_code=bank_code)
        file_id, done, lines = tfile.id, tfile.lines_done, tfile.lines
    result: matching.FileImport | None = None
    while result is None or done < lines:
        with transaction() as session:
            result = matching.import_lines(session, file_id, parsed, actor, now, limit=chunk, progress=progress)
            done = result.file.lines_done
    return result
