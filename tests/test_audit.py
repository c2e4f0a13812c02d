"""The audit log: chain round trips, every kind of tampering named at the right line, forged and
foreign signatures, crash repair, concurrent writers, and the events the CLI commands write."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import re
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from exchange_support import FAST, PASSPHRASE, T0, LabHome, make_lab

import cli
from exchange.audit import DOMAIN_HEAD, AuditLog, audit_session, head_message
from exchange.audit_key import AuditCertificate, create_audit_key
from exchange.audit_verify import verify_log
from exchange.canonical import canonical_json
from exchange.errors import AuditLogError, AuditTamperedError
from exchange.keys import KeyMaterial, load_identity, rotate_identity

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data"
A, B = "a" * 64, "b" * 64


@pytest.fixture(scope="session")
def labs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, LabHome]:
    """Two labs with real keys and certified audit keys, made once and copied per test."""
    root = tmp_path_factory.mktemp("audit-labs")
    made = {lab_id: make_lab(root, lab_id, country) for lab_id, country in (("UK-FSL", "GB"), ("FR-IRCGN", "FR"))}
    for lab in made.values():
        AuditLog(lab.home).certify_key(lab.identity, now=T0)
    return made


def copy_lab(lab: LabHome, target: Path) -> Path:
    shutil.copytree(lab.home, target)
    return target


def small_log(home: Path) -> Path:
    """audit_key (from the fixture), two events, a signed head: four lines."""
    with audit_session(home) as log:
        log.append(
            "comparison",
            {
                "reference": {"path": "K1.x3p", "sha256": A},
                "questioned": {"path": "Q1.x3p", "sha256": B},
                "decision": "identification",
                "cmc": 14,
            },
            now=T0,
        )
        log.append("trust_added", {"lab": "FR-IRCGN", "key_id": B, "via": "fingerprint"}, now=T0)
    return home / "audit" / "audit.jsonl"


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def test_round_trip_chains_every_line_to_the_one_before(labs: dict[str, LabHome], tmp_path: Path) -> None:
    home = copy_lab(labs["UK-FSL"], tmp_path / "uk")
    path = small_log(home)
    lines = lines_of(path)
    records = [json.loads(line) for line in lines]
    assert [r["type"] for r in records] == ["audit_key", "comparison", "trust_added", "head"]
    assert [r["seq"] for r in records] == [1, 2, 3, 4]
    assert records[0]["prev"] == "0" * 64
    for before, line in zip(lines, records[1:], strict=False):
        assert line["prev"] == hashlib.sha256(before).hexdigest()
    assert all(canonical_json(r) == line for r, line in zip(records, lines, strict=True))
    assert records[1]["actor"]["lab"] == "UK-FSL" and records[1]["actor"]["user"]
    report = verify_log(home)
    assert report.intact and report.lines == 4 and report.heads == 1 and report.events == 3
    assert report.signed_through == 4 and report.unsigned_tail == 0
    assert report.last_sha256 == hashlib.sha256(lines[-1]).hexdigest()
    head_file = json.loads((home / "audit" / "head.json").read_bytes())
    assert (head_file["seq"], head_file["sha256"], head_file["key_id"]) == (4, report.last_sha256, report.signers[0])
    assert report.proven_by == {"audit_key": report.signers[0], "identity": labs["UK-FSL"].identity.card.key_id, "lab": "UK-FSL"}
    assert all(len(r["mac"]) == 64 for r in records[:3]) and "mac" not in records[3]  # events MAC'd, heads signed
    assert [e.type for e in AuditLog(home).entries()] == ["audit_key", "comparison", "trust_added", "head"]


def test_a_session_with_nothing_new_adds_no_head(labs: dict[str, LabHome], tmp_path: Path) -> None:
    home = copy_lab(labs["UK-FSL"], tmp_path / "uk")
    path = small_log(home)
    before = path.read_bytes()
    with audit_session(home):
        pass
    assert AuditLog(home).sign_head() is None  # the last line is already a head
    assert path.read_bytes() == before


def test_the_documented_script_checks_the_chain(labs: dict[str, LabHome], tmp_path: Path) -> None:
    """The 20-line script of docs/audit.md agrees with verify_log on an intact and a broken log."""
    script = re.search(r"## Checking a log by hand.*?```python\n(.*?)```", (REPO / "docs" / "audit.md").read_text(), re.S).group(1)
    assert len(script.strip().splitlines()) <= 25
    (tmp_path / "check.py").write_text(script)
    home = copy_lab(labs["UK-FSL"], tmp_path / "uk")
    path = small_log(home)

    def run() -> str:
        return subprocess.run(
            [sys.executable, str(tmp_path / "check.py"), str(path)], capture_output=True, text=True, check=True
        ).stdout.strip()

    assert run() == f"chain intact: 4 lines, head {verify_log(home).last_sha256}"
    lines = lines_of(path)
    path.write_bytes(b"\n".join([lines[0], lines[1].replace(b"identification", b"elimination"), *lines[2:]]) + b"\n")
    assert run().startswith("line 3: chain broken")
    assert verify_log(home).first_break.line == 2


def tamper_positions(data: bytes) -> list[int]:
    """Every byte, except that inside long base64 blobs (keys, signatures) one in 61 is taken."""
    blobs = [m.span() for m in re.finditer(rb"[A-Za-z0-9+/=]{100,}", data)]
    inside = set()
    for start, end in blobs:
        inside.update(range(start, end))
        sampled = set(range(start, end, 61)) | {end - 1}
        inside -= sampled
    return [i for i in range(len(data)) if i not in inside]


def test_every_single_byte_change_is_named_at_its_line(labs: dict[str, LabHome], tmp_path: Path) -> None:
    home = copy_lab(labs["UK-FSL"], tmp_path / "uk")
    path = small_log(home)
    original = path.read_bytes()
    line_of = [original.count(b"\n", 0, i) + 1 for i in range(len(original))]  # a newline belongs to its line
    positions = tamper_positions(original)
    assert len(positions) > 1000
    missed = []
    for i in positions:
        tampered = bytearray(original)
        tampered[i] ^= 0x01
        path.write_bytes(bytes(tampered))
        report = verify_log(home)
        if report.intact or report.first_break.line != line_of[i]:
            missed.append((i, line_of[i], report.first_break))
    path.write_bytes(original)
    assert missed == []
    assert verify_log(home).intact


def test_with_the_cli_a_tampered_log_exits_4_naming_the_line(
    labs: dict[str, LabHome], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = copy_lab(labs["UK-FSL"], tmp_path / "uk")
    path = small_log(home)
    assert cli.main(["--home", str(home), "audit", "verify", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "intact"
    path.write_bytes(path.read_bytes().replace(b'"cmc":14', b'"cmc":15'))
    assert cli.main(["--home", str(home), "audit", "verify", "--json"]) == 4
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["status"] == "broken" and doc["first_break"]["line"] == 2 and doc["first_break"]["kind"] == "hash_mismatch"
    assert captured.err.strip().startswith(f"error: {path}: line 2: hash_mismatch")


def test_a_deleted_line_is_a_sequence_gap_where_it_was(labs: dict[str, LabHome], tmp_path: Path) -> None:
    home = copy_lab(labs["UK-FSL"], tmp_path / "uk")
    path = small_log(home)
    lines = lines_of(path)
    path.write_bytes(b"\n".join(lines[:2] + lines[3:]) + b"\n")
    report = verify_log(home)
    assert report.first_break.line == 3
    assert {p.kind for p in report.problems if p.line == 3} == {"sequence_gap", "hash_mismatch"}


def test_a_swapped_pair_is_named_at_the_first_of_the_two(labs: dict[str, LabHome], tmp_path: Path) -> None:
    home = copy_lab(labs["UK-FSL"], tmp_path / "uk")
    path = small_log(home)
    lines = lines_of(path)
    path.write_bytes(b"\n".join([lines[0], lines[2], lines[1], lines[3]]) + b"\n")
    report = verify_log(home)
    assert report.first_break.line == 2 and "sequence_gap" in {p.kind for p in report.problems if p.line == 2}
    assert "sequence_order" in {p.kind for p in report.problems if p.line == 3}


def test_lines_cut_off_the_end_are_reported_as_truncation(labs: dict[str, LabHome], tmp_path: Path) -> None:
    home = copy_lab(labs["UK-FSL"], tmp_path / "uk")
    path = small_log(home)
    lines = lines_of(path)
    path.write_bytes(b"\n".join(lines[:3]) + b"\n")  # a valid chain of three lines, head gone
    report = verify_log(home)
    assert [(p.line, p.kind) for p in report.problems] == [(4, "truncated")]
    assert report.unsigned_tail == 3


def test_a_torn_last_line_is_reported_then_repaired_on_record(labs: dict[str, LabHome], tmp_path: Path) -> None:
    home = copy_lab(labs["UK-FSL"], tmp_path / "uk")
    path = small_log(home)
    torn = b'{"actor":{"examiner":null,"host":"h","lab":"UK-FSL","user":"u"},"details":{"cmc":3'
    with path.open("ab") as handle:
        handle.write(torn)
    report = verify_log(home)
    assert [(p.line, p.kind) for p in report.problems] == [(5, "torn")]
    with pytest.raises(AuditTamperedError, match="line 5: torn"):
        report.raise_if_broken()
    with audit_session(home) as log:
        log.append(
            "comparison",
            {"reference": {"path": None, "sha256": A}, "questioned": {"path": None, "sha256": B}, "decision": "elimination", "cmc": 0},
        )
    entries = AuditLog(home).entries()
    assert [e.type for e in entries] == ["audit_key", "comparison", "trust_added", "head", "repair", "comparison", "head"]
    assert entries[4].record["details"] == {
        "torn_bytes": len(torn),
        "torn_sha256": hashlib.sha256(torn).hexdigest(),
        "offset": len(b"".join(lines_of(path)[:4])) + 4,
    }
    assert verify_log(home).intact


def test_a_forged_head_signature_is_refused(labs: dict[str, LabHome], tmp_path: Path) -> None:
    """The attacker edits an event and re-signs the head with a key of their own under the lab's key id."""
    home = copy_lab(labs["UK-FSL"], tmp_path / "uk")
    path = small_log(home)
    lines = lines_of(path)
    edited = lines[1].replace(b"identification", b"elimination")
    head = json.loads(lines[3])
    head["prev"] = hashlib.sha256(lines[2]).hexdigest()
    forger = KeyMaterial.generate().signing
    head["details"]["signature"] = forger.sign(DOMAIN_HEAD, head_message(head)).to_dict()
    path.write_bytes(b"\n".join([lines[0], edited, lines[2], canonical_json(head)]) + b"\n")
    report = verify_log(home)
    assert report.first_break.line == 2  # the edited event breaks the link to line 3
    assert any(p.line == 4 and p.kind == "bad_signature" for p in report.problems)
    assert report.signed_through == 0


