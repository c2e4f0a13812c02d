"""Typed refusals of the exchange layer.

Two families, so that an operator can tell at a glance whether a file is broken or hostile:
:class:`ExchangeSecurityError` (exit 4) for anything that fails authentication, trust or
policy, and :class:`MalformedError` (exit 3) for input that cannot even be parsed. A bundle
that parses but does not authenticate is always a security refusal, never "malformed".
"""

from __future__ import annotations

from ballistics.errors import InvalidInputError, SecurityError


class ExchangeSecurityError(SecurityError):
    """Base of every security refusal raised by the exchange layer (exit 4)."""


class BadPassphraseError(ExchangeSecurityError):
    """The private keys do not open with this passphrase."""


class BadSignatureError(ExchangeSecurityError):
    """A hybrid signature failed: both Ed25519 and ML-DSA-65 must verify."""


class FingerprintMismatchError(ExchangeSecurityError):
    """The fingerprint read over the phone does not match the card."""


class UntrustedSenderError(ExchangeSecurityError):
    """The sender's key is not in the trust store."""


class UntrustedRecipientError(ExchangeSecurityError):
    """A requested recipient is unknown, superseded or revoked."""


class SuccessionConflictError(ExchangeSecurityError):
    """A second successor of a key that was already succeeded: a fork, which needs a fingerprint."""


class RevokedKeyError(ExchangeSecurityError):
    """The key has been revoked; nothing signed by it is accepted any more."""


class InsecureKeyFileError(ExchangeSecurityError):
    """A private-key file that others may read, or that another user owns."""


class KeyValidityError(ExchangeSecurityError):
    """The key card is outside its validity period."""


class NotARecipientError(ExchangeSecurityError):
    """The bundle is not addressed to this lab's keys."""


class TamperedError(ExchangeSecurityError):
    """Authentication failed: a header byte, a stanza or a chunk was changed or moved."""


class TruncatedError(TamperedError):
    """The payload ends without its final chunk (cut at or inside a chunk)."""


class ManifestMismatchError(ExchangeSecurityError):
    """The signed manifest disagrees with the header or with the files it describes."""


class ExpiredBundleError(ExchangeSecurityError):
    """The manifest's expiry time has passed, or its creation time lies in the future."""


class ReplayedBundleError(ExchangeSecurityError):
    """A bundle id already imported, carrying other bytes than the bundle imported under it."""


class StaleBundleError(ExchangeSecurityError):
    """A sequence number not newer than the last one imported from the same sender."""


class ForeignContentError(ExchangeSecurityError):
    """Content the signer cannot vouch for: another lab's record, or a receipt for someone else's bundle."""


class ReceiptMismatchError(ForeignContentError):
    """A receipt for a bundle this lab never sent, from a lab it was not sent to, or with other hashes."""


class ConflictingRecordError(ExchangeSecurityError):
    """A record id already stored with a different document."""


class AuditTamperedError(ExchangeSecurityError):
    """The audit chain is broken: a line was altered, removed, reordered, cut or forged (exit 4)."""


class MalformedError(InvalidInputError):
    """Base of every exchange input that cannot be parsed (exit 3)."""


class MalformedCardError(MalformedError):
    """A key card, revocation or key file that is not what it claims to be."""


class MissingIdentityError(MalformedError):
    """The lab home has no identity (run ``keys init``) or already has one."""


class TrustStoreError(MalformedError):
    """The trust store file is unreadable or inconsistent."""


class MalformedBundleError(MalformedError):
    """A bundle whose structure is wrong: magic, version, lengths, encodings."""


class HeaderLimitError(MalformedBundleError):
    """The header exceeds a hard cap: total size, stanza count or stanza length."""


class UnsafeMemberNameError(MalformedBundleError):
    """A member name that could escape the extraction directory or collide."""


class BundleContentError(MalformedError):
    """What would go into a bundle is unusable: missing file, duplicate name, bad record."""


class AuditLogError(MalformedError):
    """The audit log cannot be read as a log at all, or an event cannot be encoded (exit 3)."""


class AuditKeyError(MalformedError):
    """The audit-signing key file or a certificate is not what it claims to be (exit 3)."""
