"""runs: trigger and host; leases (one run at a time per connection and operation)

Revision ID: 0003_run_trigger_host_leases
Revises: 0002_encrypt_connection_secrets
Create Date: 2026-12-02 20:50:00

(Revision ids stay within 32 characters: PostgreSQL's alembic_version column is varchar(32).)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_run_trigger_host_leases"
down_revision = "0002_encrypt_connection_secrets"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("trigger", sa.String(length=20), server_default="cli", nullable=False)
        )
        batch_op.add_column(
            sa.Column("host", sa.String(length=255), server_default="", nullable=False)
        )
    op.create_table(
        "leases",
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("operation", sa.String(length=50), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(length=300), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_leases_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_leases_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("connection_id", "operation", name=op.f("pk_leases")),
    )
    with op.batch_alter_table("leases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_leases_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("leases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_leases_run_id"))
    op.drop_table("leases")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("host")
        batch_op.drop_column("trigger")
