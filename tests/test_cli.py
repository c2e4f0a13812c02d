"""The entry point: help an examiner can read, one error line (and one JSON error), fast start-up, quiet packaging."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from conftest import REPO, SAMPLE_DATA

import cli

#: What a bookkeeping command must not pay for at start-up.
HEAVY = ("numpy", "scipy", "cv2", "skimage", "matplotlib", "sqlalchemy", "cryptography", "jsonschema", "x3pio", "distributed")


def all_commands() -> list[list[str]]:
    """Every command path of the application: [], ['compare'], ['db', 'add'], ..."""
    paths: list[list[str]] = []

    def walk(command: typer.main.TyperGroup | object, prefix: list[str]) -> None:
        paths.append(prefix)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*prefix, name])

    walk(typer.main.get_command(cli.app), [])
    return paths


def test_every_help_page_reads_plainly_at_80_columns(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    pages = {}
    for path in all_commands():
        assert cli.main([*path, "--help"]) == 0
        pages[" ".join(path)] = capsys.readouterr().out
    assert len(pages) > 20
    for name, text in pages.items():
        assert "<bool>" not in text, name  # a flag never suggests --json true
        cut = [line for line in text.splitlines() if line.rstrip().endswith("...") and not line.startswith("Usage:")]
        assert cut == [], name  # command summaries wrap, never cut
        assert max(len(line) for line in text.splitlines()) <= 80, name
        for line in text.splitlines():
            option = line.strip().split(" ")[0]
            assert not option.startswith("--") or option.rstrip(",").endswith(tuple("abcdefghijklmnopqrstuvwxyz")), (name, line)
    compare = pages["compare"]
    for words in ("Tccf", "least correlation", "High CMC", "Tong 2015", "Song 2013", "default: 0.5;", "default: 125.0;"):
        assert words in " ".join(compare.split()), words
    search = " ".join(pages["search"].split())
    assert "vector index, signature shortlist, then the full CMC comparison" in search and "score: the correlation" in search
    assert "[default: one per CPU core]" in search and "[default: one per CPU core]" in " ".join(pages["validate"].split())


def test_usage_errors_are_one_line_and_one_json_document(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["db", "list", "--bogus"]) == 2
    captured = capsys.readouterr()
    assert captured.err == "error: -: No such option: --bogus (see --help)\n" and captured.out == ""
    assert cli.main(["db", "show", "--json"]) == 2  # missing argument
    captured = capsys.readouterr()
    assert json.loads(captured.out)["error"]["exit_code"] == 2 and captured.err.count("\n") == 1


def test_an_error_after_a_json_result_adds_no_second_document(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    for name, case in (("F01-01", "C1"), ("F01-02", "C9")):  # two chained events
        assert cli.main(["db", "add", str(SAMPLE_DATA / f"{name}.x3p"), "--case", case, "--exhibit", "K1"]) == 0
    log = next((home / "audit").glob("*.jsonl"))
    log.write_bytes(log.read_bytes().replace(b'"C1"', b'"C2"'))  # the first line no longer matches the second's link
    capsys.readouterr()
    code = cli.main(["audit", "verify", "--json"])
    out = capsys.readouterr().out
    assert code == 4 and json.loads(out)["status"] == "broken"  # exactly one document: json.loads fails on two


def test_missing_passphrase_without_a_terminal_names_the_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BALLISTICS_PASSPHRASE", raising=False)
    done = subprocess.run(
        [sys.executable, str(REPO / "cli.py"), "keys", "init", "--lab", "UK-FSL", "--name", "UK lab", "--country", "GB"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr == (
        "error: BALLISTICS_PASSPHRASE: no passphrase: set BALLISTICS_PASSPHRASE or run the command in a terminal to be asked\n"
    )


def test_bookkeeping_commands_do_not_import_the_science_or_the_crypto() -> None:
    probe = f"import sys, cli; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout.split() == []


def test_the_package_builds_without_warnings(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy, so that the build leaves nothing in the working tree
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "__pycache__", ".*_cache"))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path), str(source)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stdout + done.stderr and "deprecated" not in done.stdout + done.stderr
    wheel = next(tmp_path.glob("ballistics-*.whl"))
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert "ballistics/schemas/match-record.schema.json" in names and "commands/collection.py" in names and "cli.py" in names
    assert {
        "ballistics/migrations/env.py",
        "ballistics/migrations/script.py.mako",
        "ballistics/migrations/versions/v0004_alembic.py",
    } <= set(names)
    assert "ballistics/schemas/match-record-v1.schema.json" in names and "ballistics/calibrations/default.json" in names
    assert {
        f"ballistics/templates/{name}" for name in ("pair_view.html", "pair_view.js", "pair_view.css", "page.html", "search_report.html")
    } <= set(names)
