"""Court reports: a real comparison of sample cases recorded in a real home, reported, opened in a real browser, printed, signed.

The browser and PDF tests run headless Chromium (Debian ``chromium``) with no network and
read the PDF with poppler (``pdftotext``, ``pdftoppm``); they skip, naming what is missing, where
those are not installed (``.ci/run`` installs them).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from markupsafe import Markup
from PIL import Image

import cli
from ballistics.records import load_record, write_record
from ballistics.report_pdf import chromium_command, find_chromium
from exchange.keys import load_card
from exchange.trust import TrustStore
from tests.conftest import SAMPLE_DATA
from tests.exchange_support import PASSPHRASE, make_lab

HOSTILE_CASE = "UK-2026-<script>alert('case')</script>&0117"
HOSTILE_EXAMINER = 'Dr A. <img src="https://evil.example/x.png" onerror="alert(1)"> Smith'
REVIEWER = "J. O'Brien & Partners"


@dataclass
class Made:
    home: Path
    folder: Path
    record: Path
    html: Path
    pdf: Path | None


def run(*args: str | Path) -> int:
    return cli.main([str(a) for a in args])


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Made]:
    """A lab with keys; a comparison of two shots of one simulated pistol, recorded; its report (HTML, PDF when Chromium is here), signed."""
    root = tmp_path_factory.mktemp("report")
    lab = make_lab(root, "UK-FSL")
    folder = root / "out"
    folder.mkdir()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("BALLISTICS_PASSPHRASE", PASSPHRASE.decode())
        env.setenv("BALLISTICS_HOME", str(lab.home))
        assert (
            run(
                "compare",
                SAMPLE_DATA / "F01-01.x3p",
                SAMPLE_DATA / "F01-02.x3p",
                "--record",
                folder / "record.json",
                "--case",
                HOSTILE_CASE,
                "--examiner",
                HOSTILE_EXAMINER,
                "--reviewer",
                REVIEWER,
                "--conclusion",
                "identification",
                "--verbal-conclusion",
                "moderately-strong-same-source",
                "--remarks",
                "Marks of good quality <b>on both</b>",
                "--reference-exhibit",
                "TF1",
                "--questioned-exhibit",
                "CS1",
            )
            == 0
        )
        pdf = folder / "report.pdf" if find_chromium() else None
        assert run("report", folder / "record.json", "-o", folder / "report.html", *(["--pdf", pdf] if pdf else []), "--sign") == 0
    yield Made(lab.home, folder, folder / "record.json", folder / "report.html", pdf)


class _Page(HTMLParser):
    """Text (script and style bodies left out), every tag, and every attribute that can name a resource."""

    URL_ATTRIBUTES = frozenset({"src", "href", "srcset", "action", "formaction", "poster", "data", "background", "xlink:href", "ping"})

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[str] = []
        self.urls: list[tuple[str, str, str]] = []
        self.metas: list[dict[str, str | None]] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag in ("script", "style"):
            self._skip += 1
        if tag == "meta":
            self.metas.append(dict(attrs))
        for name, value in attrs:
            if name in self.URL_ATTRIBUTES or name.startswith("on") or (name == "style" and value and "url(" in value):
                self.urls.append((tag, name, value or ""))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.text.append(data)


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def policy(html: str) -> str:
    """The page's Content-Security-Policy (its meta element)."""
    return next(str(m["content"]) for m in parse(html).metas if (m.get("http-equiv") or "").lower() == "content-security-policy")


def words(text: str) -> str:
    return " ".join(text.split())


def in_order(text: str, statements: list[str]) -> None:
    """Every statement is in ``text``, each after the one before."""
    at = 0
    for statement in statements:
        found = text.find(statement, at)
        assert found >= 0, f"{statement!r} missing after position {at}: ...{text[at : at + 300]}..."
        at = found + len(statement)


def key_statements(record: dict) -> list[str]:
    """What a reader must find, in the order a statement is read."""
    lr = record["likelihood_ratio"]
    return [
        "Laboratory",
        "Laboratory UK-FSL",
        HOSTILE_CASE,
        "TF1",
        "CS1",
        HOSTILE_EXAMINER,
        REVIEWER,
        "The question and the propositions",
        "fired by the same firearm?",
        lr["propositions"]["same_source"],
        lr["propositions"]["different_source"],
        "Method",
        f"ballistics {record['comparison']['software']['version']}",
        "cmc.ccf_threshold",
        "Cllr",
        "Misleading evidence, same source",
        "ballistics calibrate --pairs-csv",
        "Results",
        "Congruent matching cells",
        "Likelihood ratio",
        lr["verbal"]["statement"],
        "interval",
        "The examiner's conclusion",
        "identification",
        "Marks of good quality <b>on both</b>",
        "Figures",
        "Figure 1. The scans compared",
        "Figure 3. Validation of the calibration",
        "Integrity",
        record["scans"]["reference"]["sha256"],
        record["scans"]["questioned"]["sha256"],
    ]


