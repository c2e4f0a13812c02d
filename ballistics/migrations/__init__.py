"""The collection's schema migrations (Alembic revisions under ``versions/``; see :mod:`ballistics.schema`)."""
