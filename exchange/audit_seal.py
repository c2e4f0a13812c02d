"""What proves the end of the audit log: line MACs and the signed head file.

A head signature covers every line before it, so what needs guarding is the end of the log:

* **Line MACs.** While the lab holds an audit key, every line a command writes (other than a
  head) carries ``mac``: HMAC-SHA256 under a key derived from the audit key's seeds (HKDF-SHA256,
  info ``ballistics audit line mac v1``) over the canonical record without ``mac``. Only the
  holder of the audit key can check it, and that is its use: before signing a head, a command
  checks that every line since the last head is either MAC'd by this key or was written while
  the lab had no audit key (:meth:`exchange.audit.AuditLog.sign_head`), so a line appended by
  someone without the key is never sealed under the lab's next head.
* **The head file.** ``head.json`` names the newest signed head line and is itself signed by the
  audit key (domain ``ballistics audit head file v1``), so it cannot be pointed at an earlier
  head by someone without the key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ballistics.clock import format_time
from ballistics.json_input import load_json
from exchange.audit_key import AuditKey
from exchange.canonical import canonical_json, is_int, parse_time
from exchange.errors import MalformedError
from exchange.signing import HybridSignature, HybridVerifyKey

DOMAIN_HEAD_FILE = b"ballistics audit head file v1"
MAC_INFO = b"ballistics audit line mac v1"
HEAD_FILE_FIELDS = {"seq", "sha256", "key_id", "time", "signature"}


def line_mac_key(key: AuditKey) -> bytes:
    """The 32-byte HMAC key of an audit key's line MACs."""
    return HKDF(hashes.SHA256(), 32, salt=None, info=MAC_INFO).derive(key.seeds)


def line_mac(mac_key: bytes, record: Mapping[str, Any]) -> str:
    """Lower-case hex HMAC-SHA256 of the canonical record, its own ``mac`` left out."""
    body = {k: v for k, v in record.items() if k != "mac"}
    return hmac.new(mac_key, canonical_json(body), hashlib.sha256).hexdigest()


def mac_holds(mac_key: bytes, record: Mapping[str, Any]) -> bool:
    mac = record.get("mac")
    return isinstance(mac, str) and hmac.compare_digest(mac, line_mac(mac_key, record))


@dataclass(frozen=True)
class HeadFile:
    """``head.json``: the newest signed head line (number and SHA-256), signed by the audit key."""

    seq: int
    sha256: str
    key_id: str
    time: str
    signature: HybridSignature

    def body(self) -> dict[str, Any]:
        return {"seq": self.seq, "sha256": self.sha256, "key_id": self.key_id, "time": self.time}

    def to_bytes(self) -> bytes:
        return json.dumps({**self.body(), "signature": self.signature.to_dict()}, sort_keys=True).encode("ascii") + b"\n"

    def verify(self, key: HybridVerifyKey, where: str) -> None:
        """Raise :class:`BadSignatureError` unless ``key`` signed this head file."""
        key.verify(DOMAIN_HEAD_FILE, canonical_json(self.body()), self.signature, where=where, what=f"{where} signature")

    @classmethod
    def signed(cls, seq: int, sha256: str, key: AuditKey, now: datetime) -> HeadFile:
        key_id, time = key.certificate.key_id, format_time(now)
        body = {"seq": seq, "sha256": sha256, "key_id": key_id, "time": time}
        return cls(seq, sha256, key_id, time, key.signing.sign(DOMAIN_HEAD_FILE, canonical_json(body)))

    @classmethod
    def parse(cls, data: bytes, where: str) -> HeadFile:
        """Raise :class:`MalformedError` for anything but a signed head file."""
        try:
            doc = load_json(data.decode("utf-8"), floats=False)
        except ValueError:
            raise MalformedError(where, "not JSON") from None
        if not isinstance(doc, dict) or set(doc) != HEAD_FILE_FIELDS:
            raise MalformedError(where, f"not a signed head file (fields {', '.join(sorted(HEAD_FILE_FIELDS))})")
        if not is_int(doc["seq"], 1) or not all(isinstance(doc[k], str) for k in ("sha256", "key_id", "time")):
            raise MalformedError(where, "seq must be a line number, sha256, key_id and time strings")
        seq, sha256, key_id, time = doc["seq"], str(doc["sha256"]), str(doc["key_id"]), str(doc["time"])
        parse_time(time, where=where)
        return cls(seq, sha256, key_id, time, HybridSignature.from_dict(doc["signature"], where=where))
