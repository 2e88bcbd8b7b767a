"""Index (kind, scope, id): scoped lists in creation order without a sort.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_records_kind_scope", "records", ["kind", "scope", "id"])


def downgrade() -> None:
    op.drop_index("ix_records_kind_scope", table_name="records")