def test_a_head_by_a_self_certified_key_is_an_unknown_signer(labs: dict[str, LabHome], tmp_path: Path) -> None:
    """A forger who appends their own audit_key record and head still needs this lab's identity to certify the key."""
    home = copy_lab(labs["UK-FSL"], tmp_path / "uk")
    AuditLog(home).append("comparison", {"decision": "identification", "cmc": 20}, now=T0)
    path = home / "audit" / "audit.jsonl"
    impostor = create_audit_key(labs["FR-IRCGN"].identity, T0)
    actor = {"lab": "UK-FSL", "user": "mallory", "host": "h", "examiner": None}
    certificate = {
        "key_id": impostor.certificate.key_id,
        "identity_key_id": impostor.certificate.identity_key_id,
        "certificate": impostor.certificate.to_dict(),
    }
    introduce = canonical_json(
        {
            "v": 1,
            "seq": 3,
            "time": "2026-01-15T09:31:00Z",
            "type": "audit_key",
            "actor": actor,
            "details": certificate,
            "prev": hashlib.sha256(lines_of(path)[-1]).hexdigest(),
        }
    )
    head = {
        "v": 1,
        "seq": 4,
        "time": "2026-01-15T09:31:00Z",
        "type": "head",
        "actor": actor,
        "details": {"key_id": impostor.certificate.key_id},
        "prev": hashlib.sha256(introduce).hexdigest(),
    }
    head["details"]["signature"] = impostor.signing.sign(DOMAIN_HEAD, head_message(head)).to_dict()
    with path.open("ab") as handle:
        handle.write(introduce + b"\n" + canonical_json(head) + b"\n")
    report = verify_log(home)
    assert [(p.line, p.kind) for p in report.problems] == [(3, "unknown_signer"), (4, "unknown_signer")]
    assert report.signed_through == 0


