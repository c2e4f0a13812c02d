"""Ballistic intelligence between two real lab homes: correlation requests, automatic correlation on import,
responses, leads, confirmation into a match record, hit notifications; refusals; SIGKILL during a correlation.

Real keys and bundles (exchange_support), the simulator's sample scans with known truth (F01-01 and F01-03
were fired by one firearm, F03-02 by a firearm the French collection does not hold), SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import REPO, SAMPLE_DATA, Backend
from exchange_support import PASSPHRASE, LabHome, introduce, make_lab

import cli
from ballistics.characteristics import ClassCharacteristics
from ballistics.errors import UsageError
from ballistics.records import ExaminerConclusion
from ballistics.schema import create_engine
from ballistics.store import Store
from exchange import correlate as correlate_module
from exchange.audit import AuditLog
from exchange.bundle import export_bundle
from exchange.correlate import LEAD_MIN_CMC, confirm_lead, dismiss_lead, send_request
from exchange.importer import ImportReport, import_bundles
from exchange.intelligence import CorrelationResponse, HitNotification

pytestmark = pytest.mark.usefixtures("backend")
NINE_MM = ClassCharacteristics(calibre="9mm Luger")
RECORD_ID = "0b7c0e1e-5d5f-4c1a-9a53-6f3f1f0c2a10"


@dataclass
class Labs:
    uk: LabHome
    fr: LabHome
    stranger: LabHome  # trusts FR; FR does not trust it


@pytest.fixture(scope="session")
def session_labs(tmp_path_factory: pytest.TempPathFactory) -> Labs:
    root = tmp_path_factory.mktemp("correlate-labs")
    uk, fr, stranger = make_lab(root, "UK-FSL", "GB"), make_lab(root, "FR-IRCGN", "FR"), make_lab(root, "XX-LAB", "GB")
    introduce(uk, fr)
    stranger.trust.trust(fr.identity.card, fr.identity.card.fingerprint, where="test")
    return Labs(uk, fr, stranger)


def _copy(lab: LabHome, target: Path) -> LabHome:
    shutil.copytree(lab.home, target)
    copied = LabHome(target, lab.identity)
    copied.reload()
    return copied


@pytest.fixture
def labs(session_labs: Labs, tmp_path: Path) -> Labs:
    """Fresh copies of the three homes; the French lab holds F01-03 and F02-01 as its own exhibits."""
    copies = Labs(*(_copy(lab, tmp_path / name) for name, lab in vars(session_labs).items()))
    store = Store.open(copies.fr.home)
    try:
        for stem in ("F01-03", "F02-01"):
            store.add_exhibit_scan(
                scan(stem), case_id=f"FR-2025-{stem}", exhibit_id="E1", lab=copies.fr.identity.card.lab, characteristics=NINE_MM
            )
    finally:
        store.close()
    return copies


def scan(stem: str) -> Path:
    path = SAMPLE_DATA / f"{stem}.x3p"
    if not path.exists():
        pytest.skip(f"{path} missing")
    return path


def request(lab: LabHome, out: Path, *stems: str, case: str = "UK-2026-0117", to: str = "FR-IRCGN") -> Path:
    store = Store.open(lab.home)
    try:
        send_request(
            lab.home,
            store,
            lab.identity,
            lab.trust,
            out,
            recipients=[to],
            scans=[scan(s) for s in stems],
            case_id=case,
            exhibit="CS1",
            characteristics=NINE_MM,
        )
    finally:
        store.close()
    return out


def run(lab: LabHome, *paths: Path, outbox: Path, **kw) -> ImportReport:
    store = Store.open(lab.home)
    try:
        return import_bundles(lab.home, store, lab.identity, lab.trust, list(paths), outbox=outbox, audit=AuditLog(lab.home), **kw)
    finally:
        store.close()


def events(home: Path) -> list[str]:
    return [e.type for e in AuditLog(home).entries()]


def open_store(lab: LabHome) -> Store:
    return Store.open(lab.home)


# --- the round trip ---------------------------------------------------------------------------------


def test_request_correlated_answered_confirmed_and_notified_links_both_labs(labs: Labs, tmp_path: Path) -> None:
    uk, fr = labs.uk, labs.fr
    fr_out, uk_out = tmp_path / "fr-outbox", tmp_path / "uk-outbox"
    bundle = request(uk, tmp_path / "request.bfx", "F01-01")
    [sent] = open_store(uk).sent_requests()
    assert sent.status == "sent" and sent.case_id == "UK-2026-0117" and sent.recipients == ("FR-IRCGN",)

    report = run(fr, bundle, outbox=fr_out)
    [imported] = report.of("imported")
    assert imported.kind == "correlation-request" and imported.exhibits == 1
    [done] = report.correlations
    assert done.request_id == sent.request_id and done.scans == 1 and done.collection_size == 2  # own exhibits only
    [lead] = done.leads
    assert (lead.partner_case, lead.partner_exhibit, lead.our_case, lead.our_exhibit) == ("UK-2026-0117", "CS1", "FR-2025-F01-03", "E1")
    assert lead.cmc >= LEAD_MIN_CMC and lead.status == "new" and lead.log10_lr is not None and lead.log10_lr > 0
    partner = open_store(fr).by_sha256(lead.partner_sha256)
    assert partner is not None and partner.partner and partner.lab == "UK-FSL" and partner.case == "UK-2026-0117"
    assert partner.characteristics.calibre == "9mm Luger"
    [response_file] = fr_out.glob("response-*.bfx")
    assert done.response == str(response_file)
    fr_events = events(fr.home)
    for expected in ("request_received", "bundle_import", "correlation_searched", "lead_found", "response_sent"):
        assert expected in fr_events, expected
    assert not list(fr_out.glob("receipt-*"))  # a request is answered, not receipted

    report = run(uk, response_file, outbox=uk_out)
    assert [o.kind for o in report.of("imported")] == ["correlation-response"]
    [answered] = open_store(uk).sent_requests()
    assert answered.status == "hits"
    [answer] = answered.answers
    assert answer.responder_lab == "FR-IRCGN" and answer.collection_size == 2 and answer.candidates == 1
    assert answer.document["candidates"][0]["case_id"] == "FR-2025-F01-03"

    fr_store = open_store(fr)
    confirmed = confirm_lead(
        fr.home,
        fr_store,
        fr.identity,
        fr.trust,
        lead.id,
        fr_out,
        examiner="M. Dupont",
        conclusion=ExaminerConclusion(afte_category="identification"),
        reviewer="Mme Martin",
    )
    record = confirmed.record
    assert confirmed.lead.status == "confirmed" and confirmed.lead.record_id == record["record_id"]
    assert record["lab"]["id"] == "FR-IRCGN" and record["case_id"] == "FR-2025-F01-03"
    assert record["likelihood_ratio"]["log10_lr"] == pytest.approx(lead.log10_lr, abs=1e-3)
    assert record["examiner_conclusion"]["afte_category"] == "identification" and record["reviewer"]["name"] == "Mme Martin"
    assert {record["scans"]["reference"]["sha256"], record["scans"]["questioned"]["sha256"]} == {lead.our_sha256, lead.partner_sha256}
    assert fr_store.record(record["record_id"]) == record
    with pytest.raises(UsageError, match="already confirmed"):
        confirm_lead(fr.home, fr_store, fr.identity, fr.trust, lead.id, fr_out, examiner="Someone Else")
    with pytest.raises(UsageError, match="already confirmed"):
        dismiss_lead(fr_store, lead.id, "second thoughts")
    assert len(fr_store.records()) == 1 and [x.status for x in fr_store.leads()] == ["confirmed"]
    fr_store.close()

    report = run(uk, confirmed.notification, outbox=uk_out)
    assert [o.kind for o in report.of("imported")] == ["hit-notification"]
    uk_store = open_store(uk)
    [hit] = uk_store.received_hits()
    assert (hit.partner_lab, hit.partner_case, hit.partner_exhibit, hit.record_id) == (
        "FR-IRCGN",
        "FR-2025-F01-03",
        "E1",
        record["record_id"],
    )
    assert hit.request_id == sent.request_id and hit.scan_sha256 == lead.partner_sha256
    assert uk_store.record(record["record_id"]) == record
    assert uk_store.sent_requests()[0].hits == (hit,)
    assert {"response_received", "hit_notification_received"} <= set(events(uk.home))


def test_the_command_line_tells_the_same_story(labs: Labs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    uk, fr = labs.uk, labs.fr
    monkeypatch.setenv("BALLISTICS_PASSPHRASE", PASSPHRASE.decode())
    out = tmp_path / "exchange"
    out.mkdir()
    args = ["request", "export", "--to", "FR-IRCGN", "--scan", str(scan("F01-01")), "--case", "UK-7", "--exhibit", "CS1"]
    assert cli.main(["--home", str(uk.home), *args, "--calibre", "9mm Luger", "-o", str(out / "req.bfx")]) == 0
    assert cli.main(["--home", str(fr.home), "bundle", "import", str(out), "--outbox", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    [correlation] = doc["correlations"]
    assert len(correlation["leads"]) == 1 and correlation["collection_size"] == 2
    assert cli.main(["--home", str(fr.home), "leads", "list", "--status", "new", "--json"]) == 0
    [lead] = json.loads(capsys.readouterr().out)["leads"]
    assert lead["partner"] == {"lab": "UK-FSL", "case": "UK-7", "exhibit": "CS1", "sha256": lead["partner"]["sha256"]}
    assert cli.main(["--home", str(fr.home), "leads", "show", str(lead["id"]), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["likelihood_ratio"]["verbal"]["statement"] and shown["ours"]["case"] == "FR-2025-F01-03"
    assert cli.main(["--home", str(fr.home), "leads", "confirm", str(lead["id"]), "--examiner", "M. Dupont", "--outbox", str(out)]) == 0
    assert cli.main(["--home", str(fr.home), "leads", "confirm", str(lead["id"]), "--examiner", "M. Dupont", "--json"]) == 2
    assert "already confirmed" in json.loads(capsys.readouterr().out.splitlines()[-1])["error"]["reason"]
    assert cli.main(["--home", str(fr.home), "leads", "list", "--status", "nonsense"]) == 2
    assert cli.main(["--home", str(uk.home), "bundle", "import", str(out), "--json"]) == 0
    capsys.readouterr()
    assert cli.main(["--home", str(uk.home), "request", "list", "--json"]) == 0
    [sent] = json.loads(capsys.readouterr().out)["requests"]
    assert sent["status"] == "hits" and sent["hits"][0]["partner"]["case"] == "FR-2025-F01-03"
    for home in (uk.home, fr.home):
        assert cli.main(["--home", str(home), "audit", "verify", "--json"]) == 0
    assert {"request_sent", "bundle_export", "response_received", "hit_notification_received"} <= set(events(uk.home))
    assert {"request_received", "correlation_searched", "lead_found", "response_sent", "lead_confirmed", "hit_notification_sent"} <= set(
        events(fr.home)
    )


def test_the_former_receipt_dir_option_still_works_and_both_names_at_once_are_refused(labs: Labs, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BALLISTICS_PASSPHRASE", PASSPHRASE.decode())
    bundle = request(labs.uk, tmp_path / "in" / "req.bfx", "F03-02")
    home = ["--home", str(labs.fr.home), "bundle", "import", str(bundle)]
    assert cli.main([*home, "--outbox", str(tmp_path / "a"), "--receipt-dir", str(tmp_path / "b")]) == 2
    assert cli.main([*home, "--receipt-dir", str(tmp_path / "old")]) == 0
    assert len(list((tmp_path / "old").glob("response-*.bfx"))) == 1


# --- answers without a hit, duplicates, findings ----------------------------------------------------


def test_a_request_without_a_hit_gets_a_no_candidate_response(labs: Labs, tmp_path: Path) -> None:
    report = run(labs.fr, request(labs.uk, tmp_path / "req.bfx", "F03-02"), outbox=tmp_path / "fr-out")
    [done] = report.correlations
    assert done.leads == () and done.collection_size == 2
    assert open_store(labs.fr).leads() == []
    run(labs.uk, Path(done.response or ""), outbox=tmp_path / "uk-out")
    [sent] = open_store(labs.uk).sent_requests()
    assert sent.status == "answered"
    [answer] = sent.answers
    assert answer.candidates == 0 and answer.document["candidates"] == [] and answer.document["searched"] == [sent.scans[0][0]]


def test_a_duplicated_request_changes_nothing(labs: Labs, tmp_path: Path) -> None:
    bundle = request(labs.uk, tmp_path / "req.bfx", "F01-01")
    copy = tmp_path / "again" / "req-copy.bfx"
    copy.parent.mkdir()
    shutil.copyfile(bundle, copy)
    out = tmp_path / "fr-out"
    first = run(labs.fr, bundle, outbox=out)
    assert len(first.correlations[0].leads) == 1
    store = open_store(labs.fr)
    before = (store.leads(), store.correlations(), sorted(out.iterdir()), store.exhibits())
    second = run(labs.fr, copy, outbox=out)
    assert [o.status for o in second.outcomes] == ["duplicate"] and second.correlations == ()
    assert (store.leads(), store.correlations(), sorted(out.iterdir()), store.exhibits()) == before
    assert events(labs.fr.home).count("correlation_searched") == 1


def test_findings_scans_are_correlated_unless_told_not_to(labs: Labs, tmp_path: Path) -> None:
    findings = tmp_path / "findings.bfx"
    export_bundle(labs.uk.home, labs.uk.identity, labs.uk.trust, findings, recipients=["FR-IRCGN"], scans=[scan("F01-01")])
    fr_copy = _copy(labs.fr, tmp_path / "fr-no")
    report = run(fr_copy, findings, outbox=tmp_path / "out-no", correlate=False)
    assert report.of("imported") and report.correlations == () and open_store(fr_copy).leads() == []
    report = run(labs.fr, findings, outbox=tmp_path / "out")
    [done] = report.correlations
    [lead] = done.leads
    assert done.request_id is None and done.response is None and lead.request_id is None and lead.our_case == "FR-2025-F01-03"
    assert len(list((tmp_path / "out").glob("receipt-*.bfx"))) == 1 and not list((tmp_path / "out").glob("response-*"))
    confirmed = confirm_lead(labs.fr.home, open_store(labs.fr), labs.fr.identity, labs.fr.trust, lead.id, tmp_path / "out", examiner="E")
    run(labs.uk, confirmed.notification, outbox=tmp_path / "uk-out")
    [hit] = open_store(labs.uk).received_hits()
    assert hit.request_id is None and hit.record_id == confirmed.record["record_id"]


def test_a_dismissed_lead_keeps_its_reason_and_cannot_be_confirmed(labs: Labs, tmp_path: Path) -> None:
    [lead] = run(labs.fr, request(labs.uk, tmp_path / "req.bfx", "F01-01"), outbox=tmp_path / "out").correlations[0].leads
    store = open_store(labs.fr)
    with pytest.raises(UsageError):
        dismiss_lead(store, lead.id, "  ")
    dismissed = dismiss_lead(store, lead.id, "subclass marks: consecutive slides", examiner="M. Dupont")
    assert (dismissed.status, dismissed.reason, dismissed.examiner) == ("dismissed", "subclass marks: consecutive slides", "M. Dupont")
    with pytest.raises(UsageError, match="already dismissed"):
        confirm_lead(labs.fr.home, store, labs.fr.identity, labs.fr.trust, lead.id, tmp_path / "out", examiner="X")
    assert store.records() == [] and [x.id for x in store.leads("dismissed")] == [lead.id] and store.leads("new") == []


def test_a_notification_lost_after_the_confirmation_is_written_again_and_the_partner_takes_it_once(
    labs: Labs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    uk, fr = labs.uk, labs.fr
    monkeypatch.setenv("BALLISTICS_PASSPHRASE", PASSPHRASE.decode())
    fr_out, uk_out = tmp_path / "fr-out", tmp_path / "uk-out"
    report = run(fr, request(uk, tmp_path / "req.bfx", "F01-01", "F02-02"), outbox=fr_out)
    hit_lead, other = sorted(report.correlations[0].leads, key=lambda x: x.our_case)
    assert (hit_lead.our_case, other.our_case) == ("FR-2025-F01-03", "FR-2025-F02-01")

    class Crash(Exception):
        pass

    real_write = correlate_module._write
    crashed: list[str] = []

    def write_once_failing(*args, **kwargs) -> Path:
        if not crashed:
            crashed.append(args[3].member)  # the document: the writer died before writing it
            raise Crash("the process died after the commit")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(correlate_module, "_write", write_once_failing)
    store = open_store(fr)
    with pytest.raises(Crash):
        confirm_lead(fr.home, store, fr.identity, fr.trust, hit_lead.id, fr_out, examiner="M. Dupont")
    assert crashed and crashed[0].startswith("hit-")
    stranded = store.lead(hit_lead.id)
    assert stranded.status == "confirmed" and stranded.record_id is not None and stranded.notification is None
    record = store.record(stranded.record_id)
    assert record is not None and not list(fr_out.glob("hit-*.bfx"))
    with pytest.raises(UsageError, match="already confirmed"):
        confirm_lead(fr.home, store, fr.identity, fr.trust, hit_lead.id, fr_out, examiner="M. Dupont")

    fr_cli = ["--home", str(fr.home), "leads", "notify"]
    assert cli.main([*fr_cli, str(hit_lead.id), "--outbox", str(fr_out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    [written] = fr_out.glob("hit-*.bfx")
    assert doc["notification"] == str(written) and doc["record_id"] == record["record_id"] and doc["lead"]["status"] == "confirmed"
    assert store.lead(hit_lead.id).notification == str(written)
    assert events(fr.home).count("hit_notification_sent") == 1

    def partner_side() -> tuple[list, list, list]:
        uk_store = open_store(uk)
        try:
            return uk_store.received_hits(), uk_store.records(), uk_store.sent_requests()
        finally:
            uk_store.close()

    first = run(uk, written, outbox=uk_out)
    assert [(o.status, o.kind) for o in first.outcomes] == [("imported", "hit-notification")]
    hits, records, requests = partner_side()
    [hit] = hits
    assert (hit.record_id, hit.examiner, hit.partner_case, hit.partner_exhibit) == (
        record["record_id"],
        "M. Dupont",
        "FR-2025-F01-03",
        "E1",
    )
    assert hit.scan_sha256 == hit_lead.partner_sha256 and hit.log10_lr is not None and records == [record]
    assert requests[0].hits == (hit,)

    # Sent again (the partner says it never arrived): a new bundle, the same notification; taken without change.
    assert cli.main([*fr_cli, str(hit_lead.id), "--outbox", str(fr_out)]) == 0
    assert f"written to {written}" in capsys.readouterr().err
    assert events(fr.home).count("hit_notification_sent") == 2
    again = run(uk, written, outbox=uk_out)
    assert [(o.status, o.kind) for o in again.outcomes] == [("imported", "hit-notification")]
    assert partner_side() == (hits, records, requests)
    received = [e.record["details"]["document"] for e in AuditLog(uk.home).entries() if e.type == "hit_notification_received"]
    assert len(received) == 2 and received[0] == received[1]  # the notification the confirmation would have sent
    assert (received[0]["confirmed"], received[0]["examiner"]) == (stranded.decided, "M. Dupont")

    # A copy that turns up after a later one was imported is refused as stale and quarantined; nothing is lost.
    assert cli.main([*fr_cli, str(hit_lead.id), "--outbox", str(fr_out)]) == 0
    late = written.rename(tmp_path / "late.bfx")
    assert cli.main([*fr_cli, str(hit_lead.id), "--outbox", str(fr_out)]) == 0
    capsys.readouterr()
    assert [o.status for o in run(uk, written, outbox=uk_out).outcomes] == ["imported"]
    stale = run(uk, late, outbox=uk_out)
    [refused] = stale.of("rejected")
    assert (refused.error, refused.exit_code, stale.exit_code) == ("StaleBundleError", 4, 4) and "not newer than" in refused.reason
    assert not late.exists() and Path(refused.quarantine).exists()
    assert partner_side() == (hits, records, requests)

    # Only a confirmed lead is notified; an unknown lead is refused as leads show refuses it.
    assert cli.main([*fr_cli, str(other.id), "--outbox", str(tmp_path / "none")]) == 2
    assert "the lead is new: only a confirmed lead" in capsys.readouterr().err
    dismiss_lead(store, other.id, "subclass marks", examiner="L. Moreau")
    assert cli.main([*fr_cli, str(other.id), "--outbox", str(tmp_path / "none"), "--json"]) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["reason"].startswith("the lead was dismissed on ") and "by L. Moreau" in error["reason"]
    assert cli.main([*fr_cli, "999", "--json"]) == cli.main(["--home", str(fr.home), "leads", "show", "999", "--json"]) == 3
    assert not (tmp_path / "none").exists() and events(fr.home).count("hit_notification_sent") == 4
    store.close()


def test_a_confirmation_whose_notification_cannot_be_written_is_on_record_and_says_how_to_send_it(
    labs: Labs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    fr = labs.fr
    monkeypatch.setenv("BALLISTICS_PASSPHRASE", PASSPHRASE.decode())
    report = run(fr, request(labs.uk, tmp_path / "req.bfx", "F01-01"), outbox=tmp_path / "fr-out")
    lead = next(x for x in report.correlations[0].leads if x.our_case == "FR-2025-F01-03")
    not_a_folder = tmp_path / "outbox-is-a-file"
    not_a_folder.write_text("not a folder")
    confirm = ["--home", str(fr.home), "leads", "confirm", str(lead.id), "--examiner", "M. Dupont", "--json"]
    assert cli.main([*confirm, "--outbox", str(not_a_folder)]) == 3
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["path"] == str(not_a_folder)
    assert f"lead {lead.id} is confirmed" in error["reason"] and f"ballistics leads notify {lead.id}" in error["reason"]
    store = open_store(fr)
    stranded = store.lead(lead.id)
    assert stranded.status == "confirmed" and stranded.notification is None and store.record(stranded.record_id) is not None
    logged = events(fr.home)
    assert "lead_confirmed" in logged and "record_add" in logged and "hit_notification_sent" not in logged
    assert cli.main(["--home", str(fr.home), "leads", "notify", str(lead.id), "--outbox", str(tmp_path / "fr-out")]) == 0
    [written] = (tmp_path / "fr-out").glob("hit-*.bfx")
    assert store.lead(lead.id).notification == str(written) and events(fr.home).count("hit_notification_sent") == 1
    store.close()


# --- refusals -----------------------------------------------------------------------------------------


def test_a_request_from_an_untrusted_lab_is_refused_before_anything_is_searched(
    labs: Labs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    searched: list[object] = []
    real_search = correlate_module.search
    monkeypatch.setattr(correlate_module, "search", lambda *a, **kw: searched.append(a) or real_search(*a, **kw))
    bundle = request(labs.stranger, tmp_path / "in" / "stranger.bfx", "F01-01")
    report = run(labs.fr, bundle, outbox=tmp_path / "out")
    [rejected] = report.of("rejected")
    assert rejected.exit_code == 4 and "trust" in rejected.reason and report.correlations == ()
    assert searched == []
    store = open_store(labs.fr)
    assert store.correlations() == [] and store.leads() == [] and not any(e.partner for e in store.exhibits())
    assert not (tmp_path / "out").exists()
    assert "correlation_searched" not in events(labs.fr.home) and "request_received" not in events(labs.fr.home)


def test_a_response_or_notification_for_a_request_never_sent_is_refused(labs: Labs, tmp_path: Path) -> None:
    uk, fr = labs.uk, labs.fr
    never = "ab" * 16
    response = CorrelationResponse(never, never, "UK-FSL", "FR-IRCGN", (), 12, (), "2026-01-15T09:30:00Z")
    forged = tmp_path / "inbox" / "response.bfx"
    forged.parent.mkdir()
    export_bundle(fr.home, fr.identity, fr.trust, forged, recipients=["UK-FSL"], document=response)
    # A notification naming a bundle the UK did send, but a scan it never carried, is refused too.
    real = request(uk, tmp_path / "req.bfx", "F01-01")
    [sent] = open_store(uk).sent_requests()
    notification = HitNotification(sent.bundle_id, sent.request_id, "cd" * 32, "FR-1", "E1", RECORD_ID, None, "E", "2026-01-15T09:30:00Z")
    record_file = tmp_path / "record.json"
    from test_records import comparison_dict

    from ballistics.records import build_record, write_record

    record = build_record(
        {**comparison_dict(), "questioned": {"sha256": "cd" * 32}},
        lab=fr.identity.card.lab,
        case_id="FR-1",
        exhibits=("E1", "UK"),
        examiner={"name": "E"},
        record_id=RECORD_ID,
    )
    write_record(record, record_file)
    stray = tmp_path / "inbox" / "hit.bfx"
    export_bundle(fr.home, fr.identity, fr.trust, stray, recipients=["UK-FSL"], records=[record_file], document=notification)
    report = run(uk, tmp_path / "inbox", outbox=tmp_path / "out")
    reasons = {Path(o.path).name: o for o in report.of("rejected")}
    assert set(reasons) == {"response.bfx", "hit.bfx"}
    assert reasons["response.bfx"].exit_code == 4 and "never sent" in reasons["response.bfx"].reason
    assert reasons["hit.bfx"].exit_code == 4 and "did not carry" in reasons["hit.bfx"].reason
    store = open_store(uk)
    assert store.received_hits() == [] and store.sent_requests()[0].answers == () and store.records() == []
    assert real.exists()


def test_a_reader_refuses_a_file_kind_it_does_not_know_saying_so(labs: Labs, tmp_path: Path) -> None:
    from exchange_support import file_entry, signed_bundle

    bundle = signed_bundle(tmp_path / "new-kind.bfx", labs.uk, [labs.fr], [file_entry("series/s1.json", "series", b"{}")])
    [rejected] = run(labs.fr, bundle, outbox=tmp_path / "out").of("rejected")
    assert rejected.exit_code == 3 and "which this reader does not know" in rejected.reason


# --- a crash during the correlation --------------------------------------------------------------------


def _import_process(lab: LabHome, inbox: Path, outbox: Path, backend: Backend) -> subprocess.Popen:
    env = {**os.environ, "BALLISTICS_HOME": str(lab.home), "BALLISTICS_PASSPHRASE": PASSPHRASE.decode(), **backend.env(lab.home)}
    command = "import sys, cli; sys.exit(cli.main(sys.argv[1:]))"
    return subprocess.Popen(
        [sys.executable, "-c", command, "bundle", "import", str(inbox), "--outbox", str(outbox), "--json"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _correlation_state(engine: sa.Engine) -> tuple[str, int] | None:
    """The state of the one correlation and the number of leads, once the bundle is committed."""
    try:
        with engine.connect() as conn:
            row = conn.execute(sa.text("SELECT state FROM correlations")).first()
            leads = conn.execute(sa.text("SELECT count(*) FROM leads")).scalar()
    except sa.exc.SQLAlchemyError:  # not migrated yet
        return None
    return None if row is None else (str(row[0]), int(leads or 0))


def test_sigkill_during_the_correlation_leaves_no_half_made_lead_and_a_rerun_finishes(labs: Labs, tmp_path: Path, backend: Backend) -> None:
    inbox, outbox = tmp_path / "inbox", tmp_path / "out"
    request(labs.uk, inbox / "req.bfx", "F01-01", "F02-02")  # two scans: two leads, made together or not at all
    Store.open(labs.fr.home).close()
    engine = create_engine(backend.url(labs.fr.home))
    proc = _import_process(labs.fr, inbox, outbox, backend)
    deadline = time.monotonic() + 120
    state = None
    while proc.poll() is None and time.monotonic() < deadline:
        state = _correlation_state(engine)
        if state is not None:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    state = _correlation_state(engine)
    assert state is not None, "the bundle was not committed before the kill"
    assert state in (("pending", 0), ("searched", 2), ("answered", 2))  # never some of the leads
    killed_during_search = state == ("pending", 0)

    proc = _import_process(labs.fr, inbox, outbox, backend)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr.decode()
    doc = json.loads(stdout)
    assert [o["path"] for o in doc["duplicates"]] == [str(inbox / "req.bfx")]
    assert _correlation_state(engine) == ("answered", 2)
    engine.dispose()
    store = open_store(labs.fr)
    assert sorted((x.partner_exhibit, x.our_case) for x in store.leads()) == [("CS1", "FR-2025-F01-03"), ("CS1-2", "FR-2025-F02-01")]
    assert len(list(outbox.glob("response-*.bfx"))) >= 1
    if killed_during_search:
        [finished] = doc["correlations"]
        assert len(finished["leads"]) == 2 and finished["response"]
    assert not list((labs.fr.home / "import").iterdir())


def test_a_revision_0005_database_gains_the_intelligence_tables_and_keeps_its_ledger(tmp_path: Path, backend: Backend) -> None:
    from ballistics.schema import current_revision, migrate

    home = tmp_path / "old"
    home.mkdir()
    engine = create_engine(backend.url(home))
    migrate(engine, target="0005")
    row = {
        "sender_lab": "UK-FSL",
        "bundle_id": "ab" * 16,
        "sender_key_id": "cd" * 32,
        "sequence": 7,
        "header_hash": "ef" * 32,
        "kind": "findings",
        "path": "/inbox/b.bfx",
        "details": "{}",
        "imported": "2026-01-15T09:30:00Z",
        "receipt_sha256": None,
    }
    with engine.begin() as conn:
        conn.execute(sa.text(f"INSERT INTO bundle_ledger ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)})"), row)
    engine.dispose()
    store = Store.open(home)
    try:
        with store.engine.connect() as conn:
            assert current_revision(conn) == "0006"
            assert {"requests_sent", "request_answers", "correlations", "leads", "hits_received"} <= set(sa.inspect(conn).get_table_names())
        [entry] = store.ledger()
        assert (entry.bundle_id, entry.sequence, entry.kind) == ("ab" * 16, 7, "findings")
        assert store.leads() == [] and store.sent_requests() == [] and store.correlations() == []
    finally:
        store.close()
