"""The lab's tamper-evident audit log: hash-chained JSON lines with signed heads.

``<home>/audit/audit.jsonl`` holds one canonical JSON record per line; each record carries the
SHA-256 of the line before it, so changing, dropping or reordering any line breaks the chain
at that point. At the end of each command that appended events a ``head`` record signed with
the lab's audit key (:mod:`exchange.audit_key`) closes the chain, and ``head.json`` beside the
log, signed too, remembers the newest head so that cutting lines off the end is noticed. A head
is signed only over lines this lab's commands wrote (line MACs, :mod:`exchange.audit_seal`), so
a line appended by someone without the audit key is never sealed by the next command. The exact
format, the event types and the threat model are in ``docs/audit.md``; checking a log is
:mod:`exchange.audit_verify`.

Appends are serialised by ``fcntl.flock`` on the log itself, with the previous line read under
the lock, and each line goes out in a single ``write`` followed by ``fsync``. A crash can still
leave a torn last line; the next append cuts it off under the lock and records that it did.
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import os
import re
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ballistics.clock import format_time, now_utc
from ballistics.errors import UsageError
from ballistics.json_input import load_json
from exchange.audit_events import AUDIT_KEY, AUDIT_KEY_RETIRED, HEAD, LOG_TYPES, REPAIR, TAIL_ACCEPTED
from exchange.audit_key import AuditKey, audit_key_path, create_audit_key, load_audit_key, save_audit_key
from exchange.audit_seal import HeadFile, line_mac, line_mac_key, mac_holds
from exchange.canonical import canonical_json, parse_time
from exchange.errors import AuditLogError, AuditTamperedError, MalformedError, MissingIdentityError
from exchange.files import ensure_private_dir, write_atomic
from exchange.keys import Identity, load_card

LOG_NAME = "audit.jsonl"
HEAD_NAME = "head.json"
RECORD_VERSION = 1
GENESIS = "0" * 64
DOMAIN_HEAD = b"ballistics audit head v1"
RECORD_FIELDS = {"v", "seq", "time", "type", "actor", "details", "prev"}
#: A line written while the lab holds an audit key also carries its line MAC (exchange/audit_seal.py).
MAC_FIELD = "mac"
EVENT_TYPE = re.compile(r"[a-z][a-z0-9_]{0,39}")
HEX64 = re.compile(r"[0-9a-f]{64}")
BULKY_DETAILS = {"signature", "certificate"}


@dataclass(frozen=True)
class Actor:
    """Who acted: the lab (None before ``keys init``), the OS user, the examiner when named."""

    lab: str | None
    user: str
    host: str
    examiner: str | None = None

    @classmethod
    def current(cls, home: Path, examiner: str | None = None) -> Actor:
        try:
            lab: str | None = load_card(home).lab.id
        except MissingIdentityError:
            lab = None
        return cls(lab, _os_user(), socket.gethostname(), examiner)

    def to_dict(self) -> dict[str, str | None]:
        return {"lab": self.lab, "user": self.user, "host": self.host, "examiner": self.examiner}


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no passwd entry (containers): the uid still identifies the account
        return f"uid:{os.getuid()}"


@dataclass(frozen=True)
class Entry:
    """One line of the log: its number, exact bytes and parsed record."""

    line: int
    raw: bytes
    record: dict[str, Any]

    @property
    def sha256(self) -> str:
        return line_hash(self.raw)

    @property
    def seq(self) -> int:
        return self.record["seq"]

    @property
    def type(self) -> str:
        return self.record["type"]

    @property
    def time(self) -> datetime:
        return parse_time(self.record["time"], where=f"line {self.line}")

    def to_dict(self) -> dict[str, Any]:
        """The record for display: signatures and certificates left out (their key ids stay)."""
        details = {k: v for k, v in self.record["details"].items() if k not in BULKY_DETAILS}
        shown = {k: v for k, v in self.record.items() if k not in ("details", MAC_FIELD)}
        return {"line": self.line, **shown, "details": details, "sha256": self.sha256}


def parse_since(text: str) -> datetime:
    """``--since``: a UTC date (midnight) or a full RFC 3339 UTC time."""
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        pass
    try:
        return parse_time(text, where="--since")
    except MalformedError:
        raise UsageError("--since", f"{text[:40]!r} is neither YYYY-MM-DD nor YYYY-MM-DDTHH:MM:SSZ") from None


def line_hash(raw: bytes) -> str:
    """SHA-256 of a line's bytes, without its newline: what the next line's ``prev`` holds."""
    return hashlib.sha256(raw).hexdigest()


def encode_record(record: Mapping[str, Any]) -> bytes:
    """Canonical JSON (sorted keys, no spaces, ASCII with \\u escapes); floats are refused."""
    _check_value(record, "record")
    return canonical_json(record)


def head_message(record: Mapping[str, Any]) -> bytes:
    """What a head signature covers: the head record without its ``details.signature``."""
    details = {k: v for k, v in record["details"].items() if k != "signature"}
    return canonical_json({**record, "details": details})


def _check_value(value: object, where: str) -> None:
    """Only types every JSON implementation encodes identically, so any auditor reproduces the hash."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise AuditLogError(where, f"event detail keys must be strings, not {type(key).__name__}")
            _check_value(item, f"{where}.{key}")
    elif isinstance(value, list):
        for item in value:
            _check_value(item, where)
    elif not (value is None or isinstance(value, (str, bool, int))):
        raise AuditLogError(where, f"event details hold strings, integers, booleans, null, lists and objects, not {type(value).__name__}")