def test_a_log_signed_by_another_lab_is_refused(labs: dict[str, LabHome], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uk = copy_lab(labs["UK-FSL"], tmp_path / "uk")
    fr = copy_lab(labs["FR-IRCGN"], tmp_path / "fr")
    small_log(fr)
    assert verify_log(fr).intact
    shutil.rmtree(uk / "audit")
    shutil.copytree(fr / "audit", uk / "audit")
    report = verify_log(uk)
    assert report.first_break.line == 1 and report.first_break.kind == "unknown_signer"
    assert any(p.line == 4 and p.kind == "unknown_signer" for p in report.problems)
    assert cli.main(["--home", str(uk), "audit", "verify"]) == 4
    assert "unknown_signer" in capsys.readouterr().err


def test_without_an_identity_events_are_chained_and_reported_unsigned(tmp_path: Path) -> None:
    home = tmp_path / "new-lab"
    with audit_session(home) as log:
        log.append("comparison", {"decision": "inconclusive", "cmc": 4})
        log.append("comparison", {"decision": "elimination", "cmc": 0})
    report = verify_log(home)
    assert [(p.line, p.kind) for p in report.problems] == [(1, "unsigned_tail")]  # nothing proves them
    report = verify_log(home, accept_unsigned_tail=True)
    assert report.intact and report.lines == 2 and report.heads == 0 and report.unsigned_tail == 2
    assert AuditLog(home).entries()[0].record["actor"]["lab"] is None


def test_rotation_and_revocation_keep_old_heads_verifiable(labs: dict[str, LabHome], tmp_path: Path) -> None:
    home = copy_lab(labs["UK-FSL"], tmp_path / "uk")
    small_log(home)
    old_key = json.loads((home / "audit" / "signing-key.json").read_bytes())["certificate"]
    new_identity = rotate_identity(home, PASSPHRASE, parameters=FAST)
    with audit_session(home) as log:
        log.append("key_rotate", {"key_id": new_identity.card.key_id})
        log.certify_key(new_identity)
    AuditLog(home).retire_key("identity key revoked")
    with audit_session(home) as log:
        log.append("comparison", {"decision": "elimination", "cmc": 1})
    report = verify_log(home, accept_unsigned_tail=True)
    assert report.intact, report.problems
    assert len(report.signers) == 2 and AuditCertificate.from_dict(old_key, where="t").key_id == report.signers[0]
    assert report.identity_chain == (new_identity.card.key_id, labs["UK-FSL"].identity.card.key_id)
    types = [e.type for e in AuditLog(home).entries()]
    # the outgoing audit key seals its own lines before the new one is certified
    assert types[4:] == ["key_rotate", "head", "audit_key", "head", "audit_key_retired", "head", "comparison"]
    assert report.unsigned_tail == 1  # no audit key after the retirement
    assert [p.kind for p in verify_log(home).problems] == ["unsigned_tail"]


def test_details_must_encode_the_same_everywhere(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "home")
    with pytest.raises(AuditLogError, match="not float"):
        log.append("comparison", {"ccf": 0.5})
    with pytest.raises(AuditLogError, match="event types"):
        log.append("head", {})
    with pytest.raises(AuditLogError, match="event types"):
        log.append("Bad Type", {})
    assert not (tmp_path / "home" / "audit" / "audit.jsonl").read_bytes()


def test_appending_after_a_corrupt_last_line_is_refused(labs: dict[str, LabHome], tmp_path: Path) -> None:
    home = copy_lab(labs["UK-FSL"], tmp_path / "uk")
    path = small_log(home)
    path.write_bytes(path.read_bytes()[:-3] + b"}}\n")
    with pytest.raises(AuditTamperedError, match="last line is not an audit record"):
        AuditLog(home).append("comparison", {"cmc": 1})


def _append_many(home: str, worker: int, count: int) -> None:
    with audit_session(Path(home)) as log:
        for i in range(count):
            log.append("comparison", {"worker": worker, "i": i})


def test_concurrent_writers_give_one_intact_chain_with_every_event(labs: dict[str, LabHome], tmp_path: Path) -> None:
    home = copy_lab(labs["UK-FSL"], tmp_path / "uk")
    workers, count = 4, 40
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_append_many, args=(str(home), w, count)) for w in range(workers)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(60)
    assert [p.exitcode for p in processes] == [0] * workers
    report = verify_log(home)
    assert report.intact, report.problems
    events = [e.record["details"] for e in AuditLog(home).entries() if e.type == "comparison"]
    assert sorted((d["worker"], d["i"]) for d in events) == [(w, i) for w in range(workers) for i in range(count)]
    assert 1 <= report.heads <= workers and report.unsigned_tail == 0