# --- the HTML ----------------------------------------------------------------------------------


def test_report_states_the_record_in_reading_order(made: Made) -> None:
    record = load_record(made.record)
    assert record["lab"]["id"] == "UK-FSL" and record["conclusion"]["decision"] == "identification"
    text = words(" ".join(parse(made.html.read_text("utf-8")).text))
    in_order(text, key_statements(record))
    scores = record["scores"]
    in_order(
        text,
        [
            f"original rule (Song 2013) — deciding {scores['cmc_forward']} {scores['cmc_backward']} {scores['cmc_original']}",
            f"rotated by {scores['rotation_deg']:.1f}°",
            "gives the counts and registration the record states",
        ],
    )
    # the scans are in the collection: the High CMC directions, which a record does not carry, are recomputed
    assert re.search(rf"High CMC \(Tong 2015\) \d+ \d+ {scores['cmc_high']} ", text), text
    assert "not recorded" not in text


def test_report_loads_nothing_from_anywhere(made: Made) -> None:
    page = parse(made.html.read_text("utf-8"))
    assert page.urls, "the figures' sources were not seen: the check would pass on anything"
    for tag, name, value in page.urls:
        assert name in ("src",) and tag == "img" and value.startswith("data:image/png;base64,"), (tag, name, value[:80])
    assert not {"link", "iframe", "object", "embed", "base"} & set(page.tags)
    # the comparison view's scripts are inline (no script has a src: every src and href is checked above)
    assert "script" in page.tags
    rules = policy(made.html.read_text("utf-8"))
    assert "default-src 'none'" in rules and "img-src data:" in rules and "script-src 'unsafe-inline'" in rules


def test_record_strings_are_escaped(made: Made) -> None:
    raw = made.html.read_text("utf-8")
    for hostile in (HOSTILE_CASE, HOSTILE_EXAMINER, "<b>on both</b>"):
        assert hostile not in raw
    assert "UK-2026-&lt;script&gt;alert(&#39;case&#39;)&lt;/script&gt;&amp;0117" in raw
    page = parse(raw)
    assert page.tags.count("img") == 3  # the three figures; the examiner's <img> is text
    assert HOSTILE_EXAMINER in words(" ".join(page.text))


def test_hashes_are_those_of_the_files(made: Made) -> None:
    raw = made.html.read_text("utf-8")
    text = words(" ".join(parse(raw).text))
    for name in ("F01-01.x3p", "F01-02.x3p"):
        assert hashlib.sha256((SAMPLE_DATA / name).read_bytes()).hexdigest() in text
    assert f"{hashlib.sha256(made.record.read_bytes()).hexdigest()}" in text  # the record file is its stored form
    pngs = [base64.b64decode(v.split(",", 1)[1]) for _, _, v in parse(raw).urls]
    for k, png in enumerate(pngs, 1):
        assert png.startswith(b"\x89PNG") and f"Figure {k} (PNG as embedded) {hashlib.sha256(png).hexdigest()}" in text


def test_report_of_a_record_named_by_its_id(made: Made, tmp_path: Path) -> None:
    record = load_record(made.record)
    assert run("--home", made.home, "report", record["record_id"], "-o", tmp_path / "by-id.html") == 0
    text = words(" ".join(parse((tmp_path / "by-id.html").read_text("utf-8")).text))
    in_order(text, key_statements(record))
    assert "from the collection" in text


