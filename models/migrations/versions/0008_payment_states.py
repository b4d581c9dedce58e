"""payment states forward only (CHECK + trigger) and payment_events: every raw callback and status answer kept

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 21:30:00.000000
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# the forward moves a payment may make (models/payments.py FORWARD); anything else is refused by the trigger
FORWARD_SQL = """
CREATE FUNCTION payments_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.status IS DISTINCT FROM OLD.status AND NOT (
       (OLD.status = 'pending' AND NEW.status IN ('posted', 'suspense', 'cancelled'))
    OR (OLD.status = 'suspense' AND NEW.status = 'posted')
    OR (OLD.status = 'posted' AND NEW.status = 'cancelled')
  ) THEN
    RAISE EXCEPTION 'payment % may not move from % to %', OLD.id, OLD.status, NEW.status
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER payments_forward_only BEFORE UPDATE OF status ON payments
  FOR EACH ROW EXECUTE FUNCTION payments_forward_only();
"""

APPEND_ONLY_SQL = """
CREATE FUNCTION payment_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'payment_events is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER payment_events_append_only BEFORE UPDATE OR DELETE ON payment_events
  FOR EACH ROW EXECUTE FUNCTION payment_events_append_only();
"""


def upgrade() -> None:
    op.execute(
        "UPDATE payments SET status = 'cancelled' WHERE status NOT IN ('pending', 'posted', 'suspense', 'cancelled')"
    )
    op.create_check_constraint(
        "ck_payments_status", "payments", "status IN ('pending', 'posted', 'suspense', 'cancelled')"
    )
    op.execute(FORWARD_SQL)
    op.create_table(
        "payment_events",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("gateway", sa.String(30), nullable=False),
        sa.Column("txn_id", sa.String(80), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("body", postgresql.JSONB(), nullable=True),
        sa.Column("raw", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("kind IN ('callback', 'status_answer')", name="ck_payment_events_kind"),
    )
    op.create_index("ix_payment_events_txn", "payment_events", ["gateway", "txn_id"])
    op.execute(APPEND_ONLY_SQL)


def downgrade() -> None:
    op.execute("DROP TRIGGER payment_events_append_only ON payment_events")
    op.execute("DROP FUNCTION payment_events_append_only()")
    op.drop_index("ix_payment_events_txn", table_name="payment_events")
    op.drop_table("payment_events")
    op.execute("DROP TRIGGER payments_forward_only ON payments")
    op.execute("DROP FUNCTION payments_forward_only()")
    op.drop_constraint("ck_payments_status", "payments", type_="check")
