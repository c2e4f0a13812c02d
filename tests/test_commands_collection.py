"""``db`` and ``search`` as an examiner uses them: exhibits by name, folders, images, the audit trail."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, SAMPLE_DATA

from cli import main


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    code = main([*args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_exhibits_are_named_by_case_and_exhibit_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    first, second, other = (str(SAMPLE_DATA / f"{name}.x3p") for name in ("F01-01", "F01-02", "F02-01"))
    assert main(["db", "add", first, second, "--case", "UK-2026-0117", "--exhibit", "CS1"]) == 0
    err = capsys.readouterr().err
    assert f"{first}: added as exhibit #1 UK-2026-0117/CS1 (lab local)" in err  # the number it assigned
    assert f"{second}: added as exhibit #2 UK-2026-0117/CS1-2 (lab local)" in err
    assert main(["db", "add", other, "--case", "UK-2025-0311", "--exhibit", "K1"]) == 0
    capsys.readouterr()

    code, listed = run_json(capsys, "db", "list", "--case", "UK-2025-0311")
    assert code == 0 and [(e["case"], e["exhibit"]) for e in listed["exhibits"]] == [("UK-2025-0311", "K1")]
    code, shown = run_json(capsys, "db", "show", "UK-2026-0117/CS1-2")
    assert code == 0 and shown["id"] == 2 and shown["original_name"] == "F01-02.x3p"
    code, compared = run_json(capsys, "compare", "UK-2026-0117/CS1", "UK-2026-0117/CS1-2")
    assert code == 0 and compared["decision"] == "identification"
    code, by_number = run_json(capsys, "compare", "1", "UK-2025-0311/K1")
    assert code == 0 and by_number["decision"] == "elimination"
    code, found = run_json(capsys, "search", "UK-2026-0117/CS1", "--shortlist", "2", "--workers", "1")
    assert code == 0
    assert [(c["case"], c["exhibit"]) for c in found["candidates"]][:1] == [("UK-2026-0117", "CS1-2")]
    code, gone = run_json(capsys, "db", "remove", "UK-2025-0311/K1")
    assert code == 0 and gone["removed"]["case"] == "UK-2025-0311"
    assert main(["db", "show", "UK-2025-0311/K1"]) == 3
    assert capsys.readouterr().err == "error: UK-2025-0311/K1: no such exhibit in the collection\n"
    assert main(["compare", "NO-SUCH/CASE", first]) == 3
    assert capsys.readouterr().err.startswith("error: NO-SUCH/CASE: neither a scan file nor a stored exhibit")


def test_a_scan_is_filed_once_and_a_second_filing_says_where_it_is(capsys: pytest.CaptureFixture[str]) -> None:
    scan = str(SAMPLE_DATA / "F01-01.x3p")
    assert main(["db", "add", scan, "--case", "C1", "--exhibit", "K1"]) == 0
    assert main(["db", "add", scan, "--case", "C1", "--exhibit", "K1"]) == 0  # the same filing: nothing changes
    assert "already exhibit #1 C1/K1 (lab local); nothing changed" in capsys.readouterr().err
    code, doc = run_json(capsys, "db", "add", scan, "--case", "C2", "--exhibit", "Q1")
    assert code == 2
    assert doc["results"][0]["conflict"] and "not filed as C2/Q1: this scan is already exhibit #1 C1/K1" in doc["results"][0]["message"]
    code, listed = run_json(capsys, "db", "list")
    assert [(e["case"], e["exhibit"]) for e in listed["exhibits"]] == [("C1", "K1")]


def test_db_add_takes_a_folder_and_images_with_their_pixel_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "casework scans"
    folder.mkdir()
    for name in ("F01-01.x3p", "F01-02.png"):
        shutil.copy(SAMPLE_DATA / name, folder / name)
    (folder / "notes.txt").write_text("not a scan")
    assert main(["db", "add", str(folder), "--case", "C1", "--exhibit", "K1"]) == 3  # the image needs its pixel size
    assert "--pixel-um" in capsys.readouterr().err
    code, doc = run_json(capsys, "db", "add", str(folder), "--case", "C1", "--exhibit", "K1", "--pixel-um", "6.25")
    assert code == 0
    assert [(r["exhibit"]["exhibit"], Path(r["file"]).name) for r in doc["results"]] == [("K1", "F01-01.x3p"), ("K1-2", "F01-02.png")]
    code, found = run_json(capsys, "search", str(folder / "F01-02.png"), "--pixel-um", "6.25", "--workers", "1")
    assert code == 0 and found["searched"] == 1  # every exhibit but the query itself


def test_image_without_pixel_size_names_the_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = SAMPLE_DATA / "F01-02.png"
    assert main(["db", "add", str(image), "--case", "C1", "--exhibit", "K1"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {image}: ") and "--pixel-um" in err


def test_collection_commands_are_in_the_audit_log(capsys: pytest.CaptureFixture[str]) -> None:
    scans = [str(SAMPLE_DATA / f"{name}.x3p") for name in ("F01-01", "F01-02")]
    assert main(["db", "add", *scans, "--case", "C1", "--exhibit", "K1"]) == 0
    assert main(["search", scans[0], "--workers", "1", "--json"]) == 0
    assert main(["db", "remove", "C1/K1-2"]) == 0
    capsys.readouterr()
    code, log = run_json(capsys, "audit", "show")
    events = {e["type"]: e["details"] for e in log["events"]}
    assert code == 0 and {"db_add", "search", "db_remove"} <= set(events)
    assert [x["exhibit"] for x in events["db_add"]["exhibits"]] == ["K1", "K1-2"]
    assert events["search"]["query"]["path"] == scans[0] and events["search"]["searched"] == 1
    assert events["db_remove"]["case"] == "C1" and events["db_remove"]["exhibit"] == "K1-2"
    # a lab without keys has no audit key: its chained events prove nothing until accepted explicitly
    assert main(["audit", "verify"]) == 4
    assert main(["audit", "verify", "--accept-unsigned-tail"]) == 0


def test_tables_keep_case_and_exhibit_numbers_whole_at_80_columns(home: Path) -> None:
    env = {**os.environ, "COLUMNS": "80", "BALLISTICS_HOME": str(home)}
    cli = [sys.executable, str(REPO / "cli.py")]
    for name, case in (("F01-01", "UK-2026-0117-LONG-CASE"), ("F02-01", "FR-2025-0401")):
        subprocess.run(
            [
                *cli,
                "db",
                "add",
                str(SAMPLE_DATA / f"{name}.x3p"),
                "--case",
                case,
                "--exhibit",
                "CS1",
                "--calibre",
                "9mm Luger",
                "--firing-pin-shape",
                "hemispherical",
            ],
            check=True,
            env=env,
            capture_output=True,
        )
    listing = subprocess.run([*cli, "db", "list"], check=True, env=env, capture_output=True, text=True).stdout
    assert max(len(line) for line in listing.splitlines()) <= 80
    assert "UK-2026-0117-LONG-CASE/CS1" in listing and "FR-2025-0401/CS1" in listing
    sha = json.loads(subprocess.run([*cli, "db", "show", "1", "--json"], check=True, env=env, capture_output=True, text=True).stdout)[
        "sha256"
    ]
    assert sha[:12] in listing
    shown = subprocess.run([*cli, "db", "show", "1"], check=True, env=env, capture_output=True, text=True).stdout
    assert sha in shown.replace("│", "").replace(" ", "").replace("\n", "")  # the full hash, to copy


def test_work_before_keys_init_is_reattributed_explicitly_then_exported(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from exchange_support import PASSPHRASE, introduce, make_lab

    monkeypatch.setenv("BALLISTICS_PASSPHRASE", PASSPHRASE.decode())
    scans = [str(SAMPLE_DATA / f"{name}.x3p") for name in ("F01-01", "F01-02")]
    record = tmp_path / "match.json"
    assert main(["db", "add", scans[0], "--case", "UK-2026-0117", "--exhibit", "CS1"]) == 0
    assert main(["compare", scans[0], scans[1], "--record", str(record)]) == 0
    assert "filed under lab 'local'" in capsys.readouterr().err  # said, not silent
    assert json.loads(record.read_text())["lab"]["id"] == "local"

    assert main(["keys", "init", "--lab", "UK-FSL", "--name", "UK lab", "--country", "GB"]) == 0
    partner = make_lab(tmp_path, "FR-IRCGN", "FR")
    from exchange.keys import load_identity

    me = type(partner)(home, load_identity(home, PASSPHRASE))
    introduce(me, partner)
    bundle = tmp_path / "out.bfx"
    capsys.readouterr()
    assert main(["bundle", "export", "--to", "FR-IRCGN", "--record", str(record), "-o", str(bundle)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {record}: ") and "reattribute" in err and not bundle.exists()

    code, moved = run_json(capsys, "db", "reattribute", str(record))
    assert code == 0 and moved["to"]["id"] == "UK-FSL" and moved["exhibits"] == 1 and len(moved["records"]) == 1
    assert json.loads(record.read_text())["lab"] == {"id": "UK-FSL", "name": "UK lab", "country": "GB"}
    code, listed = run_json(capsys, "db", "list")
    assert {e["lab"] for e in listed["exhibits"]} == {"UK-FSL"}
    assert main(["bundle", "export", "--to", "FR-IRCGN", "--record", str(record), "-o", str(bundle)]) == 0
    code, log = run_json(capsys, "audit", "show")
    assert "records_reattributed" in [e["type"] for e in log["events"]] and main(["audit", "verify"]) == 0
