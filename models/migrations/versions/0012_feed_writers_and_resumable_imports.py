"""the change feed waits only for transactions that write changes; treasury files import in resumable chunks
(issue 12 §1)

A transaction that writes to ``change_log`` registers itself first (``feed_register()``): it takes a shared,
transaction-level advisory lock whose key carries its ticket — the first transaction id not yet completed when it
registered, which is at most its own id — and remembers the ticket in the transaction-local setting
``jingsu.feed_ticket``. A statement trigger on ``change_log`` registers a transaction at its first insert and refuses
one that wrote something else before registering (its id could then be older than a horizon a reader already
passed).

The pull (``sync.changes``) serves only changes below the feed's horizon: the oldest ticket still registered in
this database, the first transaction id not yet completed, and any transaction running when its snapshot was taken
that has ended since. Other write transactions, in this database or another of the same server, no longer hold
the feed back.

``treasury_files.lines_done`` is the cursor of a daily file imported a chunk per transaction: importing the same
file again after a crash resumes after it.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08 05:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# advisory lock keys of registered writers: 0x4A46 ("JF") in the top 16 bits, the ticket in the low 48
_NAMESPACE = 0x4A46

_FUNCTIONS = f"""
CREATE FUNCTION feed_register() RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    held text := current_setting('jingsu.feed_ticket', true);
    ticket bigint;
BEGIN
    IF held IS NOT NULL AND held <> '' THEN
        RETURN held::bigint;
    END IF;
    IF pg_current_xact_id_if_assigned() IS NOT NULL THEN
        RAISE EXCEPTION 'a transaction that writes changes must register before its first write'
            USING ERRCODE = 'JF001', HINT = 'call models.feed.register_writer(session) at the start of the transaction';
    END IF;
    ticket := pg_snapshot_xmax(pg_current_snapshot())::text::bigint;
    PERFORM pg_advisory_xact_lock_shared(({_NAMESPACE}::bigint << 48) | ticket);
    PERFORM set_config('jingsu.feed_ticket', ticket::text, true);
    RETURN ticket;
END $$;

CREATE FUNCTION feed_register_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM feed_register();
    RETURN NULL;
END $$;

CREATE TRIGGER change_log_writers_register BEFORE INSERT ON change_log
    FOR EACH STATEMENT EXECUTE FUNCTION feed_register_trigger();

"""


def upgrade() -> None:
    op.execute(_FUNCTIONS)
    op.add_column("treasury_files", sa.Column("lines_done", sa.Integer(), nullable=False, server_default="0"))
    op.execute("UPDATE treasury_files SET lines_done = lines")


def downgrade() -> None:
    op.drop_column("treasury_files", "lines_done")
    op.execute("DROP TRIGGER change_log_writers_register ON change_log")
    op.execute("DROP FUNCTION feed_register_trigger()")
    op.execute("DROP FUNCTION feed_register()")
