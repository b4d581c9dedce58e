"""Feed compaction a bounded chunk per transaction (issue 12 §1): each chunk removes at most ``chunk`` replaced
changes and ``chunk`` old tombstones (raising the feed floor past them in the same transaction) and commits.

Compaction only deletes, so its transactions are not writers of changes and never hold the feed back; chunks keep
its locks and its undo short. The cursor is the log itself: what a committed chunk removed is gone, so a run cut
short resumes where it stopped when it is started again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from models import feed
from services.uow import Transactions

CHUNK = 5_000


def compact_feed(
    transaction: Transactions,
    now: datetime,
    *,
    tombstone_age: timedelta,
    superseded_age: timedelta,
    chunk: int = CHUNK,
) -> feed.Compaction:
    """Compact the change log a chunk per transaction until a chunk comes back short; the totals."""
    superseded = tombstones = chunks = 0
    while True:
        with transaction() as session:
            part = feed.compact(session, now, tombstone_age=tombstone_age, superseded_age=superseded_age, limit=chunk)
        superseded += part.superseded
        tombstones += part.tombstones
        chunks += 1
        if not part.more:
            return feed.Compaction(superseded, tombstones, part.feed_floor_id, chunks=chunks)
