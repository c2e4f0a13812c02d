"""The names of audit events, in one place (docs/audit.md lists each with its details).

Every emitter (the importer, the log itself, the command line) uses these constants rather than
spelling the strings, so that a tool reading the log and the code writing it cannot drift apart.
"""

from __future__ import annotations

from typing import Final

# --- records written by the log itself -----------------------------------------------------------
HEAD: Final = "head"
AUDIT_KEY: Final = "audit_key"
AUDIT_KEY_RETIRED: Final = "audit_key_retired"
REPAIR: Final = "repair"
TAIL_ACCEPTED: Final = "tail_accepted"
#: Types only the log writes; :meth:`exchange.audit.AuditLog.append` refuses them from callers.
LOG_TYPES: Final = frozenset({HEAD, AUDIT_KEY, AUDIT_KEY_RETIRED, REPAIR, TAIL_ACCEPTED})

# --- comparisons and the collection ----------------------------------------------------------------
COMPARISON: Final = "comparison"
RECORD_ADD: Final = "record_add"
DB_ADD: Final = "db_add"
DB_REMOVE: Final = "db_remove"
SEARCH: Final = "search"
RECORDS_REATTRIBUTED: Final = "records_reattributed"
REPORT: Final = "report"

# --- keys and trust --------------------------------------------------------------------------------
KEY_INIT: Final = "key_init"
KEY_ROTATE: Final = "key_rotate"
KEY_REVOKE: Final = "key_revoke"
TRUST_ADDED: Final = "trust_added"
TRUST_REVOKED: Final = "trust_revoked"
TRUST_DISTRUSTED: Final = "trust_distrusted"
TRUST_REFUSED: Final = "trust_refused"

# --- bundles ---------------------------------------------------------------------------------------
BUNDLE_EXPORT: Final = "bundle_export"
BUNDLE_IMPORT: Final = "bundle_import"
BUNDLE_DUPLICATE: Final = "bundle_duplicate"
BUNDLE_REJECTED: Final = "bundle_rejected"
RECEIPT_SENT: Final = "receipt_sent"
RECEIPT_RECEIVED: Final = "receipt_received"
#: A bundle was imported but its delivery receipt would exceed the receipt cap, so none was sent.
RECEIPT_IMPOSSIBLE: Final = "receipt_impossible"

# --- ballistic intelligence (exchange/correlate.py) -----------------------------------------------
REQUEST_SENT: Final = "request_sent"
REQUEST_RECEIVED: Final = "request_received"
#: A partner bundle's scans (a request's, or a findings bundle's) searched against the collection.
CORRELATION_SEARCHED: Final = "correlation_searched"
LEAD_FOUND: Final = "lead_found"
LEAD_CONFIRMED: Final = "lead_confirmed"
LEAD_DISMISSED: Final = "lead_dismissed"
RESPONSE_SENT: Final = "response_sent"
RESPONSE_RECEIVED: Final = "response_received"
HIT_NOTIFICATION_SENT: Final = "hit_notification_sent"
HIT_NOTIFICATION_RECEIVED: Final = "hit_notification_received"

#: Every event a caller may append (the log's own types excluded).
EVENT_TYPES: Final = frozenset(
    {
        COMPARISON,
        RECORD_ADD,
        DB_ADD,
        DB_REMOVE,
        SEARCH,
        RECORDS_REATTRIBUTED,
        REPORT,
        KEY_INIT,
        KEY_ROTATE,
        KEY_REVOKE,
        TRUST_ADDED,
        TRUST_REVOKED,
        TRUST_DISTRUSTED,
        TRUST_REFUSED,
        BUNDLE_EXPORT,
        BUNDLE_IMPORT,
        BUNDLE_DUPLICATE,
        BUNDLE_REJECTED,
        RECEIPT_SENT,
        RECEIPT_RECEIVED,
        RECEIPT_IMPOSSIBLE,
        REQUEST_SENT,
        REQUEST_RECEIVED,
        CORRELATION_SEARCHED,
        LEAD_FOUND,
        LEAD_CONFIRMED,
        LEAD_DISMISSED,
        RESPONSE_SENT,
        RESPONSE_RECEIVED,
        HIT_NOTIFICATION_SENT,
        HIT_NOTIFICATION_RECEIVED,
    }
)
