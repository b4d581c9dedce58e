"""treasury (금고) receipts from SEN and the daily file, the exception queue

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-25 22:45:00.000000
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB


revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "treasury_files",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("bank_code", sa.String(3), nullable=False),
        sa.Column("file_date", sa.Date(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("summary", JSONB(), nullable=True),
        sa.Column("imported_by", sa.BigInteger(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("actor_label", sa.String(80), nullable=True),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "treasury_receipts",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("bank_code", sa.String(3), nullable=False),
        sa.Column("receipt_id", sa.String(20), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("reference", sa.String(30), nullable=False),
        sa.Column("original_receipt_id", sa.String(20), nullable=True),
        # signed: a cancellation (취소) takes money back and is negative
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("sen_amount", sa.BigInteger(), nullable=True),
        sa.Column("file_amount", sa.BigInteger(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("payment_id", sa.BigInteger(), sa.ForeignKey("payments.id"), nullable=True),
        sa.Column("notice_no", sa.String(15), nullable=True),
        sa.Column("jurisdiction", sa.String(5), nullable=True),
        sa.Column("revenue_item", sa.String(10), nullable=True),
        sa.Column("file_id", sa.BigInteger(), sa.ForeignKey("treasury_files.id"), nullable=True),
        sa.Column("sen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("raw", JSONB(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        # the same receipt reported by SEN and by the daily file (or twice by either) is one row: posted once
        sa.UniqueConstraint("bank_code", "receipt_id", name="uq_treasury_receipts_bank_receipt"),
        sa.CheckConstraint("kind IN ('deposit', 'cancel')", name="ck_treasury_receipts_kind"),
    )
    op.create_index("ix_treasury_receipts_date", "treasury_receipts", ["business_date", "id"])
    op.create_table(
        "treasury_splits",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("receipt_id", sa.BigInteger(), sa.ForeignKey("treasury_receipts.id"), nullable=False, index=True),
        # a gateway payment is covered by one aggregate credit at most
        sa.Column("payment_id", sa.BigInteger(), sa.ForeignKey("payments.id"), nullable=False, unique=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "treasury_exceptions",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("receipt_id", sa.BigInteger(), sa.ForeignKey("treasury_receipts.id"), nullable=False, index=True),
        sa.Column("reason", sa.String(20), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        # bank money only this exception accounts for (neither in the ledger, in suspense nor split); signed
        sa.Column("held", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("jurisdiction", sa.String(5), nullable=True),
        sa.Column("detail", sa.String(300), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("resolved_by", sa.BigInteger(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("resolved_label", sa.String(80), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution", sa.String(300), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("status IN ('open', 'resolved')", name="ck_treasury_exceptions_status"),
    )
    op.create_index("ix_treasury_exceptions_open", "treasury_exceptions", ["status", "jurisdiction", "id"])


def downgrade() -> None:
    op.drop_table("treasury_exceptions")
    op.drop_table("treasury_splits")
    op.drop_table("treasury_receipts")
    op.drop_table("treasury_files")
