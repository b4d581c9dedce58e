"""the change feed waits only for transactions that write changes; treasury files import in resumable chunks
(issue 12 §1)

A transaction that writes to ``change_log`` registers itself first (``feed_register()``): it takes a shared,
transaction-level advisory lock whose key carries its ticket — the first transaction id not yet completed when it
registered, which is at most its own id — and remembers the ticket in the transaction-local setting
``jingsu.feed_ticket``. A statement trigger on ``change_log`` registers a transaction at its first insert and refuses
one that wrote something else before registering (its id could then be older than a horizon a reader already
passed).

``feed_page()`` reads the horizon first — the oldest ticket still registered in this database (or, with none, the
first transaction id not yet completed) — and only then, under a fresh snapshot, the changes of transactions below
it. Other write transactions, in this database or another of the same server, no longer hold
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

CREATE FUNCTION feed_page(scopes text[], after_txid bigint, after_id bigint, page_size integer)
RETURNS TABLE (id bigint, txid bigint, entity varchar, key varchar, op varchar, data jsonb)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    horizon bigint;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'the change feed is read under READ COMMITTED (its rows need a snapshot newer than the horizon)'
            USING ERRCODE = 'JF002';
    END IF;
    -- the horizon: the oldest ticket registered in this database, or the first transaction id not yet completed
    SELECT least(pg_snapshot_xmax(pg_current_snapshot())::text::bigint,
                 min(((l.classid::bigint & 65535) << 32) | l.objid::bigint))
      INTO horizon
      FROM pg_lock_status() AS l
     WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND (l.classid::bigint >> 16) = {_NAMESPACE}
       AND l.database = (SELECT d.oid FROM pg_database AS d WHERE d.datname = current_database());
    -- a new statement, so a new snapshot: every registered writer below the horizon had ended before it was taken
    RETURN QUERY
        SELECT c.id, c.txid, c.entity, c.key, c.op, c.data
          FROM change_log AS c
         WHERE c.scope = ANY(scopes) AND (c.txid, c.id) > (after_txid, after_id) AND c.txid < horizon
         ORDER BY c.txid, c.id
         LIMIT page_size;
END $$;
"""


def upgrade() -> None:
    op.execute(_FUNCTIONS)
    op.add_column("treasury_files", sa.Column("lines_done", sa.Integer(), nullable=False, server_default="0"))
    op.execute("UPDATE treasury_files SET lines_done = lines")


def downgrade() -> None:
    op.drop_column("treasury_files", "lines_done")
    op.execute("DROP TRIGGER change_log_writers_register ON change_log")
    op.execute("DROP FUNCTION feed_page(text[], bigint, bigint, integer)")
    op.execute("DROP FUNCTION feed_register_trigger()")
    op.execute("DROP FUNCTION feed_register()")
