"""The one time format the toolkit writes: UTC, whole seconds, ``Z`` suffix (``2026-01-15T09:30:00Z``).

Records, the store, cards, manifests, receipts and the audit log all use it, so that times sort
as text and compare equal across labs and languages.
"""

from __future__ import annotations

from datetime import UTC, datetime

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def now_utc() -> datetime:
    """The current time in UTC, to the second."""
    return datetime.now(UTC).replace(microsecond=0)


def format_time(moment: datetime | None = None) -> str:
    """``moment`` (default: now) as RFC 3339 in UTC with whole seconds and a ``Z``.

    A naive ``moment`` is taken as local time, as :meth:`datetime.astimezone` does.
    """
    return (moment or now_utc()).astimezone(UTC).strftime(TIME_FORMAT)
