"""How long keys and bundles stay acceptable: the time rules shared by writer and reader.

A bundle's own times (``created``, ``expires``) are written by its sender and can be backdated
by anyone holding an old key, so the reader also judges the sender's key at the moment of
import: a key that expired, or that this lab learnt was superseded, is accepted for
``KEY_GRACE`` longer (bundles in flight), and no bundle may claim a lifetime above
``MAX_BUNDLE_LIFETIME``. ``docs/security.md`` (item 5) gives the reasoning.
"""

from __future__ import annotations

from datetime import timedelta

#: Tolerated clock difference between labs for a bundle's creation time.
CLOCK_SKEW = timedelta(minutes=5)
#: The longest a bundle may stay acceptable (``expires - created``); the default is 30 days.
MAX_BUNDLE_LIFETIME = timedelta(days=90)
#: How long after its key expired, or after this lab trusted its successor, a sender's bundles still import.
KEY_GRACE = timedelta(days=14)
