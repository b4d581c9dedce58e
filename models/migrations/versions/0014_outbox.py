"""the transactional outbox: calls to outside systems, written with the decision that needs them, and their audit

Revision ID: 0014
Revises: 0011
Create Date: 2026-12-09 10:00:00.000000
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB


revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("target", sa.String(20), nullable=False),
        sa.Column("operation", sa.String(30), nullable=False),
        # sent as Idempotency-Key with every delivery of the row: the outside system applies it once
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        # rows of one stream are delivered strictly in id order; NULL: no order to keep
        sa.Column("stream", sa.String(120), nullable=True),
        # whose row it is (the case's, the batch's, the payment's district); NULL: city staff only
        sa.Column("jurisdiction", sa.String(5), nullable=True),
        # never personal data in clear: a name or RRN goes sealed (PiiCipher) under the key "sealed"
        sa.Column("payload", JSONB(), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("leased_by", sa.String(120), nullable=True),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        # what the delivery's answer did (no personal data), once applied
        sa.Column("answer", JSONB(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_outbox_idempotency_key")),
        sa.CheckConstraint("status IN ('pending', 'done', 'dead', 'cancelled')", name=op.f("ck_outbox_status")),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_outbox_attempts")),
    )
    # the worker's claim: pending rows in id order
    op.create_index("ix_outbox_due", "outbox", ["id"], postgresql_where=sa.text("status = 'pending'"))
    # a stream's head: the earlier rows of a stream that are not finished (pending or dead block the ones after)
    op.create_index(
        "ix_outbox_stream_open",
        "outbox",
        ["stream", "id"],
        postgresql_where=sa.text("stream IS NOT NULL AND status IN ('pending', 'dead')"),
    )
    op.create_index("ix_outbox_status_id", "outbox", ["status", "id"])
    op.create_table(
        "outbox_actions",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("outbox_id", sa.BigInteger(), sa.ForeignKey("outbox.id"), nullable=False, index=True),
        sa.Column("action", sa.String(10), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_user_id", sa.BigInteger(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("actor_label", sa.String(80), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.CheckConstraint("action IN ('retry', 'cancel')", name=op.f("ck_outbox_actions_action")),
    )
    # who retried or cancelled a delivery is kept like the ledger (jingsu_refuse_change from revision 0001)
    op.execute(
        "CREATE TRIGGER outbox_actions_append_only BEFORE UPDATE OR DELETE ON outbox_actions "
        "FOR EACH ROW EXECUTE FUNCTION jingsu_refuse_change()"
    )
    op.execute(
        "CREATE TRIGGER outbox_actions_no_truncate BEFORE TRUNCATE ON outbox_actions "
        "FOR EACH STATEMENT EXECUTE FUNCTION jingsu_refuse_change()"
    )
    # 차적조회 is asked through the outbox: the case says it was asked (and how often, for the key) until answered
    op.add_column("fine_cases", sa.Column("owner_lookup_requested_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("fine_cases", sa.Column("owner_lookups", sa.Integer(), nullable=False, server_default="0"))
    # an imposition batch waits 'submitting' while its submission to e-approval is in the outbox
    op.drop_constraint(op.f("ck_imposition_batches_status"), "imposition_batches", type_="check")
    op.create_check_constraint(
        op.f("ck_imposition_batches_status"),
        "imposition_batches",
        "status IN ('proposed', 'submitting', 'submitted', 'applied', 'rejected')",
    )


def downgrade() -> None:
    op.execute("UPDATE imposition_batches SET status = 'proposed' WHERE status = 'submitting'")
    op.drop_constraint(op.f("ck_imposition_batches_status"), "imposition_batches", type_="check")
    op.create_check_constraint(
        op.f("ck_imposition_batches_status"),
        "imposition_batches",
        "status IN ('proposed', 'submitted', 'applied', 'rejected')",
    )
    op.drop_column("fine_cases", "owner_lookups")
    op.drop_column("fine_cases", "owner_lookup_requested_at")
    op.execute("DROP TRIGGER IF EXISTS outbox_actions_append_only ON outbox_actions")
    op.execute("DROP TRIGGER IF EXISTS outbox_actions_no_truncate ON outbox_actions")
    op.drop_table("outbox_actions")
    op.drop_index("ix_outbox_status_id", table_name="outbox")
    op.drop_index("ix_outbox_stream_open", table_name="outbox")
    op.drop_index("ix_outbox_due", table_name="outbox")
    op.drop_table("outbox")