def test_unknown_record_is_one_line_exit_3(made: Made, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("--home", made.home, "report", "no-such-record", "-o", tmp_path / "x.html") == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: no-such-record: neither a record file nor the id of a record in the collection"]
    assert not (tmp_path / "x.html").exists()


def test_a_partner_record_without_scans_is_reported_without_figures(made: Made, tmp_path: Path) -> None:
    """A partner's record arrives without its scans: the report says so, keeps every number, and draws what it can."""
    record = load_record(made.record)
    for side in ("reference", "questioned"):
        record["scans"][side].pop("path")  # as sent: the partner's paths mean nothing here
    write_record(record, tmp_path / "partner.json")
    assert run("--home", tmp_path / "partner-home", "report", tmp_path / "partner.json", "-o", tmp_path / "partner.html") == 0
    text = words(" ".join(parse((tmp_path / "partner.html").read_text("utf-8")).text))
    in_order(text, ["Likelihood ratio", record["likelihood_ratio"]["verbal"]["statement"]])
    in_order(
        text, ["Figures", "are not available here", "could not be drawn", "Figure 1. Validation of the calibration", "not available here"]
    )
    assert "Figure 2" not in text
    assert "High CMC (Tong 2015) not recorded not recorded" in text  # only the deciding rule's directions travel in a record


def test_a_record_without_likelihood_ratio_says_so(made: Made, tmp_path: Path) -> None:
    record = load_record(made.record)
    del record["likelihood_ratio"]  # a 2-D image, or parameters no calibration covers
    for side in ("reference", "questioned"):
        record["scans"][side].pop("path")
    write_record(record, tmp_path / "no-lr.json")
    assert run("--home", tmp_path / "h", "report", tmp_path / "no-lr.json", "-o", tmp_path / "no-lr.html") == 0
    text = words(" ".join(parse((tmp_path / "no-lr.html").read_text("utf-8")).text))
    in_order(text, ["the record states no likelihood ratio, so no calibration applies", "The record states no likelihood ratio"])
    assert "The findings provide" not in text and "Figure 1" not in text


def test_the_report_is_in_the_audit_log(made: Made) -> None:
    events = [json.loads(line) for line in (made.home / "audit" / "audit.jsonl").read_text().splitlines()]
    reports = [e for e in events if e["type"] == "report" and e["details"]["report"]["path"] == str(made.html)]
    assert len(reports) == 1  # other tests report the same record to other files
    details = reports[0]["details"]
    assert details["record_id"] == load_record(made.record)["record_id"]
    assert details["report"]["sha256"] == hashlib.sha256(made.html.read_bytes()).hexdigest()
    assert details["signed"] == [f"{made.html}.sig", *([f"{made.pdf}.sig"] if made.pdf else [])]
    assert run("--home", made.home, "audit", "verify") == 0


def with_section(made: Made) -> tuple[str, str]:
    """The report rendered without and with an inserted section that runs an inline script."""
    from ballistics.report import assemble_report
    from ballistics.report_html import ReportSection, render_report

    record = load_record(made.record)
    for side in ("reference", "questioned"):
        record["scans"][side].pop("path")  # no scans: nothing to draw, quick
    report = assemble_report(record, record_source="test", record_file=None, stored_scan=lambda sha: None, calibrations=[])
    view = ReportSection(
        "view",
        "Comparison view",
        Markup('<p id="v">static</p><script>document.getElementById("v").textContent = "script ran"</script>'),
        scripts=True,
    )
    return render_report(report).decode(), render_report(report, [view]).decode()


def test_inserted_section_is_placed_after_the_figures_and_may_run_scripts(made: Made) -> None:
    plain, html = with_section(made)
    assert "script-src 'none'" in policy(plain) and "script-src 'unsafe-inline'" in policy(html)
    in_order(words(" ".join(parse(html).text)), ["7. Figures", "Comparison view", "static", "9. Integrity"])
    assert "Comparison view" not in plain and "8. Integrity" in plain


# --- in the browser and on paper ---------------------------------------------------------------


def chromium() -> str:
    found = find_chromium()
    if found is None:
        pytest.skip("headless Chromium is not installed (Debian package chromium; .ci/run installs it)")
    return found


def poppler() -> None:
    for tool in ("pdftotext", "pdftoppm"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (Debian package poppler-utils; .ci/run installs it)")


def headless(page: Path, profile: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Chromium on ``page`` without network, with the page's console on stderr."""
    command = chromium_command(chromium(), profile, "--enable-logging=stderr", "--v=0", *arguments, page.resolve().as_uri())
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=True)


def console(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def test_browser_check_sees_a_blocked_load(tmp_path: Path) -> None:
    """The console check below can fail: a page that tries to fetch an image is reported."""
    page = tmp_path / "bad.html"
    page.write_text(
        "<!DOCTYPE html><meta http-equiv='Content-Security-Policy' content=\"default-src 'none'\"><img src='https://example.org/x.png'>"
    )
    assert any("Content Security Policy" in line for line in console(headless(page, tmp_path / "p", "--dump-dom").stderr))


def test_report_in_headless_chromium(made: Made, tmp_path: Path) -> None:
    record = load_record(made.record)
    dom = headless(made.html, tmp_path / "profile", "--dump-dom")
    assert console(dom.stderr) == []  # no error, no blocked load, no message at all
    text = words(" ".join(parse(dom.stdout).text))
    in_order(text, key_statements(record))
    # the comparison view runs in the report (its script drew it without a console message)
    in_order(text, ["7. Figures", "8. The comparison in the browser", "9. Integrity"])
    shot = tmp_path / "report.png"
    done = headless(made.html, tmp_path / "profile2", "--window-size=1240,1754", "--hide-scrollbars", f"--screenshot={shot}")
    assert console(done.stderr) == []
    pixels = np.asarray(Image.open(shot).convert("L"), float)
    assert pixels.shape == (1754, 1240)
    assert pixels.std() > 20 and (pixels < 100).mean() > 0.005  # text and tables, not a blank page
    shutil.copy(shot, made.folder / "screenshot.png")


def test_inserted_script_runs_in_chromium(made: Made, tmp_path: Path) -> None:
    page = tmp_path / "with-view.html"
    page.write_text(with_section(made)[1], "utf-8")
    dom = headless(page, tmp_path / "profile", "--dump-dom")
    assert console(dom.stderr) == [] and '<p id="v">script ran</p>' in dom.stdout


def test_pdf_text_and_pages(made: Made, tmp_path: Path) -> None:
    chromium()
    poppler()
    assert made.pdf is not None
    record = load_record(made.record)
    text = words(subprocess.run(["pdftotext", made.pdf, "-"], capture_output=True, text=True, check=True).stdout)
    in_order(text, [s for s in key_statements(record) if len(s) < 60])  # long sentences wrap over table cells
    assert record["scans"]["reference"]["sha256"] in text.replace(" ", "")
    subprocess.run(["pdftoppm", "-png", "-r", "60", made.pdf, tmp_path / "page"], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 5
    landscape = 0
    for page in pages:
        pixels = np.asarray(Image.open(page).convert("L"), float)
        assert pixels.std() > 10, f"{page.name} is blank"
        landscape += pixels.shape[1] > pixels.shape[0]
        shutil.copy(page, made.folder / page.name)
    assert landscape == 3  # one landscape page per figure


def test_pdf_without_chromium_is_one_line_exit_3(
    made: Made, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BALLISTICS_CHROMIUM", "no-such-chromium-here")
    code = run("--home", made.home, "report", made.record, "-o", tmp_path / "r.html", "--pdf", tmp_path / "r.pdf")
    assert code == 3
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {tmp_path / 'r.pdf'}: cannot print the PDF: headless Chromium is not installed (Debian: apt-get install chromium)"
    ]
    assert not (tmp_path / "r.pdf").exists()


# --- signatures --------------------------------------------------------------------------------


def test_report_help_lists_both_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("report", "--help") == 0
    shown = capsys.readouterr().out
    assert "make" in shown and "verify" in shown and "RECORD_OR_ID" in shown


def test_signed_report_verifies(made: Made, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("--home", made.home, "report", "verify", made.html) == 0
    line = capsys.readouterr().out.strip()
    record = load_record(made.record)
    assert "signed by Laboratory UK-FSL (UK-FSL, GB)" in line and "this lab's own key" in line and record["record_id"] in line
    assert hashlib.sha256(made.html.read_bytes()).hexdigest() in line
    signature = json.loads(Path(f"{made.html}.sig").read_text())
    assert signature["type"] == "ballistics-report-signature" and signature["body"]["report"]["name"] == "report.html"
    if made.pdf is not None:
        assert run("--home", made.home, "report", "verify", made.pdf) == 0


def test_one_changed_byte_fails_verification(made: Made, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = bytearray(made.html.read_bytes())
    at = data.index(b"identification")
    data[at] = ord("I")  # "Identification": one byte, and a conclusion that still reads well
    changed = tmp_path / "report.html"
    changed.write_bytes(bytes(data))
    assert run("--home", made.home, "report", "verify", changed, "--signature", f"{made.html}.sig") == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the report was altered after signing" in err[0]


def test_untrusted_signer_fails_until_trusted(made: Made, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    partner = make_lab(tmp_path, "FR-IRCGN", "FR")
    assert run("--home", partner.home, "report", "verify", made.html) == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not in the trust store" in err[0]
    card = load_card(made.home)
    TrustStore.open(partner.home).trust(card, card.fingerprint, where="test")
    assert run("--home", partner.home, "report", "verify", made.html) == 0
    assert "a trusted partner card" in capsys.readouterr().out


def test_signature_of_another_report_fails(made: Made, tmp_path: Path) -> None:
    other = tmp_path / "other.html"
    other.write_bytes(made.html.read_bytes() + b"\n")
    assert run("--home", made.home, "report", "verify", other, "--signature", f"{made.html}.sig") == 4
    forged = json.loads(Path(f"{made.html}.sig").read_text())
    forged["body"]["report"]["sha256"] = hashlib.sha256(other.read_bytes()).hexdigest()
    (tmp_path / "forged.sig").write_text(json.dumps(forged))
    assert run("--home", made.home, "report", "verify", other, "--signature", tmp_path / "forged.sig") == 4
