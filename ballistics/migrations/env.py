"""Alembic's entry point: migrations run on the connection :func:`ballistics.schema.migrate` hands over.

That connection is already inside the transaction that holds the migration lock, so every
revision of one upgrade commits together or not at all.
"""

from __future__ import annotations

from alembic import context

from ballistics.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through ballistics.schema.migrate(engine), which supplies the connection")
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
