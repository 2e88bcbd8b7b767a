"""Indexes for filters, counts and pages at a million records.

* ``records``: (kind, created_at, id), (kind, scope, created_at, id),
  (kind, modified_at, id), (kind, name, id): newest-first pages, date ranges,
  name lookups across scopes (string columns in "C" collation on PostgreSQL,
  the code-point order the filters use).
* ``record_metrics(record_id, metric, value)`` indexed on (metric, value): the
  numbers under ``details.metrics`` (see :mod:`atoll.metadata._sqlindex`),
  filled here for the records already stored.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import orjson
import sqlalchemy as sa
from alembic import op

from atoll.metadata._sqlindex import metric_entries

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_COLUMN_INDEXES = {
    "ix_records_kind_created": ("kind", "created_at", "id"),
    "ix_records_kind_scope_created": ("kind", "scope", "created_at", "id"),
    "ix_records_kind_modified": ("kind", "modified_at", "id"),
    "ix_records_kind_name": ("kind", "name", "id"),
}
_TEXT_COLUMNS = ("created_at", "modified_at", "name")
_BACKFILL_CHUNK = 5_000


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    for name, columns in _COLUMN_INDEXES.items():
        parts = [f'{c} COLLATE "C"' if postgres and c in _TEXT_COLUMNS else c for c in columns]
        op.execute(f"CREATE INDEX {name} ON records ({', '.join(parts)})")
    op.create_table(
        "record_metrics",
        sa.Column("record_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("metric", sa.Text(), nullable=False),
        sa.Column("value", sa.Float(precision=53), nullable=False),
    )
    op.create_index("ix_record_metrics_metric_value", "record_metrics", ["metric", "value", "record_id"])
    op.create_index("ix_record_metrics_record", "record_metrics", ["record_id"])
    doc = "CAST(doc AS text)" if postgres else "doc"
    last = 0
    while True:
        rows = bind.execute(
            sa.text(f"SELECT id, {doc} FROM records WHERE id > :last ORDER BY id LIMIT {_BACKFILL_CHUNK}"),
            {"last": last},
        ).all()
        if not rows:
            break
        entries = [
            {"id": record_id, "metric": metric, "value": value}
            for record_id, text in rows
            for metric, value in metric_entries(orjson.loads(text))
        ]
        if entries:
            bind.execute(
                sa.text(
                    "INSERT INTO record_metrics (record_id, metric, value) VALUES (:id, :metric, :value)"
                ),
                entries,
            )
        last = rows[-1][0]


def downgrade() -> None:
    op.drop_table("record_metrics")
    for name in _COLUMN_INDEXES:
        op.drop_index(name, table_name="records")
