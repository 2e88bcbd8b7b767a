"""Alembic environment: always run on the connection Atoll hands over.

Atoll opens the connection (and takes the lock that keeps concurrent openers
from racing) itself, see :func:`atoll.metadata.migrations.ensure_schema`.
"""

from __future__ import annotations

from alembic import context

from atoll.metadata.migrations import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(connection=connection, version_table=VERSION_TABLE, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
