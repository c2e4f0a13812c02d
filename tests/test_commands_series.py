"""``series list`` and ``series show`` on a French collection with known truth, on both backends.

The collection holds a UK record imported from a real bundle (with its two scans), three French
exhibits filed by ``db add``, and French records of which only some are confirmed links:

- firearm 1 (cross-border): the UK's identification within UK-2026-0117 (K1 = F01-01, Q1 = F01-02)
  and France's identification of FR-2026-0042/E1 (F01-03) with the UK's Q1;
- firearm 2 (France alone): FR-2026-0100/E1 (F02-01) with FR-2026-0200/E1 (F02-02), and a
  version-1 record joining FR-2026-0300, whose scan (F02-03) the collection does not hold;
- not links: an algorithm's identification the examiner called an elimination (it would join
  the two firearms), and one with no examiner's conclusion.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO, SAMPLE_DATA, Backend
from exchange_support import PASSPHRASE, introduce, make_lab
from PIL import Image
from series_support import link_record
from test_commands_records import send

from ballistics.scan import sha256_file
from ballistics.series import CaseRef, series_id
from ballistics.store import Store
from cli import main

pytestmark = pytest.mark.usefixtures("backend")

CROSS_BORDER = series_id(CaseRef("FR-IRCGN", "FR-2026-0042"))
FRENCH = series_id(CaseRef("FR-IRCGN", "FR-2026-0100"))


@dataclass
class World:
    home: Path
    records: dict[str, dict]
    backend: Backend


def cli(*args: str) -> int:
    return main(list(args))


@pytest.fixture(scope="module")
def world(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp(f"series-{backend.name}")
    scan = {name: SAMPLE_DATA / f"{name}.x3p" for name in ("F01-01", "F01-02", "F01-03", "F02-01", "F02-02", "F02-03")}
    sha = {name: sha256_file(path) for name, path in scan.items()}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("BALLISTICS_PASSPHRASE", PASSPHRASE.decode())
        uk, fr = make_lab(root, "UK-FSL", "GB"), make_lab(root, "FR-IRCGN", "FR")
        introduce(uk, fr)
        home = ["--home", str(fr.home)]
        british, french = uk.identity.card.lab, fr.identity.card.lab
        records = {
            "uk": link_record(british, "UK-2026-0117", (sha["F01-01"], sha["F01-02"]), ("K1", "Q1"), log10_lr=5.3, day=2),
            "border": link_record(french, "FR-2026-0042", (sha["F01-03"], sha["F01-02"]), ("E1", "UK Q1"), log10_lr=4.6, day=3),
            "french": link_record(french, "FR-2026-0100", (sha["F02-01"], sha["F02-02"]), ("E1", "E1"), log10_lr=3.2, day=4),
            "said-no": link_record(french, "FR-2026-0100", (sha["F02-01"], sha["F01-03"]), ("E1", "E1"), afte="elimination", day=5),
            "unsaid": link_record(french, "FR-2026-0200", (sha["F02-02"], sha["F01-01"]), ("E1", "UK K1"), afte=None, day=6),
            "old": link_record(french, "FR-2026-0300", (sha["F02-03"], sha["F02-01"]), ("E3", "E1"), log10_lr=2.5, day=7, version=1),
        }
        bundle = send(uk, "FR-IRCGN", [records["uk"]], root / "outbox" / "uk.bfx", scans=[scan["F01-01"], scan["F01-02"]])
        assert cli(*home, "bundle", "import", str(bundle)) == 0
        for name, case in (("F01-03", "FR-2026-0042"), ("F02-01", "FR-2026-0100"), ("F02-02", "FR-2026-0200")):
            assert cli(*home, "db", "add", str(scan[name]), "--case", case, "--exhibit", "E1") == 0
        store = Store.open(fr.home)
        for key in ("border", "french", "said-no", "unsaid", "old"):
            store.add_record(records[key])
        store.close()
    yield World(fr.home, records, backend)


def run_json(capsys: pytest.CaptureFixture[str], world: World, *args: str) -> tuple[int, dict]:
    capsys.readouterr()
    code = cli("--home", str(world.home), *args, "--json")
    return code, json.loads(capsys.readouterr().out)


def test_series_list_finds_the_two_firearms_one_cross_border(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, listed = run_json(capsys, world, "series", "list")
    assert code == 0 and [s["id"] for s in listed["series"]] == [CROSS_BORDER, FRENCH]
    border, french = listed["series"]
    assert [(c["lab"]["id"], c["case"], c["exhibits"]) for c in border["cases"]] == [
        ("FR-IRCGN", "FR-2026-0042", ["E1"]),
        ("UK-FSL", "UK-2026-0117", ["K1", "Q1"]),  # the partner's exhibits, as the import filed them
    ]
    assert border["cross_border"] is True and border["countries"] == ["FR", "GB"]
    assert [lab["id"] for lab in border["labs"]] == ["FR-IRCGN", "UK-FSL"] and border["dates"] == ["2026-01-02", "2026-01-03"]
    assert [link["record_id"] for link in border["links"]] == [world.records["uk"]["record_id"], world.records["border"]["record_id"]]
    assert border["links"][1]["questioned"] == {"lab": "UK-FSL", "case": "UK-2026-0117", "exhibit": "Q1"}
    assert [(c["case"], c["exhibits"]) for c in french["cases"]] == [
        ("FR-2026-0100", ["E1"]),
        ("FR-2026-0200", ["E1"]),
        ("FR-2026-0300", ["E3"]),  # not filed: the version-1 record's own case
    ]
    assert french["cross_border"] is False and french["countries"] == ["FR"] and len(french["links"]) == 2
    assert run_json(capsys, world, "series", "list") == (code, listed)  # the same ids every time

    monkeypatch.setenv("COLUMNS", "200")
    assert cli("--home", str(world.home), "series", "list") == 0
    text = capsys.readouterr().out
    assert "2 firearm series" in text
    assert re.search(rf"{CROSS_BORDER} +2 +FR, GB +yes +2026-01-02 +FR-IRCGN *\n +2026-01-03 +UK-FSL", text)
    assert re.search(rf"{FRENCH} +3 +FR +no +2026-01-04 +FR-IRCGN", text)


def test_series_show_with_its_plot(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    figure = tmp_path / "series.png"
    code, shown = run_json(capsys, world, "series", "show", CROSS_BORDER, "--plot", str(figure))
    assert code == 0 and shown["id"] == CROSS_BORDER and shown["plot"] == str(figure) and len(shown["cases"]) == 2
    with Image.open(figure) as image:
        assert image.format == "PNG" and round(image.info["dpi"][0]) == 300
        assert 1000 <= image.size[0] <= 5000 and 800 <= image.size[1] <= 5000
    monkeypatch.setenv("COLUMNS", "200")
    assert cli("--home", str(world.home), "series", "show", FRENCH.lower()) == 0
    text = capsys.readouterr().out
    for phrase in (f"firearm series {FRENCH}", "cross-border", "no", "FR-IRCGN (Laboratory FR-IRCGN, FR)", "3 cases",
                   "2 confirmed links", "FR-IRCGN/FR-2026-0300/E3", "FR-IRCGN/FR-2026-0100/E1",
                   "strong support for same source (log10 LR +3.20)", "LR: 316.228, uncalibrated", "confirmed by: Examiner of FR-IRCGN (FR-IRCGN)"):  # fmt: skip
        assert phrase in text, phrase


def test_an_unknown_series_is_one_line_exit_3(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("--home", str(world.home), "series", "show", "S-000000000000") == 3
    assert capsys.readouterr().err == "error: S-000000000000: no such series (series list shows them)\n"
    absorbed = series_id(CaseRef("UK-FSL", "UK-2026-0117"))  # a member that is not the series' first case
    code, doc = run_json(capsys, world, "series", "show", absorbed)
    assert code == 3 and doc["error"]["reason"].startswith(
        f"no longer a series of its own: case UK-FSL/UK-2026-0117 is in series {CROSS_BORDER}"
    )


def test_listings_keep_ids_whole_at_80_columns(world: World) -> None:
    env = {**os.environ, **world.backend.env(world.home), "COLUMNS": "80", "BALLISTICS_HOME": str(world.home)}
    for command, ids in (
        (("series", "list"), [CROSS_BORDER, FRENCH]),
        (("series", "show", CROSS_BORDER), ["FR-IRCGN/FR-2026-0042/E1", "UK-FSL/UK-2026-0117/Q1"]),
        (("records", "list"), [record["record_id"][:8] for record in world.records.values()]),
    ):
        shown = subprocess.run([sys.executable, str(REPO / "cli.py"), *command], env=env, check=True, capture_output=True, text=True).stdout
        assert max(len(line) for line in shown.splitlines()) <= 80, command
        assert all(ident in shown for ident in ids), command
