"""The records table.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "records",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("scope", sa.String(63), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("doc", sa.Text().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("modified_at", sa.String(40), nullable=False),
        sa.UniqueConstraint("kind", "scope", "name", name="uq_records_key"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("records")
