"""``records list`` and ``records show``: the lab's own records and a partner's imported by a real bundle, on both backends."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from exchange_support import PASSPHRASE, LabHome, introduce, make_lab
from series_support import link_record

from ballistics.records import record_bytes, write_record
from ballistics.store import Store
from cli import main
from exchange.bundle import export_bundle

pytestmark = pytest.mark.usefixtures("backend")


def sha(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def run_json(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> tuple[int, dict]:
    code = main(["--home", str(home), *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def send(sender: LabHome, to: str, records: list[dict], out: Path, scans: Sequence[Path] = ()) -> Path:
    """A real bundle (signed, encrypted) of these records (and scans) from ``sender`` to lab ``to``."""
    files = []
    out.parent.mkdir(parents=True, exist_ok=True)
    for record in records:
        path = out.parent / f"{record['record_id']}.json"
        path.write_bytes(record_bytes(record))
        files.append(path)
    export_bundle(sender.home, sender.identity, sender.trust, out, recipients=[to], records=files, scans=scans)
    return out


@pytest.fixture
def labs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[LabHome, LabHome]:
    monkeypatch.setenv("BALLISTICS_PASSPHRASE", PASSPHRASE.decode())
    monkeypatch.setenv("COLUMNS", "220")
    uk, fr = make_lab(tmp_path, "UK-FSL", "GB"), make_lab(tmp_path, "FR-IRCGN", "FR")
    introduce(uk, fr)
    return uk, fr


def french_collection(uk: LabHome, fr: LabHome, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, dict]:
    """FR's collection: a UK record imported from a real bundle, and three of FR's own (version 1, 2, and one stating nothing)."""
    french = fr.identity.card.lab
    made = {
        "old": link_record(french, "FR-2025-0999", (sha("a"), sha("b")), afte="inconclusive-b", log10_lr=2.4, day=1, version=1),
        "uk": link_record(uk.identity.card.lab, "UK-2026-0117", (sha("c"), sha("d")), ("CS1", "CS2"), log10_lr=5.3, day=2),
        "fr": link_record(french, "FR-2026-0042", (sha("e"), sha("c")), ("E1", "UK CS1"), log10_lr=-1.2, afte="elimination", day=3),
        "bare": link_record(french, "FR-2026-0042", (sha("e"), sha("f")), ("E1", "E2"), afte=None, log10_lr=None, day=4),
    }
    bundle = send(uk, "FR-IRCGN", [made["uk"]], tmp_path / "outbox" / "uk.bfx")
    code, imported = run_json(capsys, fr.home, "bundle", "import", str(bundle))
    assert code == 0 and imported["imported"][0]["records"] == [made["uk"]["record_id"]]
    store = Store.open(fr.home)
    for key in ("old", "fr", "bare"):
        store.add_record(made[key])
    store.close()
    return made


def test_records_list_shows_own_and_partner_records_with_the_lr_in_words(
    labs: tuple[LabHome, LabHome], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uk, fr = labs
    made = french_collection(uk, fr, tmp_path, capsys)
    code, listed = run_json(capsys, fr.home, "records", "list")
    rows = listed["records"]
    assert code == 0 and [r["record_id"] for r in rows] == [made[k]["record_id"] for k in ("old", "uk", "fr", "bare")]  # oldest first
    old, partner, own, bare = rows
    assert partner["partner"] is True and {r["partner"] for r in (old, own, bare)} == {False}
    assert partner["lab"] == {"id": "UK-FSL", "name": "Laboratory UK-FSL", "country": "GB"} and partner["case"] == "UK-2026-0117"
    assert partner["exhibits"] == {"reference": "CS1", "questioned": "CS2"} and partner["decision"] == "identification"
    assert partner["cmc"] == 17 and partner["examiner_conclusion"]["afte_category"] == "identification"
    assert partner["likelihood_ratio"]["category"] == "very strong" and partner["likelihood_ratio"]["supports"] == "same source"
    assert own["likelihood_ratio"]["text"] == "moderate support for different sources (log10 LR -1.20)"
    assert own["examiner_conclusion"]["afte_category"] == "elimination"
    assert old["schema_version"] == 1 and old["examiner_conclusion"]["afte_category"] == "inconclusive-b"  # version 1's place for it
    assert old["likelihood_ratio"]["calibrated"] is False and old["likelihood_ratio"]["category"] is None
    assert bare["likelihood_ratio"] is None and bare["examiner_conclusion"] == {"afte_category": None, "verbal": None}

    assert main(["--home", str(fr.home), "records", "list"]) == 0
    text = capsys.readouterr().out
    assert text.count("partner") == 1  # the UK record alone
    for phrase in ("4 match records", "LR: very strong support for same source (log10 LR +5.30)",
                   "LR: 251.189, uncalibrated (version-1 record", "inconclusive-b", "algorithm: identification (CMC 17)", "CS1 vs CS2",
                   "examiner: none stated", "examiner: inconclusive-b", made["uk"]["record_id"][:8], "2026-01-02"):  # fmt: skip
        assert phrase in text, phrase
    assert "5.3 " not in text.replace("+5.30)", "")  # the number never stands alone


def test_records_list_filters_by_case_and_lab(labs: tuple[LabHome, LabHome], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uk, fr = labs
    made = french_collection(uk, fr, tmp_path, capsys)
    ids = {key: record["record_id"] for key, record in made.items()}
    for args, expected in (
        (("--lab", "UK-FSL"), [ids["uk"]]),
        (("--lab", "FR-IRCGN"), [ids["old"], ids["fr"], ids["bare"]]),
        (("--case", "FR-2026-0042"), [ids["fr"], ids["bare"]]),
        (("--case", "FR-2026-0042", "--lab", "FR-IRCGN"), [ids["fr"], ids["bare"]]),
        (("--case", "FR-2026-0042", "--lab", "UK-FSL"), []),
        (("--lab", "DE-BKA"), []),
    ):
        code, listed = run_json(capsys, fr.home, "records", "list", *args)
        assert code == 0 and [r["record_id"] for r in listed["records"]] == expected, args


def test_records_show_by_id_prefix_or_file_and_unknown_ids(
    labs: tuple[LabHome, LabHome], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uk, fr = labs
    made = french_collection(uk, fr, tmp_path, capsys)
    code, shown = run_json(capsys, fr.home, "records", "show", made["uk"]["record_id"])
    assert code == 0 and shown == made["uk"]  # the partner's record, as it was sent
    code, shown = run_json(capsys, fr.home, "records", "show", made["old"]["record_id"][:8].upper())
    assert code == 0 and shown == made["old"]  # version 1 kept as it came
    assert main(["--home", str(fr.home), "records", "show", made["uk"]["record_id"][:10]]) == 0
    text = capsys.readouterr().out
    for phrase in ("match record " + made["uk"]["record_id"], "Laboratory UK-FSL (UK-FSL, GB)", "H1 (same source)",
                   "very strong support", "examiner's conclusion (AFTE)", "identification (CMC 17)", "sha256 questioned: " + sha("d")):  # fmt: skip
        assert phrase in text, phrase

    for unknown in ("00000000-0000-4000-8000-000000000000", "0123abcd", "abc", "no such record"):
        assert main(["--home", str(fr.home), "records", "show", unknown]) == 3
        err = capsys.readouterr().err
        assert err.startswith(f"error: {unknown}: no stored match record has this id") and err.count("\n") == 1
    code, doc = run_json(capsys, fr.home, "records", "show", "00000000-0000-4000-8000-000000000000")
    assert code == 3 and doc["error"]["exit_code"] == 3 and "no stored match record" in doc["error"]["reason"]

    store = Store.open(fr.home)
    french = fr.identity.card.lab
    for n in (1, 2):
        store.add_record(link_record(french, "FR-1", (sha("g"), sha("h")), record_id=f"abcdef01-0000-4000-8000-00000000000{n}"))
    store.close()
    code, doc = run_json(capsys, fr.home, "records", "show", "abcdef01")
    assert code == 3 and "more than one stored match record" in doc["error"]["reason"]
    code, doc = run_json(capsys, fr.home, "records", "show", "abcdef01-0000-4000-8000-000000000002")
    assert code == 0 and doc["record_id"].endswith("2")


def test_records_show_reads_record_files_of_either_version(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_records import a_record, a_v1_record

    monkeypatch.setenv("COLUMNS", "200")

    new, old = write_record(a_record(), tmp_path / "v2.json"), write_record(a_v1_record(), tmp_path / "v1.json")
    assert main(["--home", str(home), "records", "show", str(new)]) == 0
    text = capsys.readouterr().out
    for phrase in ("H1 (same source)", "fired by the same firearm", "+3.69, interval +3.10 .. +3.69, bounds -2.58 .. +3.69",
                   "examiner's conclusion (AFTE)", "strong support, same source", "technical review", "B. Reviewer", "c" * 64):  # fmt: skip
        assert phrase in text
    assert main(["--home", str(home), "records", "show", str(old)]) == 0
    text = capsys.readouterr().out
    assert "250 (version 1: no calibration named)" in text and "inconclusive-b" in text and "poor marks" in text
    assert main(["--home", str(home), "records", "show", str(tmp_path / "missing.json")]) == 3
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'missing.json'}: cannot read")
