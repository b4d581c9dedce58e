"""print runs (인쇄 차수): print_runs, their items, when and in which run each notice was printed

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-25 22:45:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

STATUSES = "('claimed', 'printed', 'empty', 'failed')"


def upgrade() -> None:
    op.create_table(
        "print_runs",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("jurisdiction", sa.String(5), sa.ForeignKey("jurisdictions.code"), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("issued_from", sa.Date(), nullable=True),
        sa.Column("issued_to", sa.Date(), nullable=True),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("requested_by", sa.BigInteger(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("actor_label", sa.String(80), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("documents", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("pages", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("pdf_path", sa.Text(), nullable=True),
        sa.Column("manifest_path", sa.Text(), nullable=True),
        sa.Column("postal_name", sa.String(30), nullable=True),
        sa.Column("postal_receipt", sa.String(80), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(f"status IN {STATUSES}", name="ck_print_runs_status"),
    )
    op.create_index("ix_print_runs_jurisdiction", "print_runs", ["jurisdiction", "id"])
    # one row per document ever taken by a run: the primary key on document_id is what makes two concurrent runs
    # unable to take the same document (INSERT … ON CONFLICT DO NOTHING; the loser skips it)
    op.create_table(
        "print_run_items",
        sa.Column("document_id", sa.BigInteger(), sa.ForeignKey("fine_documents.id"), primary_key=True, nullable=False),
        sa.Column("run_id", sa.BigInteger(), sa.ForeignKey("print_runs.id"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=True),
        sa.Column("first_page", sa.Integer(), nullable=True),
        sa.Column("last_page", sa.Integer(), nullable=True),
        sa.Column("printed_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_print_run_items_run", "print_run_items", ["run_id", "seq"])
    # who downloaded a run's files (personal data: names and addresses), append-only
    op.create_table(
        "print_run_exports",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.BigInteger(), sa.ForeignKey("print_runs.id"), nullable=False, index=True),
        sa.Column("what", sa.String(20), nullable=False),
        sa.Column("user_id", sa.BigInteger(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("actor_label", sa.String(80), nullable=True),
        sa.Column("actor_address", sa.String(64), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("print_run_exports")
    op.drop_index("ix_print_run_items_run", table_name="print_run_items")
    op.drop_table("print_run_items")
    op.drop_index("ix_print_runs_jurisdiction", table_name="print_runs")
    op.drop_table("print_runs")
