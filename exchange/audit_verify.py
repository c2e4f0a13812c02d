"""Checking a lab's audit log end to end, and saying exactly where it breaks.

Every line is checked on its own (well-formed canonical record, sequence number one more than
the line before, ``prev`` equal to the SHA-256 of the line before), every ``audit_key`` record's
certificate against the lab's identity chain (the current card and the predecessors that
countersigned it: :func:`exchange.audit_key.identity_chain`), in the chain's order, and every
``head`` signature against a key so certified earlier in the chain. ``head.json`` must be signed
by such a key and name a line that is still in the log. Lines after the last valid head are an
**unsigned tail**: nothing proves them, so they are a problem unless the caller accepts them.
The report says how far the log is proven and by which key; an auditor can pin the identity
it expects (``expect_fingerprint``). Every problem names the line that was altered.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from exchange.audit_key import AuditCertificate, identity_chain
from exchange.audit_seal import HeadFile
from exchange.card import KeyCard, format_fingerprint
from exchange.errors import AuditLogError, AuditTamperedError, BadSignatureError, MalformedError
from exchange.signing import HybridSignature, HybridVerifyKey


@dataclass(frozen=True)
class Problem:
    """``line`` is the line found altered (or, for a cut, the first line that is missing)."""

    line: int  # 0: the log as a whole (its identity)
    #: torn, malformed_line, hash_mismatch, sequence_gap, sequence_order, bad_signature, unknown_signer,
    #: superseded_signer, stale_identity, unexpected_identity, head_file, truncated, unsigned_tail
    kind: str
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
    #: The last valid head's audit key, the identity that certified it and its lab.
    proven_by: dict[str, str] | None = None
    #: The lab's identity chain, newest first (key ids).
    identity_chain: tuple[str, ...] = ()

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
            "proven_by": self.proven_by,
            "unsigned_tail": self.unsigned_tail,
            "identity_chain": list(self.identity_chain),
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


def verify_log(home: Path, *, expect_fingerprint: bytes | None = None, accept_unsigned_tail: bool = False) -> AuditReport:
    """Check the whole chain; raises :class:`AuditLogError` only when there is no log to check.

    ``expect_fingerprint``: the identity key an auditor obtained independently; the lab's identity
    chain must hold it. ``accept_unsigned_tail``: lines after the last valid head are reported
    (``unsigned_tail``) but not counted as a problem.
    """
    log = AuditLog(home)
    data = log.read()
    pieces = data.split(b"\n")
    lines, torn = pieces[:-1], pieces[-1]
    chain = identity_chain(home)
    checker = _Chain(chain)
    for number, raw in enumerate(lines, 1):
        checker.check(number, raw)
    if lines and checker.records == 0:
        raise AuditLogError(log.path, "no line is an audit record: this is not an audit log")
    problems = checker.blamed() + checker.identity_problems(expect_fingerprint)
    if torn:
        problems.append(Problem(len(lines) + 1, "torn", f"{len(torn)} bytes without a final newline: the last write was cut short"))
    head_problem = _check_head_file(log.directory / HEAD_NAME, lines, checker.keys, signed=checker.signed_through > 0)
    if head_problem is not None:
        problems.append(head_problem)
    # a broken line or a cut end inside the tail names what happened there already
    tail_explained = any(p.line > checker.signed_through and p.kind != "head_file" for p in problems)
    if checker.signed_through < len(lines) and not accept_unsigned_tail and not tail_explained:
        first = checker.signed_through + 1
        problems.append(
            Problem(
                first,
                "unsigned_tail",
                f"lines {first}..{len(lines)} are not covered by any valid head signature: nothing proves them "
                "(appended without the audit key, a command that did not finish, or a lab without an audit key); "
                "accept them explicitly with --accept-unsigned-tail",
            )
        )
    return AuditReport(
        str(log.path),
        len(lines),
        checker.records - checker.heads,
        checker.heads,
        checker.signed_through,
        line_hash(lines[-1]) if lines else None,
        tuple(checker.keys),
        tuple(sorted(problems, key=lambda p: (p.line, p.kind))),
        checker.proven_by,
        tuple(card.key_id for card in chain),
    )


class _Chain:
    """Walks the lines in order, keeping what the next line must agree with."""

    def __init__(self, chain: tuple[KeyCard, ...]) -> None:
        self.chain = chain
        self.cards = {card.key_id: card for card in chain}
        #: A card's place in the chain, oldest 0: certificates must not go back to an older identity.
        self.rank = {card.key_id: len(chain) - 1 - index for index, card in enumerate(chain)}
        self.newest_rank = -1
        self.last_certificate: tuple[int, str] | None = None  # (line, identity key id)
        self.keys: dict[str, HybridVerifyKey] = {}
        self.certifiers: dict[str, str] = {}  # audit key id -> identity key id
        self.proven_by: dict[str, str] | None = None
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
                        f"audit key certified by identity {certificate.identity_key_id[:16]}, which is neither this lab's "
                        "identity nor a predecessor that countersigned it",
                    )
                )
                return
            certificate.verify(card, where=where)
            if self.rank[card.key_id] < self.newest_rank:
                self.problems.append(
                    Problem(
                        number,
                        "superseded_signer",
                        f"audit key certified by identity {card.key_id[:16]} after a newer identity of the lab certified one: "
                        "a superseded identity key certifies nothing",
                    )
                )
                return
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
        self.certifiers[certificate.key_id] = card.key_id
        self.newest_rank = self.rank[card.key_id]
        self.last_certificate = (number, card.key_id)

    def identity_problems(self, expect_fingerprint: bytes | None) -> list[Problem]:
        """The log's certificates must reach the lab's current identity; an expected identity must be in the chain."""
        problems = []
        if self.last_certificate is not None and self.chain and self.last_certificate[1] != self.chain[0].key_id:
            line, identity = self.last_certificate
            problems.append(
                Problem(
                    line,
                    "stale_identity",
                    f"the newest audit key is certified by identity {identity[:16]}, not by the lab's current identity "
                    f"{self.chain[0].key_id[:16]}: the log was not continued after the rotation, or was rewritten",
                )
            )
        if expect_fingerprint is not None and expect_fingerprint.hex() not in self.cards:
            held = ", ".join(k[:16] for k in self.cards) or "none"
            problems.append(
                Problem(
                    0,
                    "unexpected_identity",
                    f"the expected identity {format_fingerprint(expect_fingerprint)} is not in this lab's identity chain "
                    f"({held}): this log is not proven by the lab you expect, or its keys were replaced",
                )
            )
        return problems

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
        identity = self.cards[self.certifiers[key_id]]
        self.proven_by = {"audit_key": key_id, "identity": identity.key_id, "lab": identity.lab.id}

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


def _check_head_file(path: Path, lines: list[bytes], keys: dict[str, HybridVerifyKey], *, signed: bool) -> Problem | None:
    """Cutting whole lines off the end leaves a valid chain; the signed ``head.json`` catches it."""
    end = len(lines) + 1
    try:
        head = HeadFile.parse(path.read_bytes(), HEAD_NAME)
    except FileNotFoundError:
        return Problem(end, "truncated", f"{HEAD_NAME} is missing although the log has signed heads") if signed else None
    except OSError:
        return Problem(end, "head_file", f"{HEAD_NAME} is unreadable")
    except MalformedError as exc:
        return Problem(end, "head_file", f"{HEAD_NAME} is not a signed head file: {exc.reason}")
    key = keys.get(head.key_id)
    if key is None:
        return Problem(end, "head_file", f"{HEAD_NAME} is signed by audit key {head.key_id[:16]}, which the log does not certify")
    try:
        head.verify(key, HEAD_NAME)
    except BadSignatureError as exc:
        return Problem(end, "head_file", f"{HEAD_NAME} was altered: {exc.reason}")
    if head.seq > len(lines):
        return Problem(
            end, "truncated", f"the log ends at line {len(lines)} but the newest signed head is line {head.seq}: lines were cut off"
        )
    if line_hash(lines[head.seq - 1]) != head.sha256:
        return Problem(
            head.seq, "truncated", f"line {head.seq} is not the signed head recorded in {HEAD_NAME}: the log was cut and rewritten"
        )
    return None