def test_unreadable_logs_exit_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    assert cli.main(["--home", str(home), "audit", "verify"]) == 3
    (home / "audit").mkdir(parents=True)
    (home / "audit" / "audit.jsonl").write_bytes(b"\x89PNG\r\n\x1a\nnot a log at all\n")
    assert cli.main(["--home", str(home), "audit", "verify", "--json"]) == 3
    assert "not an audit log" in capsys.readouterr().err


def test_cli_commands_write_their_events(
    labs: dict[str, LabHome], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """keys init, a refused and an accepted keys trust, compare: each leaves its event, each command a signed head."""
    monkeypatch.setenv("BALLISTICS_PASSPHRASE", PASSPHRASE.decode())
    home = str(tmp_path / "uk")
    partner = labs["FR-IRCGN"].identity.card
    card = tmp_path / "fr.card"
    card.write_bytes(partner.to_bytes())
    assert cli.main(["--home", home, "keys", "init", "--lab", "UK-FSL", "--name", "UK lab", "--country", "GB"]) == 0
    assert cli.main(["--home", home, "keys", "trust", str(card), "--fingerprint", "00" * 32]) == 4
    assert cli.main(["--home", home, "keys", "trust", str(card), "--fingerprint", partner.key_id]) == 0
    reference, questioned = SAMPLE / "F01-01.x3p", SAMPLE / "F01-02.x3p"
    capsys.readouterr()
    assert cli.main(["--home", home, "compare", str(reference), str(questioned), "--json"]) == 0
    comparison = json.loads(capsys.readouterr().out)
    assert cli.main(["--home", home, "audit", "verify", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "intact" and report["unsigned_tail"] == 0 and report["heads"] == 4
    assert cli.main(["--home", home, "audit", "show", "--json"]) == 0
    events = json.loads(capsys.readouterr().out)["events"]
    assert [e["type"] for e in events] == [
        "key_init",
        "audit_key",
        "head",
        "trust_refused",
        "head",
        "trust_added",
        "head",
        "comparison",
        "head",
    ]
    own = load_identity(Path(home), PASSPHRASE).card
    assert events[0]["details"] == {"lab": "UK-FSL", "key_id": own.key_id}
    assert events[1]["details"]["identity_key_id"] == own.key_id and "certificate" not in events[1]["details"]
    assert events[3]["details"]["error"] == "FingerprintMismatchError" and events[3]["details"]["exit_code"] == 4
    assert events[5]["details"] == {"lab": "FR-IRCGN", "key_id": partner.key_id, "via": "fingerprint", "predecessor": None}
    compared = events[7]["details"]
    assert compared["reference"]["sha256"] == comparison["reference"]["sha256"] == hashlib.sha256(reference.read_bytes()).hexdigest()
    assert compared["questioned"]["sha256"] == hashlib.sha256(questioned.read_bytes()).hexdigest()
    assert (compared["decision"], compared["cmc"]) == (comparison["decision"], comparison["cmc"])
    assert all(e["actor"]["lab"] == "UK-FSL" for e in events)


def test_show_since_filters_by_utc_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    log = AuditLog(home)
    log.append("comparison", {"cmc": 1}, now=T0)
    log.append("comparison", {"cmc": 2}, now=T0 + timedelta(days=2))
    day = (T0 + timedelta(days=1)).strftime("%Y-%m-%d")
    assert cli.main(["--home", str(home), "audit", "show", "--since", day, "--json"]) == 0
    assert [e["details"]["cmc"] for e in json.loads(capsys.readouterr().out)["events"]] == [2]
    assert cli.main(["--home", str(home), "audit", "show", "--since", "2026-01-15T09:30:00Z", "--json"]) == 0
    assert [e["details"]["cmc"] for e in json.loads(capsys.readouterr().out)["events"]] == [1, 2]
    assert cli.main(["--home", str(home), "audit", "show", "--since", "yesterday"]) == 2
    assert cli.main(["--home", str(home), "audit", "show"]) == 0


def test_bundle_export_and_a_rejected_bundle_are_logged(labs: dict[str, LabHome], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BALLISTICS_PASSPHRASE", PASSPHRASE.decode())
    uk = copy_lab(labs["UK-FSL"], tmp_path / "UK-FSL")
    LabHome(uk, labs["UK-FSL"].identity).trust.trust(labs["FR-IRCGN"].identity.card, labs["FR-IRCGN"].identity.card.fingerprint, where="t")
    scan, bundle = SAMPLE / "F02-01.x3p", tmp_path / "out.bfx"
    assert cli.main(["--home", str(uk), "bundle", "export", "--to", "FR-IRCGN", "--scan", str(scan), "-o", str(bundle)]) == 0
    assert cli.main(["--home", str(uk), "bundle", "verify", str(bundle)]) == 4  # not addressed to UK
    assert verify_log(uk).intact and verify_log(uk).unsigned_tail == 0
    entries = AuditLog(uk).entries()
    assert [e.type for e in entries][1:] == ["bundle_export", "head", "bundle_rejected", "head"]
    exported, rejected = entries[1].record["details"], entries[3].record["details"]
    assert exported["files"] == [
        {"name": "scans/F02-01.x3p", "kind": "scan", "size": scan.stat().st_size, "sha256": hashlib.sha256(scan.read_bytes()).hexdigest()}
    ]
    assert [r["lab"] for r in exported["recipients"]] == ["FR-IRCGN"] and len(exported["bundle_id"]) == 32
    assert (rejected["path"], rejected["error"], rejected["exit_code"]) == (str(bundle), "NotARecipientError", 4)


# --- editing the log without the audit key (item 2) ----------------------------------------------


def _two_sessions(home: Path) -> Path:
    """small_log, then a second command: lines 5 (comparison) and 6 (its head)."""
    path = small_log(home)
    with audit_session(home) as log:
        log.append("comparison", {"decision": "identification", "cmc": 22}, now=T0)
    return path


def test_an_edited_event_with_the_later_heads_dropped_and_head_json_repointed_is_refused(
    labs: dict[str, LabHome], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = copy_lab(labs["UK-FSL"], tmp_path / "uk")
    path = small_log(home)
    old_head_file = (home / "audit" / "head.json").read_bytes()  # a genuine copy, as a backup would hold
    with audit_session(home) as log:
        log.append("comparison", {"decision": "identification", "cmc": 22}, now=T0)
    lines = lines_of(path)
    edited = lines[4].replace(b"identification", b"elimination")
    path.write_bytes(b"\n".join([*lines[:4], edited]) + b"\n")  # line 6, the head over it, dropped
    head = home / "audit" / "head.json"
    head.write_text(json.dumps({"seq": 4, "sha256": hashlib.sha256(lines[3]).hexdigest()}))  # repointed, unsigned
    report = verify_log(home)
    assert [(p.line, p.kind) for p in report.problems] == [(5, "unsigned_tail"), (6, "head_file")]
    head.write_bytes(old_head_file)  # even a genuine signed head file of the earlier state
    assert [(p.line, p.kind) for p in verify_log(home).problems] == [(5, "unsigned_tail")]
    signed = json.loads(old_head_file)
    head.write_text(json.dumps({**signed, "seq": 2, "sha256": hashlib.sha256(lines[1]).hexdigest()}))
    assert any(p.kind == "head_file" and "altered" in p.message for p in verify_log(home).problems)
    head.write_bytes(old_head_file)
    assert cli.main(["--home", str(home), "audit", "verify"]) == 4
    assert "line 5: unsigned_tail" in capsys.readouterr().err


def test_a_forged_event_appended_after_the_last_head_is_refused_and_never_sealed(labs: dict[str, LabHome], tmp_path: Path) -> None:
    home = copy_lab(labs["UK-FSL"], tmp_path / "uk")
    path = small_log(home)
    last = lines_of(path)[-1]
    forged = {
        "v": 1,
        "seq": 5,
        "time": "2026-01-15T09:40:00Z",
        "type": "bundle_import",
        "actor": {"lab": "UK-FSL", "user": "mallory", "host": "h", "examiner": None},
        "details": {"bundle_id": "00" * 16},
        "prev": hashlib.sha256(last).hexdigest(),
    }
    with path.open("ab") as handle:
        handle.write(canonical_json(forged) + b"\n")
    assert [(p.line, p.kind) for p in verify_log(home).problems] == [(5, "unsigned_tail")]
    # the lab's next command does not sign a head over it
    with pytest.raises(AuditTamperedError, match=r"lines 5\.\.5\) were not written by this lab's commands"), audit_session(home) as log:
        log.append("comparison", {"cmc": 3}, now=T0)
    assert [e.type for e in AuditLog(home).entries()][-2:] == ["bundle_import", "comparison"]
    assert verify_log(home).first_break.kind == "unsigned_tail"
    # a forged MAC is no better
    with path.open("ab") as handle:
        record = {**forged, "seq": 7, "prev": hashlib.sha256(lines_of(path)[-1]).hexdigest(), "mac": "ab" * 32}
        handle.write(canonical_json(record) + b"\n")
    with pytest.raises(AuditTamperedError, match=r"lines 5\.\.7\)"):
        AuditLog(home).sign_head()


def test_an_unsigned_tail_is_accepted_only_explicitly_and_on_record(
    labs: dict[str, LabHome], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = copy_lab(labs["UK-FSL"], tmp_path / "uk")
    path = small_log(home)
    forged = canonical_json(
        {
            "v": 1,
            "seq": 5,
            "time": "2026-01-15T09:40:00Z",
            "type": "comparison",
            "actor": {"lab": "UK-FSL", "user": "u", "host": "h", "examiner": None},
            "details": {"cmc": 9},
            "prev": hashlib.sha256(lines_of(path)[-1]).hexdigest(),
        }
    )
    with path.open("ab") as handle:
        handle.write(forged + b"\n")
    assert cli.main(["--home", str(home), "audit", "verify", "--json", "--accept-unsigned-tail"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["status"] == "intact" and doc["unsigned_tail"] == 1 and doc["tail_accepted_at_line"] == 6
    accepted = AuditLog(home).entries()[5]
    assert accepted.type == "tail_accepted" and accepted.record["details"] == {
        "from_line": 5,
        "to_line": 5,
        "last_sha256": hashlib.sha256(forged).hexdigest(),
    }
    with audit_session(home) as log:  # commands sign again
        log.append("comparison", {"cmc": 4}, now=T0)
    report = verify_log(home)
    assert report.intact and report.unsigned_tail == 0 and report.signed_through == 9


def test_lines_of_a_command_that_did_not_finish_are_sealed_by_the_next(labs: dict[str, LabHome], tmp_path: Path) -> None:
    """A killed command leaves MAC'd lines without a head: not a forgery, so the next command signs over them."""
    home = copy_lab(labs["UK-FSL"], tmp_path / "uk")
    small_log(home)
    AuditLog(home).append("comparison", {"cmc": 5}, now=T0)  # no head: the command was killed here
    assert verify_log(home).first_break.kind == "unsigned_tail"
    with audit_session(home) as log:
        log.append("comparison", {"cmc": 6}, now=T0)
    assert verify_log(home).intact


# --- audit keys must chain to the lab's identity (item 3) ------------------------------------------


def _forged_home(labs: dict[str, LabHome], tmp_path: Path) -> tuple[Path, LabHome]:
    """A look-alike UK-FSL identity with its own audit log, made by someone with file access only."""
    impostor = make_lab(tmp_path / "impostor", "UK-FSL")
    AuditLog(impostor.home).certify_key(impostor.identity, now=T0)
    small_log(impostor.home)
    return impostor.home, impostor


def test_a_card_planted_in_retired_does_not_certify_a_rewritten_log(
    labs: dict[str, LabHome], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = copy_lab(labs["UK-FSL"], tmp_path / "uk")
    small_log(home)
    forged, impostor = _forged_home(labs, tmp_path)
    planted = home / "keys" / "retired" / f"{impostor.identity.card.key_id}.json"
    planted.parent.mkdir(mode=0o700)
    shutil.copy2(forged / "keys" / "identity.json", planted)
    shutil.rmtree(home / "audit")
    shutil.copytree(forged / "audit", home / "audit")
    report = verify_log(home)
    assert report.first_break.line == 1 and report.first_break.kind == "unknown_signer"
    assert report.identity_chain == (labs["UK-FSL"].identity.card.key_id,) and report.proven_by is None
    assert cli.main(["--home", str(home), "audit", "verify"]) == 4
    assert "unknown_signer" in capsys.readouterr().err


def test_expect_fingerprint_pins_the_identity_an_auditor_was_given(
    labs: dict[str, LabHome], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    real = labs["UK-FSL"].identity.card
    home = copy_lab(labs["UK-FSL"], tmp_path / "uk")
    small_log(home)
    rotate_identity(home, PASSPHRASE, now=T0, parameters=FAST)  # the expected key is an ancestor now
    with audit_session(home) as log:
        log.certify_key(load_identity(home, PASSPHRASE), now=T0)
    verify = ["--home", str(home), "audit", "verify", "--expect-fingerprint"]
    assert cli.main([*verify, real.key_id]) == 0
    capsys.readouterr()
    forged, _ = _forged_home(labs, tmp_path)
    shutil.rmtree(home)
    shutil.copytree(forged, home)  # the whole home replaced: identity, keys and log, all self-consistent
    assert verify_log(home).intact
    assert cli.main([*verify, real.key_id, "--json"]) == 4
    doc = json.loads(capsys.readouterr().out)
    assert doc["first_break"]["kind"] == "unexpected_identity" and doc["first_break"]["line"] == 0


def test_a_log_not_continued_after_a_rotation_is_stale(labs: dict[str, LabHome], tmp_path: Path) -> None:
    """A log whose newest audit key is certified by a superseded identity (rewritten with a stolen old key)."""
    home = copy_lab(labs["UK-FSL"], tmp_path / "uk")
    small_log(home)
    rotate_identity(home, PASSPHRASE, now=T0, parameters=FAST)
    assert [(p.line, p.kind) for p in verify_log(home).problems] == [(1, "stale_identity")]