class AuditLog:
    """Append events and sign the head; see :func:`audit_session` for the usual pattern."""

    def __init__(self, home: Path, actor: Actor | None = None) -> None:
        self.home = Path(home)
        self.directory = self.home / "audit"
        self.path = self.directory / LOG_NAME
        self.head_path = self.directory / HEAD_NAME
        self._actor = actor
        self.appended = 0
        self._key_cache: tuple[tuple[int, int, int] | None, AuditKey | None] | None = None

    @property
    def actor(self) -> Actor:
        if self._actor is None:
            self._actor = Actor.current(self.home)
        return self._actor

    def append(self, event_type: str, details: Mapping[str, Any], *, actor: Actor | None = None, now: datetime | None = None) -> Entry:
        """Chain one event after the current last line (under the lock) and return it."""
        if not EVENT_TYPE.fullmatch(event_type) or event_type in LOG_TYPES:
            raise AuditLogError(event_type, "event types are 1-40 of a-z 0-9 _ (starting with a letter), other than the log's own")
        with self._locked() as fd:
            last = self._tail(fd, now)
            entry = self._write(fd, last, event_type, dict(details), actor or self.actor, now)
        self.appended += 1
        return entry

    def sign_head(self, *, now: datetime | None = None) -> Entry | None:
        """Close the chain with a signed head; None when there is nothing new or no audit key.

        Refuses (:class:`AuditTamperedError`, exit 4) to seal lines since the last head that this
        lab's commands did not write (:meth:`_check_unsealed`).
        """
        with self._locked() as fd:
            last = self._tail(fd, now)
            key = self._key()
            if last is None or last.type == HEAD or key is None:
                return None
            self._check_unsealed(fd, key)
            return self._write_head(fd, last, key, now)

    def accept_tail(self, *, now: datetime | None = None) -> Entry | None:
        """Put on record that the lines since the last head are accepted unproven, and sign over them.

        The explicit step (``audit verify --accept-unsigned-tail``) after which commands sign
        heads again; a ``tail_accepted`` record names the lines. None when there is nothing to
        accept or no audit key to sign with.
        """
        with self._locked() as fd:
            last = self._tail(fd, now)
            key = self._key()
            if last is None or key is None:
                return None
            _, _, unsealed = _since_last_head(fd, os.fstat(fd).st_size, self.path)
            if not unsealed:
                return None
            details = {"from_line": unsealed[0].line, "to_line": unsealed[-1].line, "last_sha256": unsealed[-1].sha256}
            accepted = self._write(fd, last, TAIL_ACCEPTED, details, self.actor, now)
            return self._write_head(fd, accepted, key, now)

    def certify_key(self, identity: Identity, *, now: datetime | None = None) -> AuditKey | None:
        """Make sure the audit key is certified by ``identity``'s current card, creating one if not.

        Called whenever the identity is unlocked (``keys init``, ``keys rotate``, export, import),
        so a lab gets an audit key without an extra step and a rotation replaces it. The outgoing
        key first signs a head over its lines, whose MACs only it can check. An identity that is
        no longer the lab's current one (rotated meanwhile by another command) certifies nothing.
        """
        with self._locked() as fd:
            key = self._key()
            if key is not None and key.certificate.identity_key_id == identity.card.key_id:
                return key
            if load_card(self.home).key_id != identity.card.key_id:
                return key
            last = self._tail(fd, now)
            if key is not None and last is not None and last.type != HEAD:
                self._check_unsealed(fd, key)
                last = self._write_head(fd, last, key, now)
            key = create_audit_key(identity, now or now_utc())
            save_audit_key(self.home, key)
            certificate = key.certificate
            details = {"key_id": certificate.key_id, "identity_key_id": certificate.identity_key_id, "certificate": certificate.to_dict()}
            self._write(fd, last, AUDIT_KEY, details, self.actor, now)
            self.appended += 1
            return key

    def retire_key(self, reason: str, *, now: datetime | None = None) -> None:
        """Record the retirement, sign a last head with the key, then delete it (on revocation)."""
        with self._locked() as fd:
            key = self._key()
            if key is None:
                return
            last = self._tail(fd, now)
            if last is not None and last.type != HEAD:
                self._check_unsealed(fd, key)
            last = self._write(fd, last, AUDIT_KEY_RETIRED, {"key_id": key.certificate.key_id, "reason": reason}, self.actor, now)
            self._write_head(fd, last, key, now)
            audit_key_path(self.home).unlink()

    def _key(self) -> AuditKey | None:
        """The audit key, read again only when its file changed (every line's MAC needs it)."""
        try:
            info = audit_key_path(self.home).stat()
            stamp: tuple[int, int, int] | None = (info.st_ino, info.st_mtime_ns, info.st_size)
        except FileNotFoundError:
            stamp = None
        if self._key_cache is None or self._key_cache[0] != stamp:
            self._key_cache = (stamp, load_audit_key(self.home) if stamp is not None else None)
        return self._key_cache[1]

    def _check_unsealed(self, fd: int, key: AuditKey) -> None:
        """Refuse to sign over lines since the last head that this lab's commands did not write.

        A line passes when it carries a valid MAC of ``key``, or was written while the lab had no
        audit key: before any head (and before this key's certificate) or after an
        ``audit_key_retired`` record and its head. The key itself must be known to the log: the
        last head is signed by it, or its certificate follows that head.
        """
        head, before, unsealed = _since_last_head(fd, os.fstat(fd).st_size, self.path)
        keyless = head is None or before == AUDIT_KEY_RETIRED
        known = head is not None and head["details"].get("key_id") == key.certificate.key_id
        mac_key = line_mac_key(key)
        foreign = []
        for entry in unsealed:
            if entry.type == AUDIT_KEY and entry.record["details"].get("key_id") == key.certificate.key_id:
                keyless, known = False, True
            if not (mac_holds(mac_key, entry.record) or (keyless and MAC_FIELD not in entry.record)):
                foreign.append(entry.line)
        if not known:
            raise AuditTamperedError(
                self.path,
                f"the audit key {key.certificate.key_id[:16]} neither signed the last head nor is certified after it: "
                "this is not the log the key belongs to; run: ballistics audit verify",
            )
        if foreign:
            raise AuditTamperedError(
                self.path,
                f"{len(foreign)} lines since the last signed head (lines {foreign[0]}..{foreign[-1]}) were not written by this "
                "lab's commands (no valid line MAC); nothing more is signed until they are examined: run ballistics audit verify, "
                "and ballistics audit verify --accept-unsigned-tail to accept them on record",
            )

    def read(self) -> bytes:
        """The whole log, read under a shared lock so that no append is seen half done."""
        with self._locked(shared=True) as fd:
            return os.pread(fd, os.fstat(fd).st_size, 0)

    def entries(self) -> list[Entry]:
        """Every complete line, parsed; a torn last line is left out (``audit verify`` reports it)."""
        lines = self.read().split(b"\n")[:-1]
        entries = []
        for number, raw in enumerate(lines, 1):
            record = parse_record(raw)
            if isinstance(record, str):
                raise AuditTamperedError(self.path, f"line {number}: {record}; run: ballistics audit verify")
            entries.append(Entry(number, raw, record))
        return entries

    @contextmanager
    def _locked(self, shared: bool = False) -> Iterator[int]:
        if shared and not self.path.exists():
            raise AuditLogError(self.path, "no audit log here yet")
        ensure_private_dir(self.directory)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise AuditLogError(self.path, f"cannot open the audit log: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)  # closing releases the lock

    def _tail(self, fd: int, now: datetime | None) -> Entry | None:
        """The last complete line, after cutting off (and recording) a torn one."""
        size = os.fstat(fd).st_size
        last_raw, torn = _read_tail(fd, size)
        last = None
        if last_raw is not None:
            record = parse_record(last_raw)
            if isinstance(record, str):
                raise AuditTamperedError(self.path, f"the last line is not an audit record ({record}); run: ballistics audit verify")
            last = Entry(record["seq"], last_raw, record)
        if torn:
            os.ftruncate(fd, size - len(torn))
            repair = {"torn_bytes": len(torn), "torn_sha256": line_hash(torn), "offset": size - len(torn)}
            last = self._write(fd, last, REPAIR, repair, self.actor, now)
        return last

    def _write(self, fd: int, last: Entry | None, event_type: str, details: dict[str, Any], actor: Actor, now: datetime | None) -> Entry:
        seq = 1 if last is None else last.seq + 1
        record: dict[str, Any] = {
            "v": RECORD_VERSION,
            "seq": seq,
            "time": format_time(now or now_utc()),
            "type": event_type,
            "actor": actor.to_dict(),
            "details": details,
            "prev": GENESIS if last is None else last.sha256,
        }
        key = self._key()
        if key is not None:
            record[MAC_FIELD] = line_mac(line_mac_key(key), record)
        raw = encode_record(record)
        _write_all(fd, raw + b"\n")
        os.fsync(fd)
        return Entry(seq, raw, record)

    def _write_head(self, fd: int, last: Entry, key: AuditKey, now: datetime | None) -> Entry:
        unsigned: dict[str, Any] = {
            "v": RECORD_VERSION,
            "seq": last.seq + 1,
            "time": format_time(now or now_utc()),
            "type": HEAD,
            "actor": self.actor.to_dict(),
            "details": {"key_id": key.certificate.key_id},
            "prev": last.sha256,
        }
        signature = key.signing.sign(DOMAIN_HEAD, head_message(unsigned))
        record = {**unsigned, "details": {**unsigned["details"], "signature": signature.to_dict()}}
        raw = encode_record(record)
        _write_all(fd, raw + b"\n")
        os.fsync(fd)
        entry = Entry(last.seq + 1, raw, record)
        write_atomic(self.head_path, HeadFile.signed(entry.seq, entry.sha256, key, now or now_utc()).to_bytes())
        return entry


@contextmanager
def audit_session(home: Path, actor: Actor | None = None) -> Iterator[AuditLog]:
    """``with audit_session(home) as log: log.append(...)``; the head is signed on the way out.

    The head is signed even when the block raises, so a rejection recorded just before the
    error propagates is covered like any other event.
    """
    log = AuditLog(home, actor)
    try:
        yield log
    finally:
        if log.appended:
            log.sign_head()


def parse_record(raw: bytes) -> dict[str, Any] | str:
    """The record on one line, or a one-line reason why it is not a well-formed audit record."""
    try:
        record = load_json(raw.decode("utf-8"), floats=False)
    except (UnicodeDecodeError, ValueError):
        return "not valid JSON"
    if not isinstance(record, dict) or set(record) - {MAC_FIELD} != RECORD_FIELDS:
        return f"a record has exactly the fields {', '.join(sorted(RECORD_FIELDS))} (and mac)"
    if MAC_FIELD in record and not (isinstance(record[MAC_FIELD], str) and HEX64.fullmatch(record[MAC_FIELD])):
        return "mac is not a lower-case hex HMAC-SHA256"
    if record["v"] != RECORD_VERSION or type(record["seq"]) is not int or record["seq"] < 1:
        return "bad version or sequence number"
    if not isinstance(record["type"], str) or not EVENT_TYPE.fullmatch(record["type"]):
        return "bad event type"
    if not isinstance(record["prev"], str) or not HEX64.fullmatch(record["prev"]):
        return "prev is not a lower-case hex SHA-256"
    if not isinstance(record["actor"], dict) or not isinstance(record["details"], dict):
        return "actor and details must be objects"
    try:
        parse_time(record["time"], where="record")
        canonical = encode_record(record)
    except MalformedError:
        return "time is not YYYY-MM-DDTHH:MM:SSZ, or a value is not canonical"
    if canonical != raw:
        return "not in canonical form"
    return record


def _read_tail(fd: int, size: int) -> tuple[bytes | None, bytes]:
    """(last complete line or None, bytes after the last newline), reading back from the end."""
    span = 64 * 1024
    while True:
        start = max(0, size - span)
        data = os.pread(fd, size - start, start)
        cut = data.rfind(b"\n")
        begin = data.rfind(b"\n", 0, max(cut, 0))
        if start > 0 and (cut < 0 or begin < 0):
            span *= 4
            continue
        return (data[begin + 1 : cut] if cut >= 0 else None), data[cut + 1 :]


def _since_last_head(fd: int, size: int, path: Path) -> tuple[dict[str, Any] | None, str | None, list[Entry]]:
    """(the last head record or None, the type of the line before it, the complete lines after it).

    Reads back from the end, in growing spans, only as far as the last head.
    """
    span = 64 * 1024
    while True:
        start = max(0, size - span)
        lines = os.pread(fd, size - start, start).split(b"\n")[:-1]
        if start > 0:
            lines = lines[1:]  # the first piece may begin inside a line
        after: list[Entry] = []
        for index in range(len(lines) - 1, -1, -1):
            record = parse_record(lines[index])
            if isinstance(record, str):
                raise AuditTamperedError(path, f"a line near the end is not an audit record ({record}); run: ballistics audit verify")
            if record["type"] == HEAD and (index > 0 or start == 0):
                before = parse_record(lines[index - 1]) if index > 0 else None
                return record, before["type"] if isinstance(before, dict) else None, after[::-1]
            if record["type"] == HEAD:
                break  # the line before the head lies further back
            after.append(Entry(record["seq"], lines[index], record))
        else:
            if start == 0:
                return None, None, after[::-1]
        span *= 4


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
