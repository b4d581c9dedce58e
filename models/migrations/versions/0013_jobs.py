"""jobs claimed from PostgreSQL (issue 12 §3): periodic and one-off jobs, their runs; print runs rendered by the
worker a chunk at a time (status printing, progress in rendered)

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-09 10:00:00.000000
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB


revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

JOB_STATUSES = "('queued', 'running', 'done', 'failed')"
RUN_STATUSES = "('claimed', 'printing', 'printed', 'empty', 'failed')"
OLD_RUN_STATUSES = "('claimed', 'printed', 'empty', 'failed')"


def upgrade() -> None:
    # periodic jobs (every set, key = name; upserted by each worker as it starts) and one-off jobs (every null)
    op.create_table(
        "jobs",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("key", sa.String(120), nullable=False, unique=True),
        sa.Column("every", sa.Interval(), nullable=True),
        sa.Column("payload", JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("run_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("leased_by", sa.String(120), nullable=True),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("run_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(f"status IN {JOB_STATUSES}", name="ck_jobs_status"),
        sa.CheckConstraint("status <> 'running' OR leased_until IS NOT NULL", name="ck_jobs_running_leased"),
    )
    # the claim's scan: only rows that can become due (finished one-off jobs stay for the record)
    op.create_index(
        "ix_jobs_due", "jobs", ["run_after", "id"], postgresql_where=sa.text("status IN ('queued', 'running')")
    )
    op.create_table(
        "job_runs",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.BigInteger(), sa.ForeignKey("jobs.id"), nullable=False),
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("worker", sa.String(120), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ok", sa.Boolean(), nullable=True),
        sa.Column("counts", JSONB(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index("ix_job_runs_job", "job_runs", ["job_id", "id"])
    op.create_index("ix_job_runs_name", "job_runs", ["name", "id"])
    # print runs: rendered by a worker in chunks; `rendered` is the cursor (documents done, in seq order)
    op.add_column("print_runs", sa.Column("rendered", sa.Integer(), nullable=False, server_default="0"))
    op.drop_constraint("ck_print_runs_status", "print_runs", type_="check")
    op.create_check_constraint("ck_print_runs_status", "print_runs", f"status IN {RUN_STATUSES}")
    # a run left claimed before this revision (its process died) is printed by the worker now
    op.execute(
        """
        INSERT INTO jobs (name, key, payload, status, run_after, attempts, created_at)
        SELECT 'print-run', 'print-run:' || id, jsonb_build_object('run_id', id), 'queued', clock_timestamp(), 0,
               clock_timestamp()
          FROM print_runs WHERE status = 'claimed'
        """
    )


def downgrade() -> None:
    op.execute("UPDATE print_runs SET status = 'claimed' WHERE status = 'printing'")
    op.drop_constraint("ck_print_runs_status", "print_runs", type_="check")
    op.create_check_constraint("ck_print_runs_status", "print_runs", f"status IN {OLD_RUN_STATUSES}")
    op.drop_column("print_runs", "rendered")
    op.drop_index("ix_job_runs_name", table_name="job_runs")
    op.drop_index("ix_job_runs_job", table_name="job_runs")
    op.drop_table("job_runs")
    op.drop_index("ix_jobs_due", table_name="jobs")
    op.drop_table("jobs")
