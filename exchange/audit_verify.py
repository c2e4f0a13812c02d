"""Checking a lab's audit log end to end, and saying exactly where it breaks.

Every line is checked on its own (well-formed canonical record, sequence number one more than
the line before, ``prev`` equal to the SHA-256 of the line before), every ``audit_key`` record's
certificate against the lab's own identity cards, and every ``head`` signature against a key so
certified earlier in the chain. ``head.json`` must name a line that is still in the log. The
report lists every problem with the line that was altered; a torn last line, a missing tail and
an unsigned tail are each reported as what they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ballistics.json_input import load_json
from exchange.audit import (
    DOMAIN_HEAD,
    GENESIS,
    HEAD_NAME,
    HEX64,
    AuditLog,
    head_message,
    line_hash,
    parse_record,
)
from exchange.audit_events import AUDIT_KEY, HEAD
from exchange.audit_key import AuditCertificate, own_cards
from exchange.card import KeyCard
from exchange.errors import AuditLogError, AuditTamperedError, BadSignatureError, MalformedError
from exchange.signing import HybridSignature, HybridVerifyKey


@dataclass(frozen=True)
class Problem:
    """``line`` is the line found altered (or, for a cut, the first line that is missing)."""

    line: int
    kind: str  # torn, malformed_line, hash_mismatch, sequence_gap, sequence_order, bad_signature, unknown_signer, truncated
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "kind": self.kind, "message": self.message}


@dataclass(frozen=True)
class AuditReport:
    path: str
    lines: int
    events: int
    heads: int
    signed_through: int
    last_sha256: str | None
    signers: tuple[str, ...]
    problems: tuple[Problem, ...]

    @property
    def intact(self) -> bool:
        return not self.problems

    @property
    def unsigned_tail(self) -> int:
        """Lines after the last verified head: not yet covered by any signature."""
        return self.lines - self.signed_through

    @property
    def first_break(self) -> Problem | None:
        return min(self.problems, key=lambda p: p.line) if self.problems else None

    def to_dict(self) -> dict[str, Any]:
        first = self.first_break
        return {
            "path": self.path,
            "status": "intact" if self.intact else "broken",
            "lines": self.lines,
            "events": self.events,
            "heads": self.heads,
            "signed_through_line": self.signed_through,
            "unsigned_tail": self.unsigned_tail,
            "last_sha256": self.last_sha256,
            "signers": list(self.signers),
            "first_break": first.to_dict() if first else None,
            "problems": [p.to_dict() for p in self.problems],
        }

    def raise_if_broken(self) -> None:
        first = self.first_break
        if first is not None:
            more = f" (and {len(self.problems) - 1} more problems)" if len(self.problems) > 1 else ""
            raise AuditTamperedError(self.path, f"line {first.line}: {first.kind}: {first.message}{more}")


def verify_log(home: Path) -> AuditReport:
    """Check the whole chain; raises :class:`AuditLogError` only when there is no log to check."""
    log = AuditLog(home)
    data = log.read()
    pieces = data.split(b"\n")
    lines, torn = pieces[:-1], pieces[-1]
    checker = _Chain(own_cards(home))
    for number, raw in enumerate(lines, 1):
        checker.check(number, raw)
    if lines and checker.records == 0:
        raise AuditLogError(log.path, "no line is an audit record: this is not an audit log")
    problems = checker.blamed()
    if torn:
        problems.append(Problem(len(lines) + 1, "torn", f"{len(torn)} bytes without a final newline: the last write was cut short"))
    head_problem = _check_head_file(log.directory / HEAD_NAME, lines, signed=checker.signed_through > 0)
    if head_problem is not None:
        problems.append(head_problem)
    return AuditReport(
        str(log.path),
        len(lines),
        checker.records - checker.heads,
        checker.heads,
        checker.signed_through,
        line_hash(lines[-1]) if lines else None,
        tuple(checker.keys),
        tuple(sorted(problems, key=lambda p: (p.line, p.kind))),
    )


class _Chain:
    """Walks the lines in order, keeping what the next line must agree with."""

    def __init__(self, cards: dict[str, KeyCard]) -> None:
        self.cards = cards
        self.keys: dict[str, HybridVerifyKey] = {}
        self.prev, self.expected_seq = GENESIS, 1
        self.records = self.heads = self.signed_through = 0
        self.mismatches: set[int] = set()
        self.problems: list[Problem] = []

    def check(self, number: int, raw: bytes) -> None:
        record = parse_record(raw)
        if isinstance(record, str):
            self.problems.append(Problem(number, "malformed_line", record))
        else:
            self.records += 1
            if record["prev"] != self.prev:
                self.mismatches.add(number)
            if record["seq"] != self.expected_seq:
                kind = "sequence_gap" if record["seq"] > self.expected_seq else "sequence_order"
                self.problems.append(
                    Problem(
                        number,
                        kind,
                        f"sequence number {record['seq']} where {self.expected_seq} was expected: lines are missing or out of order here",
                    )
                )
            if record["type"] == AUDIT_KEY:
                self._certificate(number, record["details"])
            elif record["type"] == HEAD:
                self.heads += 1
                self._head(number, record)
        self.prev = line_hash(raw)
        self.expected_seq = (record["seq"] if isinstance(record, dict) else self.expected_seq) + 1

    def _certificate(self, number: int, details: dict[str, Any]) -> None:
        where = f"line {number}"
        try:
            certificate = AuditCertificate.from_dict(details.get("certificate"), where=where)
            card = self.cards.get(certificate.identity_key_id)
            if card is None:
                self.problems.append(
                    Problem(
                        number,
                        "unknown_signer",
                        f"audit key certified by identity {certificate.identity_key_id[:16]}, which is not one of this lab's keys",
                    )
                )
                return
            certificate.verify(card, where=where)
        except BadSignatureError as exc:
            self.problems.append(Problem(number, "bad_signature", exc.reason))
            return
        except (MalformedError, ValueError) as exc:
            self.problems.append(Problem(number, "malformed_line", getattr(exc, "reason", str(exc))))
            return
        if details.get("key_id") != certificate.key_id:
            self.problems.append(Problem(number, "malformed_line", "key_id is not the SHA-256 of the certificate body"))
            return
        self.keys[certificate.key_id] = certificate.verify_key

    def _head(self, number: int, record: dict[str, Any]) -> None:
        details = record["details"]
        key_id = details.get("key_id")
        if set(details) != {"key_id", "signature"} or not isinstance(key_id, str) or not HEX64.fullmatch(key_id):
            self.problems.append(Problem(number, "malformed_line", "a head has exactly the details key_id and signature"))
            return
        key = self.keys.get(key_id)
        if key is None:
            self.problems.append(
                Problem(
                    number,
                    "unknown_signer",
                    f"head signed by audit key {key_id[:16]}, which no earlier audit_key record of this lab certifies",
                )
            )
            return
        try:
            signature = HybridSignature.from_dict(details["signature"], where=f"line {number}")
            key.verify(DOMAIN_HEAD, head_message(record), signature, where=f"line {number}", what="head signature")
        except BadSignatureError as exc:
            self.problems.append(Problem(number, "bad_signature", exc.reason))
            return
        except MalformedError as exc:
            self.problems.append(Problem(number, "bad_signature", f"unreadable head signature: {exc.reason}"))
            return
        self.signed_through = number

    def blamed(self) -> list[Problem]:
        """Turn each broken link into the line that was altered.

        A changed line makes the *next* line's ``prev`` wrong; a changed ``prev`` field makes its
        own line wrong and also changes that line's hash, so the line after disagrees as well.
        Hence: a mismatch at ``k`` blames ``k`` itself when ``k`` has another problem or ``k+1``
        also mismatches, and ``k-1`` otherwise.
        """
        flagged = {p.line for p in self.problems}
        problems = list(self.problems)
        for k in sorted(self.mismatches):
            if k in flagged or k + 1 in self.mismatches:
                problems.append(
                    Problem(
                        k,
                        "hash_mismatch",
                        f"prev does not match the SHA-256 of line {k - 1}: line {k} was altered or lines before it were removed",
                    )
                )
            else:
                problems.append(
                    Problem(k - 1, "hash_mismatch", f"line {k} records a different SHA-256 for line {k - 1}: line {k - 1} was altered")
                )
        return problems


def _check_head_file(path: Path, lines: list[bytes], *, signed: bool) -> Problem | None:
    """Cutting whole lines off the end leaves a valid chain; ``head.json`` catches it."""
    end = len(lines) + 1
    try:
        doc = load_json(path.read_bytes().decode("utf-8"), floats=False)
        seq, sha256 = doc["seq"], doc["sha256"]
    except FileNotFoundError:
        return Problem(end, "truncated", f"{HEAD_NAME} is missing although the log has signed heads") if signed else None
    except (OSError, ValueError, KeyError, TypeError):
        return Problem(end, "truncated", f"{HEAD_NAME} is unreadable")
    if type(seq) is not int or seq < 1 or not isinstance(sha256, str):
        return Problem(end, "truncated", f"{HEAD_NAME} does not name a line")
    if seq > len(lines):
        return Problem(end, "truncated", f"the log ends at line {len(lines)} but the newest signed head is line {seq}: lines were cut off")
    if line_hash(lines[seq - 1]) != sha256:
        return Problem(seq, "truncated", f"line {seq} is not the signed head recorded in {HEAD_NAME}: the log was cut and rewritten")
    return None
