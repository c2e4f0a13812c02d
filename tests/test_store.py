"""The reference collection: real SQLite and PostgreSQL databases, content-addressed files under tmp_path."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from conftest import FADUL, SAMPLE_DATA, Backend
from test_records import comparison_dict

from ballistics.characteristics import ClassCharacteristics
from ballistics.errors import StoreError, UsageError
from ballistics.labs import DEFAULT_LAB, Lab
from ballistics.preprocess import prepare
from ballistics.records import build_record, load_record, validate_record
from ballistics.scan import load_scan
from ballistics.schema import (
    HEAD,
    LEGACY_REVISIONS,
    MIGRATIONS,
    cases,
    create_engine,
    current_revision,
    exhibits,
    labs,
    metadata,
    migrate,
    scans,
    schema_version,
)
from ballistics.store import Store
from ballistics.surface_cache import load_prepared, save_prepared
from cli import main

LAB = Lab("UK-FSL", "UK Forensic Science Laboratory", "GB")
PARTNER = Lab("FR-IRCGN", "IRCGN", "FR")

pytestmark = pytest.mark.usefixtures("backend")


def fadul(name: str) -> Path:
    return FADUL / f"Fadul {name}.x3p"


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".x3p", ".npz"))


def test_database_settings_of_each_backend(tmp_path: Path, backend: Backend) -> None:
    store = Store.open(tmp_path)
    with store.engine.connect() as conn:
        assert current_revision(conn) == HEAD
        if backend.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert (tmp_path / "ballistics.db").is_file()
        else:
            assert int(conn.exec_driver_sql("SHOW server_version_num").scalar()) >= 150000
            assert conn.exec_driver_sql("SHOW transaction_isolation").scalar() == "read committed"
            assert not (tmp_path / "ballistics.db").exists()
    store.close()


def test_add_is_content_addressed_and_idempotent(tmp_path: Path, real_scans: Path) -> None:
    store = Store.open(tmp_path / "home")
    first = store.add_exhibit_scan(fadul("1-1"), case_id="C1", exhibit_id="K1", lab=LAB, characteristics=ClassCharacteristics("9mm Luger"))
    assert first.added
    sha = first.exhibit.sha256
    assert first.exhibit.path == tmp_path / "home" / "scans" / sha[:2] / f"{sha}.x3p"
    assert first.exhibit.path.read_bytes() == fadul("1-1").read_bytes()
    before = files_under(tmp_path / "home")
    # the same bytes under another name, case and exhibit id: not filed again, and it says where the scan is
    copy = tmp_path / "renamed.x3p"
    shutil.copy(fadul("1-1"), copy)
    again = store.add_exhibit_scan(copy, case_id="C2", exhibit_id="Q9", lab=LAB)
    assert not again.added and again.conflict and "not filed as C2/Q9: this scan is already exhibit #1 C1/K1" in again.message
    same = store.add_exhibit_scan(copy, case_id="C1", exhibit_id="K1", lab=LAB)
    assert not same.added and not same.conflict and same.message.endswith("nothing changed")
    assert files_under(tmp_path / "home") == before
    assert [e.exhibit for e in store.exhibits()] == ["K1"]
    # the cached surface is the prepared one and a signature is stored
    assert np.array_equal(store.prepared(sha).surface, prepare(load_scan(fadul("1-1"))).surface.astype(np.float32), equal_nan=True)
    assert set(store.signatures([sha])) == {sha}


def test_an_exhibit_id_holds_one_scan(tmp_path: Path, real_scans: Path) -> None:
    store = Store.open(tmp_path)
    store.add_exhibit_scan(fadul("1-1"), case_id="C1", exhibit_id="K1", lab=LAB)
    with pytest.raises(StoreError, match="exhibit K1 of case C1 already holds scan"):
        store.add_exhibit_scan(fadul("1-2"), case_id="C1", exhibit_id="K1", lab=LAB)
    assert len(store.exhibits()) == 1


def test_filters_and_partner_exhibits_in_a_caller_transaction(tmp_path: Path, real_scans: Path) -> None:
    store = Store.open(tmp_path)
    store.add_exhibit_scan(
        fadul("1-1"), case_id="C1", exhibit_id="K1", lab=LAB, characteristics=ClassCharacteristics("9mm Luger", "hemispherical")
    )
    with store.transaction() as conn:
        store.add_exhibit_scan(
            fadul("2-1"),
            case_id="FR-7",
            exhibit_id="E1",
            lab=PARTNER,
            partner=True,
            characteristics=ClassCharacteristics("9mm Luger", "elliptical", "3 o'clock"),
            conn=conn,
        )
        store.add_exhibit_scan(
            fadul("3-1"),
            case_id="FR-7",
            exhibit_id="E2",
            lab=PARTNER,
            partner=True,
            characteristics=ClassCharacteristics(".40 S&W"),
            conn=conn,
        )
    assert [e.exhibit for e in store.exhibits(calibre="9mm Luger")] == ["K1", "E1"]
    assert [e.exhibit for e in store.exhibits(firing_pin_shape="elliptical")] == ["E1"]
    partner = store.exhibits(lab="FR-IRCGN")
    assert [e.exhibit for e in partner] == ["E1", "E2"] and all(e.partner for e in partner)
    assert not store.exhibit("1").partner and store.exhibit(partner[0].sha256[:8]).characteristics.ejector_position == "3 o'clock"


def test_a_failed_transaction_leaves_no_row_and_no_dangling_reference(tmp_path: Path, real_scans: Path) -> None:
    store = Store.open(tmp_path)
    with pytest.raises(RuntimeError), store.transaction() as conn:
        store.add_exhibit_scan(fadul("1-1"), case_id="C1", exhibit_id="K1", lab=PARTNER, partner=True, conn=conn)
        raise RuntimeError("bundle rejected half-way")
    assert store.exhibits() == []
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM scans").scalar() == 0
        assert conn.exec_driver_sql("SELECT count(*) FROM labs").scalar() == 0
    # the file written before the rollback is an unreferenced copy; adding again reuses it
    assert store.add_exhibit_scan(fadul("1-1"), case_id="C1", exhibit_id="K1", lab=LAB).added


def test_remove_deletes_rows_files_and_caches(tmp_path: Path, real_scans: Path) -> None:
    store = Store.open(tmp_path)
    kept = store.add_exhibit_scan(fadul("1-1"), case_id="C1", exhibit_id="K1", lab=LAB).exhibit
    gone = store.add_exhibit_scan(fadul("1-2"), case_id="C2", exhibit_id="K1", lab=LAB).exhibit
    assert store.remove_exhibit(str(gone.id)) == gone
    assert not gone.path.exists() and not store.cache_file(gone.sha256).exists()
    assert store.exhibits() == [kept] and kept.path.exists() and store.cache_file(kept.sha256).exists()
    assert store.signatures([gone.sha256]) == {}
    with pytest.raises(StoreError, match="no such exhibit"):
        store.remove_exhibit(str(gone.id))
    with pytest.raises(StoreError, match="SHA-256 prefix"):
        store.exhibit("K1")


def _hand_made(url: str, version: int) -> None:
    """A database as the hand-made migrations left it at ``version``: same tables, ``schema_version``, no Alembic."""
    engine = create_engine(url)
    assert migrate(engine, target=LEGACY_REVISIONS[version]) == LEGACY_REVISIONS[version]
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE alembic_version"))
        conn.execute(schema_version.insert().values(version=version))
    engine.dispose()


def test_a_database_of_the_hand_made_migrations_joins_alembic(tmp_path: Path, backend: Backend, real_scans: Path) -> None:
    url = backend.url(tmp_path)
    _hand_made(url, 1)
    engine = create_engine(url)
    with engine.begin() as conn:
        assert current_revision(conn) == "0001" and not sa.inspect(conn).has_table("signatures")
        conn.execute(labs.insert().values(id="UK-FSL", name="UK FSL", country="GB", partner=False))
        case_pk = conn.execute(cases.insert().values(lab_id="UK-FSL", case_id="OLD-1")).inserted_primary_key[0]
        conn.execute(scans.insert().values(sha256="a" * 64, file="scans/aa/x.x3p", original_name="x.x3p", format="x3p", size=10, added="t"))
        conn.execute(exhibits.insert().values(case_pk=case_pk, exhibit_id="K1", scan_sha256="a" * 64, partner=False, added="t"))
    engine.dispose()
    store = Store.open(tmp_path)
    with store.engine.connect() as conn:
        assert current_revision(conn) == HEAD
        assert sa.inspect(conn).has_table("signatures") and sa.inspect(conn).has_table("bundle_ledger")
        # the old counter now says 4: software from before Alembic, which knows 1 to 3, refuses the database
        assert conn.execute(sa.select(schema_version.c.version)).scalars().all() == [4]
    assert [(e.case, e.exhibit) for e in store.exhibits()] == [("OLD-1", "K1")]
    store.add_exhibit_scan(fadul("1-1"), case_id="NEW-1", exhibit_id="K1", lab=LAB)
    assert len(store.exhibits()) == 2
    store.close()


def test_the_revisions_build_exactly_the_tables_of_the_schema(tmp_path: Path, backend: Backend) -> None:
    assert ScriptDirectory(str(MIGRATIONS)).get_current_head() == HEAD
    for start in (None, 2):  # a new database, and one of the hand-made version 2
        home = tmp_path / f"from-{start}"
        home.mkdir()
        if start is not None:
            _hand_made(backend.url(home), start)
        store = Store.open(home)
        with store.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
        store.close()


def test_a_newer_database_is_refused(tmp_path: Path, backend: Backend) -> None:
    Store.open(tmp_path).close()
    engine = create_engine(backend.url(tmp_path))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(StoreError, match=f"schema revision 9999 is newer than this software's {HEAD}"):
        Store.open(tmp_path)
    # a hand-made counter beyond what Alembic took over from is refused too
    home = tmp_path / "counter"
    home.mkdir()
    _hand_made(backend.url(home), 3)
    engine = create_engine(backend.url(home))
    with engine.begin() as conn:
        conn.execute(schema_version.update().values(version=7))
    engine.dispose()
    with pytest.raises(StoreError, match="schema version 7 is newer"):
        Store.open(home)


def test_prepared_cache_round_trip_keeps_the_firing_pin(tmp_path: Path) -> None:
    face = prepare(load_scan(SAMPLE_DATA / "F01-01.x3p"))
    assert face.firing_pin is not None
    save_prepared(face, tmp_path / "f.npz")
    back = load_prepared(tmp_path / "f.npz", face.params)
    assert np.allclose(back.surface, face.surface, equal_nan=True, rtol=1e-6)
    assert back.primer_center_px == pytest.approx(face.primer_center_px) and back.firing_pin.shape == face.firing_pin.shape
    assert np.array_equal(back.firing_pin.patch, face.firing_pin.patch, equal_nan=True)


def test_db_commands_end_to_end(home: Path, real_scans: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "add", str(fadul("1-1")), str(fadul("1-2")), "--case", "C1", "--exhibit", "K1", "--calibre", "9mm", "--json"]) == 0
    added = json.loads(capsys.readouterr().out)["results"]
    assert [r["exhibit"]["exhibit"] for r in added] == ["K1", "K1-2"] and all(r["added"] for r in added)
    assert all(r["exhibit"]["lab"] == "local" for r in added)
    assert main(["db", "add", str(fadul("1-1")), "--case", "C1", "--exhibit", "K1"]) == 0
    assert f"{fadul('1-1')}: already exhibit #1 C1/K1 (lab local); nothing changed" in capsys.readouterr().err
    assert main(["db", "add", str(fadul("1-1")), "--case", "C2", "--exhibit", "K7"]) == 2  # one scan is one exhibit
    assert "not filed as C2/K7: this scan is already exhibit #1 C1/K1" in capsys.readouterr().err
    assert main(["db", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["exhibits"]
    assert [e["exhibit"] for e in listed] == ["K1", "K1-2"]
    assert main(["db", "show", str(listed[1]["id"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sha256"] == listed[1]["sha256"]
    assert main(["db", "remove", listed[1]["sha256"][:10]]) == 0
    capsys.readouterr()
    assert main(["db", "list", "--json"]) == 0
    assert [e["exhibit"] for e in json.loads(capsys.readouterr().out)["exhibits"]] == ["K1"]


def test_db_errors_are_one_line_with_exit_codes(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bogus = tmp_path / "notes.x3p"
    bogus.write_text("not a scan")
    assert main(["db", "add", str(bogus), "--case", "C", "--exhibit", "E"]) == 3
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bogus}: ") and err.count("\n") == 1 and "Traceback" not in err
    assert main(["db", "show", "42"]) == 3
    assert capsys.readouterr().err == "error: 42: no such exhibit in the collection\n"
    assert main(["db", "add", str(bogus)]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_compare_record_is_valid_and_stored(home: Path, tmp_path: Path, real_scans: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "db",
                "add",
                str(fadul("1-1")),
                "--case",
                "C-2026-1",
                "--exhibit",
                "K1",
                "--calibre",
                "9mm Luger",
                "--firing-pin-shape",
                "hemispherical",
            ]
        )
        == 0
    )
    target = tmp_path / "record.json"
    code = main(["compare", str(fadul("1-1")), str(fadul("1-2")), "--json", "--record", str(target), "--examiner", "A. Examiner"])
    assert code == 0
    comparison = json.loads(capsys.readouterr().out)
    record = load_record(target)  # validates against the schema
    validate_record(record)
    assert record["case_id"] == "C-2026-1" and record["exhibits"] == {"reference": "K1", "questioned": "Fadul 1-2"}
    assert record["lab"] == {"id": "local", "name": "local", "country": "ZZ"}
    assert record["class_characteristics"] == {"calibre": "9mm Luger", "firing_pin_shape": "hemispherical"}
    assert record["scores"]["cmc"] == comparison["cmc"] and record["examiner"] == {"name": "A. Examiner"}
    assert record["scans"]["questioned"]["sha256"] == comparison["questioned"]["sha256"]
    store = Store.open(home)
    assert store.records() == [record]
    with store.engine.connect() as conn:
        row = conn.exec_driver_sql("SELECT reference_sha256, questioned_sha256, cmc FROM comparisons").one()
    assert row == (comparison["reference"]["sha256"], comparison["questioned"]["sha256"], comparison["cmc"])
    # a cited scan stays when its exhibit is removed
    assert main(["db", "remove", "1"]) == 0
    assert (home / "scans" / row[0][:2] / f"{row[0]}.x3p").exists()


def test_compare_record_needs_a_case_for_unknown_scans(
    home: Path, tmp_path: Path, real_scans: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "record.json"
    assert main(["compare", str(fadul("1-1")), str(fadul("2-1")), "--record", str(target)]) == 2
    assert "give --case" in capsys.readouterr().err and not target.exists()


# --- re-attribution of what was recorded before keys init ------------------------------------------


def _local_record(case: str, exhibits: tuple[str, str]) -> dict:
    return build_record(comparison_dict(), lab=Lab(DEFAULT_LAB, DEFAULT_LAB), case_id=case, exhibits=exhibits, examiner={"name": "A"})


def test_reattribute_gives_local_cases_exhibits_and_records_to_the_identity(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    local = Lab(DEFAULT_LAB, DEFAULT_LAB)
    store.add_exhibit_scan(SAMPLE_DATA / "F01-01.x3p", case_id="C1", exhibit_id="K1", lab=local)
    store.add_exhibit_scan(SAMPLE_DATA / "F01-02.x3p", case_id="C2", exhibit_id="Q1", lab=local)
    store.add_exhibit_scan(SAMPLE_DATA / "F02-01.x3p", case_id="C2", exhibit_id="K7", lab=LAB)  # C2 exists for both: merged
    records = [_local_record("C1", ("K1", "Q1")), _local_record("C2", ("Q1", "K7"))]
    for record in records:
        store.add_record(record)
    partner_record = {**_local_record("FR-1", ("E1", "E2")), "lab": PARTNER.to_dict()}
    store.add_record(partner_record)

    done = store.reattribute(DEFAULT_LAB, LAB)

    assert (sorted(done.records), done.cases, done.exhibits, done.count) == (sorted(r["record_id"] for r in records), 2, 2, 4)
    assert done.to_dict()["to"] == LAB.to_dict() and done.to_dict()["from_lab"] == DEFAULT_LAB
    assert store.exhibits(lab=DEFAULT_LAB) == []
    assert sorted((e.case, e.exhibit) for e in store.exhibits(lab="UK-FSL")) == [("C1", "K1"), ("C2", "K7"), ("C2", "Q1")]
    for record in records:
        stored = store.record(record["record_id"])
        assert stored == {**record, "lab": LAB.to_dict()}
        validate_record(stored)
    assert store.record(partner_record["record_id"]) == partner_record  # another lab's record is untouched
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT lab_id FROM match_records WHERE lab_id = 'local'")).first() is None
        assert conn.execute(sa.text("SELECT id FROM labs WHERE id = 'local'")).first() is None
        assert conn.execute(sa.text("SELECT country FROM labs WHERE id = 'UK-FSL'")).scalar() == "GB"
    again = store.reattribute(DEFAULT_LAB, LAB)
    assert again.count == 0 and again.cases == 0


def test_reattribute_refuses_partner_labs_and_exhibit_clashes(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    store.add_exhibit_scan(SAMPLE_DATA / "F01-01.x3p", case_id="FR-1", exhibit_id="E1", lab=PARTNER, partner=True)
    with pytest.raises(UsageError, match="partner lab") as caught:
        store.reattribute("FR-IRCGN", LAB)
    assert caught.value.exit_code == 2
    with pytest.raises(UsageError, match="partner lab"):
        store.reattribute(DEFAULT_LAB, PARTNER)
    local = Lab(DEFAULT_LAB, DEFAULT_LAB)
    store.add_exhibit_scan(SAMPLE_DATA / "F01-02.x3p", case_id="C1", exhibit_id="K1", lab=local)
    store.add_exhibit_scan(SAMPLE_DATA / "F02-01.x3p", case_id="C1", exhibit_id="K1", lab=LAB)
    record = _local_record("C1", ("K1", "Q1"))
    store.add_record(record)
    with pytest.raises(StoreError, match="exhibit K1 of case C1 exists for both local and UK-FSL"):
        store.reattribute(DEFAULT_LAB, LAB)
    assert [e.case for e in store.exhibits(lab=DEFAULT_LAB)] == ["C1"] and store.record(record["record_id"]) == record  # nothing moved


def test_the_home_and_everything_it_stores_are_owner_only_under_a_permissive_umask(tmp_path: Path, backend: Backend) -> None:
    """Under umask 022 the home is created 0700 and the database (SQLite's file), scans and caches 0600 (docs/security.md, item 14)."""

    old = os.umask(0o022)
    try:
        home = tmp_path / "lab" / "home"
        store = Store.open(home)
        store.add_exhibit_scan(SAMPLE_DATA / "F01-01.x3p", case_id="C1", exhibit_id="K1", lab=LAB)
        store.close()
    finally:
        os.umask(old)
    modes = {p.relative_to(tmp_path): stat.S_IMODE(p.stat().st_mode) for p in tmp_path.rglob("*")}
    assert modes[Path("lab")] == modes[Path("lab/home")] == 0o700
    files = {p: m for p, m in modes.items() if (tmp_path / p).is_file()}
    expected = {"x3p", "npz", "bin", "lock"} | ({"db"} if backend.name == "sqlite" else set())  # bin, lock: the search index
    assert {p.name.rsplit(".", 1)[-1] for p in files} >= expected
    assert set(files.values()) == {0o600}, files
