"""One Alembic revision per file, ``vNNNN_<what>.py``, revision id ``NNNN``; each freezes its own DDL."""
