"""payment states initiated → pending → paid | failed (and paid → cancelled), suspense matching and refunds by a
clerk, virtual accounts (가상계좌) per receivable

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25 22:40:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

STATES = "('initiated', 'pending', 'paid', 'failed', 'cancelled')"

# the forward moves a payment may make (models/payments.py FORWARD); anything else is refused
FORWARD_SQL = """
CREATE OR REPLACE FUNCTION payments_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.status IS DISTINCT FROM OLD.status AND NOT (
       (OLD.status = 'initiated' AND NEW.status IN ('pending', 'paid', 'failed'))
    OR (OLD.status = 'pending' AND NEW.status IN ('paid', 'failed'))
    OR (OLD.status = 'paid' AND NEW.status = 'cancelled')
  ) THEN
    RAISE EXCEPTION 'payment % may not move from % to %', OLD.id, OLD.status, NEW.status
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;
"""

OLD_FORWARD_SQL = """
CREATE OR REPLACE FUNCTION payments_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
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
"""


def upgrade() -> None:
    op.drop_constraint("ck_payments_status", "payments", type_="check")
    op.execute("ALTER TABLE payments DISABLE TRIGGER payments_forward_only")
    op.execute(
        """
        UPDATE payments SET status = CASE
          WHEN status = 'pending' THEN 'initiated'
          WHEN status IN ('posted', 'suspense') THEN 'paid'
          WHEN status = 'cancelled' AND approved_at IS NULL THEN 'failed'
          ELSE status END
        """
    )
    op.execute("ALTER TABLE payments ENABLE TRIGGER payments_forward_only")
    op.create_check_constraint("ck_payments_status", "payments", f"status IN {STATES}")
    op.execute(FORWARD_SQL)
    op.add_column("payments", sa.Column("failed_reason", sa.String(40), nullable=True))
    # the order id we gave the gateway: a second 납부하기 while one is open reuses it (no second charge)
    op.add_column("payments", sa.Column("order_id", sa.String(80), nullable=True))
    op.create_index(
        "ix_payments_open",
        "payments",
        ["gateway", "created_at"],
        postgresql_where=sa.text("status IN ('initiated', 'pending')"),
    )

    # suspense (미확인 수납): matched by the notice's arrival or by a clerk, refunded when never matched
    op.add_column("suspense_payments", sa.Column("jurisdiction", sa.String(5), nullable=True))
    op.add_column("suspense_payments", sa.Column("matched_by", sa.BigInteger(), nullable=True))
    op.add_column("suspense_payments", sa.Column("match_note", sa.String(200), nullable=True))
    op.add_column("suspense_payments", sa.Column("refund_reason", sa.String(200), nullable=True))
    op.add_column("suspense_payments", sa.Column("refund_account_enc", sa.LargeBinary(), nullable=True))
    op.add_column("suspense_payments", sa.Column("refund_account_masked", sa.String(40), nullable=True))
    op.add_column("suspense_payments", sa.Column("refunded_by", sa.BigInteger(), nullable=True))
    op.add_column("suspense_payments", sa.Column("refunded_at", sa.DateTime(timezone=True), nullable=True))
    op.create_foreign_key("fk_suspense_payments_matched_by_users", "suspense_payments", "users", ["matched_by"], ["id"])
    op.create_foreign_key(
        "fk_suspense_payments_refunded_by_users", "suspense_payments", "users", ["refunded_by"], ["id"]
    )
    op.create_check_constraint(
        "ck_suspense_payments_status", "suspense_payments", "status IN ('open', 'matched', 'refunded', 'cancelled')"
    )
    op.create_check_constraint(
        "ck_suspense_payments_refund",
        "suspense_payments",
        "status <> 'refunded' OR (refund_reason IS NOT NULL AND refunded_at IS NOT NULL)",
    )
    op.create_index(
        "ix_suspense_payments_open", "suspense_payments", ["created_at"], postgresql_where=sa.text("status = 'open'")
    )

    # 가상계좌: one account per receivable, printed on its documents; the treasury bank reports deposits to it
    op.create_table(
        "virtual_accounts",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("bank_code", sa.String(3), nullable=False),
        sa.Column("account_no", sa.String(20), nullable=False, unique=True),
        sa.Column("receivable_id", sa.BigInteger(), sa.ForeignKey("receivables.id"), nullable=False, unique=True),
        sa.Column("issued_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("virtual_accounts")
    op.drop_index("ix_suspense_payments_open", table_name="suspense_payments")
    op.drop_constraint("ck_suspense_payments_refund", "suspense_payments", type_="check")
    op.drop_constraint("ck_suspense_payments_status", "suspense_payments", type_="check")
    op.drop_constraint("fk_suspense_payments_refunded_by_users", "suspense_payments", type_="foreignkey")
    op.drop_constraint("fk_suspense_payments_matched_by_users", "suspense_payments", type_="foreignkey")
    for column in (
        "refunded_at",
        "refunded_by",
        "refund_account_masked",
        "refund_account_enc",
        "refund_reason",
        "match_note",
        "matched_by",
        "jurisdiction",
    ):
        op.drop_column("suspense_payments", column)
    op.drop_index("ix_payments_open", table_name="payments")
    op.drop_column("payments", "order_id")
    op.drop_column("payments", "failed_reason")
    op.drop_constraint("ck_payments_status", "payments", type_="check")
    op.execute("ALTER TABLE payments DISABLE TRIGGER payments_forward_only")
    op.execute(
        """
        UPDATE payments SET status = CASE
          WHEN status IN ('initiated', 'pending') THEN 'pending'
          WHEN status = 'paid' AND receivable_id IS NULL THEN 'suspense'
          WHEN status = 'paid' THEN 'posted'
          WHEN status = 'failed' THEN 'cancelled'
          ELSE status END
        """
    )
    op.execute("ALTER TABLE payments ENABLE TRIGGER payments_forward_only")
    op.execute(OLD_FORWARD_SQL)
    op.create_check_constraint(
        "ck_payments_status", "payments", "status IN ('pending', 'posted', 'suspense', 'cancelled')"
    )
