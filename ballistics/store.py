"""The reference collection: the one module that talks to the database, and the scan files.

The database (SQLAlchemy Core; SQLite under the lab home by default, PostgreSQL for a lab of
several workstations: :mod:`ballistics.settings`) holds labs, cases, exhibits with their class
characteristics, scans (by SHA-256), comparisons, match records and search signatures. Its
schema is migrated to the newest revision when a store is opened (:func:`ballistics.schema.migrate`).

Files live in the scan store (the home, or a shared directory named by the settings),
content-addressed: ``scans/<sha[:2]>/<sha>.<ext>`` for the scans as received,
``cache/<sha[:2]>/<sha>-<key>.npz`` for the prepared working surface, keyed by the
preprocessing parameters and signature version, so that search never prepares a collection
scan again. A file is written (temporary file, rename) before the row naming it is committed:
a crash can leave an unreferenced file, never a row pointing at a missing one.

Several processes may write at once (examiners at several workstations, imports): rows that
two of them may both create (labs, cases, scans, signatures) are inserted with ``ON CONFLICT
DO NOTHING`` and read back, so the second writer joins the first's row instead of failing, and
the unique constraints (one exhibit per scan, one exhibit id per case, one ledger entry per
bundle) decide every other race.

Preprocessing, signatures, scan reading and the surface cache are imported inside the methods
that prepare or read scans, so that listing, showing and removing exhibits loads no NumPy.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ballistics import settings
from ballistics.characteristics import ClassCharacteristics, FiringPinShape
from ballistics.clock import format_time
from ballistics.errors import StoreError, UsageError
from ballistics.files import PRIVATE_FILE_MODE, copy_atomic, ensure_private_dir
from ballistics.labs import Lab
from ballistics.leads import ANSWERED, PENDING, SEARCHED, Correlation, Lead, ReceivedHit, RequestAnswer, SentRequest
from ballistics.ledger import LedgerEntry, details_from_dict
from ballistics.method import PreprocessParams, SignatureParams

if TYPE_CHECKING:
    import numpy as np

    from ballistics.case_index import CaseIndex, IndexSummary
    from ballistics.preprocess import BreechFace

from ballistics.schema import (
    IMMEDIATE,
    bundle_ledger,
    cases,
    comparisons,
    correlations,
    create_engine,
    exhibits,
    hits_received,
    insert_new,
    labs,
    leads,
    lock_exclusive,
    match_records,
    migrate,
    request_answers,
    requests_sent,
    scans,
    signatures,
)


@dataclass(frozen=True)
class Exhibit:
    """One exhibit of the collection with its scan, as listed and shown."""

    id: int
    lab: str
    partner: bool
    case: str
    exhibit: str
    characteristics: ClassCharacteristics
    sha256: str
    path: Path
    original_name: str
    added: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "lab": self.lab,
            "partner": self.partner,
            "case": self.case,
            "exhibit": self.exhibit,
            "calibre": self.characteristics.calibre,
            "firing_pin_shape": self.characteristics.firing_pin_shape,
            "ejector_position": self.characteristics.ejector_position,
            "sha256": self.sha256,
            "path": str(self.path),
            "original_name": self.original_name,
            "added": self.added,
        }


@dataclass(frozen=True)
class Reattribution:
    """What :meth:`Store.reattribute` moved from one lab id to a lab identity."""

    from_lab: str
    to: Lab
    records: tuple[str, ...]  # ids of the records rewritten
    cases: int
    exhibits: int

    @property
    def count(self) -> int:
        """Records and exhibits re-attributed."""
        return len(self.records) + self.exhibits

    def to_dict(self) -> dict[str, Any]:
        return {
            "from_lab": self.from_lab,
            "to": self.to.to_dict(),
            "records": list(self.records),
            "cases": self.cases,
            "exhibits": self.exhibits,
        }


@dataclass(frozen=True)
class AddResult:
    """What ``add_exhibit_scan`` did: ``added``, or not, with ``conflict`` when the filing asked for was refused."""

    exhibit: Exhibit
    added: bool
    message: str
    conflict: bool = False


# --- the store -----------------------------------------------------------------------------------


@dataclass
class Store:
    """A lab's collection: the database, and the scan files and caches under ``files`` (the scan store)."""

    home: Path
    engine: Engine
    files: Path
    preprocess: PreprocessParams = PreprocessParams()
    signature_params: SignatureParams = SignatureParams()
    _cache_key: str = field(init=False)

    def __post_init__(self) -> None:
        self._cache_key = self.signature_params.key(self.preprocess.to_dict())

    @classmethod
    def open(
        cls, home: str | os.PathLike[str], url: str | None = None, *, files: str | os.PathLike[str] | None = None, **params: Any
    ) -> Store:
        """The collection of ``home``: database ``url`` and scan store ``files``, else as :mod:`ballistics.settings` resolves them."""
        home = Path(home)
        if not home.exists():
            ensure_private_dir(home)
        root = settings.scan_store(home, files)
        if not root.is_dir():
            raise StoreError(root, "the scan store is not a directory (is the shared file system mounted?)")
        for folder in ("scans", "cache"):
            if not (root / folder).exists():
                ensure_private_dir(root / folder)
        engine = create_engine(settings.database_url(home, url))
        try:
            migrate(engine)
        except sa.exc.SQLAlchemyError as exc:
            engine.dispose()
            raise StoreError(
                engine.url.render_as_string(hide_password=True),
                f"cannot open the database: {exc.__class__.__name__}: {str(exc).splitlines()[0]}",
            ) from None
        return cls(home, engine, root, **params)

    def close(self) -> None:
        self.engine.dispose()

    @property
    def cache_key(self) -> str:
        """Preprocessing parameters + signature version: what the caches are valid for."""
        return self._cache_key

    @contextmanager
    def transaction(self, *, immediate: bool = False) -> Iterator[Connection]:
        """One atomic unit of writes; pass the connection to the store's methods to join it.

        On SQLite it takes the database's one write lock before its first read (``BEGIN
        IMMEDIATE``, waiting up to the busy timeout): a transaction that read first could not
        take it once another process had written. ``immediate`` makes the transaction exclusive
        among immediate ones on PostgreSQL too (an advisory lock of the schema, held until the
        end), for a check-then-insert that two processes must not both pass, such as a bundle
        import; other PostgreSQL writers proceed in parallel under row locks.
        """
        try:
            with self.engine.connect().execution_options(**{IMMEDIATE: True}) as conn, conn.begin():
                if immediate:
                    lock_exclusive(conn)
                yield conn
        except sa.exc.IntegrityError as exc:
            raise StoreError(
                str(self.engine.url), f"the collection changed meanwhile or an id is taken: {str(exc.orig).splitlines()[0]}"
            ) from None

    @contextmanager
    def _joined(self, conn: Connection | None) -> Iterator[Connection]:
        if conn is not None:
            yield conn
        else:
            with self.transaction() as own:
                yield own

    # --- files ---

    def scan_file(self, sha256: str, fmt: str) -> Path:
        suffix = "x3p" if fmt == "x3p" else fmt
        return self.files / "scans" / sha256[:2] / f"{sha256}.{suffix}"

    def cache_file(self, sha256: str) -> Path:
        return self.files / "cache" / sha256[:2] / f"{sha256}-{self.cache_key}.npz"

    def prepared(self, sha256: str) -> BreechFace:
        """The cached working surface of a stored scan, prepared again only if the cache is gone."""
        from ballistics.preprocess import prepare
        from ballistics.scan import load_scan
        from ballistics.surface_cache import load_prepared, save_prepared

        path = self.cache_file(sha256)
        if path.exists():
            return load_prepared(path, self.preprocess)
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(scans).where(scans.c.sha256 == sha256)).first()
        if row is None:
            raise StoreError(sha256, "no such scan in the collection")
        face = prepare(load_scan(self.files / row.file), self.preprocess)
        save_prepared(face, path)
        return face

    # --- writes ---

    def ensure_lab(self, lab: Lab, *, partner: bool = False, conn: Connection | None = None) -> None:
        with self._joined(conn) as c:
            insert_new(c, labs, id=lab.id, name=lab.name, country=lab.country, partner=partner)

    def reattribute(self, from_lab: str, to: Lab) -> Reattribution:
        """Give the cases, exhibits and match records of lab ``from_lab`` to the lab ``to``, in one transaction.

        For what a home recorded before ``keys init`` (lab ``local``, country ``ZZ``): afterwards
        they are the identity's, so ``bundle export`` accepts the records and partners' imports
        take them. Each stored record is rewritten (its ``lab`` object) and validated again; a
        case id that ``to`` already has is merged, refusing an exhibit id held in both. A lab
        whose data came from partners (a partner lab, or a sender in the ledger) is never
        re-attributed, nor re-attributed to. Running it again changes nothing.
        """
        from ballistics.records import reattribute_record

        if from_lab == to.id:
            raise UsageError(from_lab, f"records of lab {from_lab} are already of lab {to.id}")
        with self.transaction() as c:
            for lab_id in (from_lab, to.id):
                row = c.execute(sa.select(labs.c.partner).where(labs.c.id == lab_id)).first()
                sent = c.execute(sa.select(bundle_ledger.c.bundle_id).where(bundle_ledger.c.sender_lab == lab_id).limit(1)).first()
                if (row is not None and row.partner) or sent is not None:
                    raise UsageError(lab_id, f"lab {lab_id} is a partner lab: its records are not this lab's to re-attribute")
            if c.execute(sa.select(labs.c.id).where(labs.c.id == to.id)).first() is None:
                c.execute(labs.insert().values(id=to.id, name=to.name, country=to.country, partner=False))
            else:
                c.execute(labs.update().where(labs.c.id == to.id).values(name=to.name, country=to.country))
            moved_cases = moved_exhibits = 0
            for case in c.execute(sa.select(cases.c.pk, cases.c.case_id).where(cases.c.lab_id == from_lab)).all():
                held = [r.exhibit_id for r in c.execute(sa.select(exhibits.c.exhibit_id).where(exhibits.c.case_pk == case.pk))]
                target = c.execute(sa.select(cases.c.pk).where(cases.c.lab_id == to.id, cases.c.case_id == case.case_id)).first()
                if target is None:
                    c.execute(cases.update().where(cases.c.pk == case.pk).values(lab_id=to.id))
                else:
                    clash = c.execute(
                        sa.select(exhibits.c.exhibit_id).where(exhibits.c.case_pk == target.pk, exhibits.c.exhibit_id.in_(held))
                    ).first()
                    if clash is not None:
                        raise StoreError(
                            case.case_id, f"exhibit {clash.exhibit_id} of case {case.case_id} exists for both {from_lab} and {to.id}"
                        )
                    c.execute(exhibits.update().where(exhibits.c.case_pk == case.pk).values(case_pk=target.pk))
                    c.execute(cases.delete().where(cases.c.pk == case.pk))
                moved_cases += 1
                moved_exhibits += len(held)
            rewritten = []
            for row in c.execute(
                sa.select(match_records.c.record_id, match_records.c.document).where(match_records.c.lab_id == from_lab)
            ).all():
                record = reattribute_record(json.loads(row.document), to)
                c.execute(
                    match_records.update()
                    .where(match_records.c.record_id == row.record_id)
                    .values(lab_id=to.id, document=json.dumps(record, sort_keys=True))
                )
                rewritten.append(row.record_id)
            c.execute(labs.delete().where(labs.c.id == from_lab))
        return Reattribution(from_lab, to, tuple(rewritten), moved_cases, moved_exhibits)

    def add_scan_file(
        self,
        path: Path,
        *,
        conn: Connection | None = None,
        face: BreechFace | None = None,
        sha256: str | None = None,
        pixel_um: float | None = None,
        original_name: str | None = None,
    ) -> str:
        """Copy a scan into the content-addressed store (if new) and cache its surface and signature.

        ``original_name`` (default: the file's name) is kept as a label only; the stored file is
        named by its SHA-256, so a name received from a partner never becomes a path.
        """
        from ballistics.preprocess import prepare
        from ballistics.scan import load_scan, sha256_file, sniff_format
        from ballistics.signature import signature, signature_bytes
        from ballistics.surface_cache import save_prepared

        path = Path(path)
        sha = sha256 or sha256_file(path)
        with self._joined(conn) as c:
            if c.execute(sa.select(scans.c.sha256).where(scans.c.sha256 == sha)).first() is not None:
                return sha
            fmt = sniff_format(path)
            face = face if face is not None else prepare(load_scan(path, pixel_um=pixel_um), self.preprocess)
            sig = signature(face, self.signature_params)
            target = self.scan_file(sha, fmt)
            if not target.exists():
                copy_atomic(path, target, mode=PRIVATE_FILE_MODE)
            save_prepared(face, self.cache_file(sha))
            # Another process may be adding the same scan: its row, once committed, stands for ours.
            insert_new(
                c,
                scans,
                sha256=sha,
                file=str(target.relative_to(self.files)),
                original_name=(original_name if original_name is not None else path.name)[:255],
                format=fmt,
                size=target.stat().st_size,
                added=format_time(),
            )
            insert_new(c, signatures, sha256=sha, key=self.cache_key, data=signature_bytes(sig))
        return sha

    def add_exhibit_scan(
        self,
        path: str | os.PathLike[str],
        *,
        case_id: str,
        exhibit_id: str,
        lab: Lab,
        characteristics: ClassCharacteristics = ClassCharacteristics(),
        partner: bool = False,
        pixel_um: float | None = None,
        conn: Connection | None = None,
        original_name: str | None = None,
    ) -> AddResult:
        """Add one scan as an exhibit of a case of ``lab``; the same file twice changes nothing.

        ``pixel_um`` is the pixel size of a 2-D image (micrometres); x3p files carry their own.
        A scan already filed elsewhere is not filed again: one scan is one exhibit, and the
        result says where it is (``conflict``).

        Importers of partner bundles call this with ``partner=True`` inside their own
        ``with store.transaction() as conn:`` so that a bundle lands whole or not at all.
        """
        from ballistics.preprocess import prepare
        from ballistics.scan import load_scan, sha256_file

        path = Path(path)
        sha = sha256_file(_readable(path))
        if conn is None and (known := self.by_sha256(sha)) is not None:
            return _already(known, lab.id, case_id, exhibit_id)
        # Prepared before the transaction, so the write lock is not held while it runs.
        face = None if conn is not None or self._has_scan(sha) else prepare(load_scan(path, pixel_um=pixel_um), self.preprocess)
        with self._joined(conn) as c:
            existing = self._exhibit_rows(c, exhibits.c.scan_sha256 == sha)
            if existing:
                return _already(existing[0], lab.id, case_id, exhibit_id)
            self.ensure_lab(lab, partner=partner, conn=c)
            case_pk = self._case_pk(c, lab.id, case_id)
            holder = _holder(c, case_pk, exhibit_id)
            inserted = False
            if holder is None:
                self.add_scan_file(path, conn=c, sha256=sha, face=face, pixel_um=pixel_um, original_name=original_name)
                inserted = insert_new(
                    c,
                    exhibits,
                    case_pk=case_pk,
                    exhibit_id=exhibit_id,
                    scan_sha256=sha,
                    partner=partner,
                    added=format_time(),
                    calibre=characteristics.calibre,
                    firing_pin_shape=characteristics.firing_pin_shape,
                    ejector_position=characteristics.ejector_position,
                )
            if not inserted:
                # Each statement sees what was committed before it began (PostgreSQL's read committed):
                # another process may have filed this scan, or this exhibit id, since the first check.
                if existing := self._exhibit_rows(c, exhibits.c.scan_sha256 == sha):
                    return _already(existing[0], lab.id, case_id, exhibit_id)
                raise StoreError(
                    path,
                    f"exhibit {exhibit_id} of case {case_id} already holds scan {(holder or _holder(c, case_pk, exhibit_id) or '?')[:12]}; "
                    "choose another exhibit id",
                )
            added = self._exhibit_rows(c, exhibits.c.scan_sha256 == sha)[0]
        if conn is None:  # committed: index it now (an importer's exhibits are indexed by the next search)
            self.index_exhibits([added.id])
        return AddResult(added, True, f"added as exhibit #{added.id} {case_id}/{exhibit_id} (lab {lab.id})")

    def _has_scan(self, sha256: str) -> bool:
        with self.engine.connect() as c:
            return c.execute(sa.select(scans.c.sha256).where(scans.c.sha256 == sha256)).first() is not None

    def _case_pk(self, conn: Connection, lab_id: str, case_id: str) -> int:
        insert_new(conn, cases, lab_id=lab_id, case_id=case_id)  # or another process's, once it commits
        return int(conn.execute(sa.select(cases.c.pk).where(cases.c.lab_id == lab_id, cases.c.case_id == case_id)).scalar_one())

    def remove_exhibit(self, ident: str) -> Exhibit:
        """Remove an exhibit; its scan and caches go too unless a comparison cites the scan."""
        with self.transaction() as c:
            exhibit = self._find(c, ident)
            row = c.execute(sa.select(exhibits.c.case_pk).where(exhibits.c.id == exhibit.id)).one()
            c.execute(exhibits.delete().where(exhibits.c.id == exhibit.id))
            if c.execute(sa.select(exhibits.c.id).where(exhibits.c.case_pk == row.case_pk).limit(1)).first() is None:
                c.execute(cases.delete().where(cases.c.pk == row.case_pk))
            cited = c.execute(
                sa.select(comparisons.c.id)
                .where((comparisons.c.reference_sha256 == exhibit.sha256) | (comparisons.c.questioned_sha256 == exhibit.sha256))
                .limit(1)
            ).first()
            if cited is None:
                c.execute(signatures.delete().where(signatures.c.sha256 == exhibit.sha256))
                c.execute(scans.delete().where(scans.c.sha256 == exhibit.sha256))
        self._drop_from_index(exhibit.id)
        if cited is None:  # after the commit: a crash before this leaves files without rows, not the reverse
            exhibit.path.unlink(missing_ok=True)
            for cached in (self.files / "cache" / exhibit.sha256[:2]).glob(f"{exhibit.sha256}-*.npz"):
                cached.unlink(missing_ok=True)
        return exhibit

    def add_comparison(
        self,
        document: dict[str, Any],
        reference: Path,
        questioned: Path,
        *,
        faces: tuple[BreechFace, BreechFace] | None = None,
        conn: Connection | None = None,
    ) -> int:
        """Store a comparison (``Comparison.to_dict()``), with both scans kept in the store.

        ``faces``, the comparison's own prepared surfaces, spare preparing the scans again.
        """
        ref_face, qst_face = faces if faces is not None else (None, None)
        with self._joined(conn) as c:
            ref = self.add_scan_file(reference, conn=c, sha256=str(document["reference"]["sha256"]), face=ref_face)
            qst = self.add_scan_file(questioned, conn=c, sha256=str(document["questioned"]["sha256"]), face=qst_face)
            result = c.execute(
                comparisons.insert().values(
                    reference_sha256=ref,
                    questioned_sha256=qst,
                    cmc=int(document["cmc"]),
                    decision=str(document["decision"]),
                    document=json.dumps(document, sort_keys=True, default=str),
                    created=format_time(),
                )
            )
            return _inserted_pk(result)

    def add_record(self, record: dict[str, Any], *, comparison_id: int | None = None, conn: Connection | None = None) -> None:
        """Store a validated match record (the caller validated it with ``records.build_record``)."""
        with self._joined(conn) as c:
            c.execute(
                match_records.insert().values(
                    record_id=record["record_id"],
                    comparison_id=comparison_id,
                    lab_id=record["lab"]["id"],
                    case_id=record["case_id"],
                    document=json.dumps(record, sort_keys=True),
                    created=record["created"],
                )
            )

    def add_ledger_entry(self, entry: LedgerEntry, *, conn: Connection) -> None:
        """Record an imported bundle, in the transaction that stores its content."""
        conn.execute(
            bundle_ledger.insert().values(
                bundle_id=entry.bundle_id,
                sender_lab=entry.sender_lab,
                sender_key_id=entry.sender_key_id,
                sequence=entry.sequence,
                header_hash=entry.header_hash,
                kind=entry.kind,
                path=entry.path,
                details=json.dumps(entry.details.to_dict(), sort_keys=True),
                imported=entry.imported or format_time(),
                receipt_sha256=entry.receipt_sha256,
            )
        )

    def set_receipt(self, sender_lab: str, bundle_id: str, receipt_sha256: str) -> None:
        with self.transaction() as c:
            c.execute(bundle_ledger.update().where(*_ledger_key(sender_lab, bundle_id)).values(receipt_sha256=receipt_sha256))

    # --- reads ---

    def ledger_entry(self, sender_lab: str, bundle_id: str, *, conn: Connection | None = None) -> LedgerEntry | None:
        """The bundle ``bundle_id`` imported from ``sender_lab`` (ids are the sender's: two labs may reuse one)."""
        with self._reading(conn) as c:
            row = c.execute(sa.select(bundle_ledger).where(*_ledger_key(sender_lab, bundle_id))).first()
        return None if row is None else _ledger_entry(row)

    def last_sequence(self, sender_lab: str, *, conn: Connection | None = None) -> int:
        """The highest sequence number imported from this lab (0 when none)."""
        with self._reading(conn) as c:
            return int(
                c.execute(sa.select(sa.func.max(bundle_ledger.c.sequence)).where(bundle_ledger.c.sender_lab == sender_lab)).scalar() or 0
            )

    def ledger(self) -> list[LedgerEntry]:
        with self.engine.connect() as c:
            return [
                _ledger_entry(row)
                for row in c.execute(
                    sa.select(bundle_ledger).order_by(bundle_ledger.c.imported, bundle_ledger.c.sender_lab, bundle_ledger.c.sequence)
                )
            ]

    def record(self, record_id: str, *, conn: Connection | None = None) -> dict[str, Any] | None:
        with self._reading(conn) as c:
            row = c.execute(sa.select(match_records.c.document).where(match_records.c.record_id == record_id)).first()
        return None if row is None else json.loads(row.document)

    def stored_scan(self, sha256: str) -> Path | None:
        """The file of a scan kept in the scan store (by SHA-256), or None when the collection does not hold it."""
        with self.engine.connect() as c:
            row = c.execute(sa.select(scans.c.file).where(scans.c.sha256 == sha256)).first()
        return None if row is None else self.files / row.file

    def scan_known(self, sha256: str, *, conn: Connection | None = None) -> bool:
        with self._reading(conn) as c:
            return c.execute(sa.select(scans.c.sha256).where(scans.c.sha256 == sha256)).first() is not None

    @contextmanager
    def _reading(self, conn: Connection | None) -> Iterator[Connection]:
        if conn is not None:
            yield conn
        else:
            with self.engine.connect() as own:
                yield own

    def records(self, case_id: str | None = None, lab: str | None = None) -> list[dict[str, Any]]:
        """The stored match records (the lab's own and those imported from partners), oldest first.

        ``case_id`` and ``lab`` keep those of that case (the record's ``case_id``) and of that lab
        (the lab that made the record).
        """
        query = sa.select(match_records.c.document).order_by(match_records.c.created, match_records.c.record_id)
        if case_id is not None:
            query = query.where(match_records.c.case_id == case_id)
        if lab is not None:
            query = query.where(match_records.c.lab_id == lab)
        with self.engine.connect() as c:
            return [json.loads(row.document) for row in c.execute(query)]

    def find_record(self, ident: str) -> dict[str, Any]:
        """The stored record whose id is ``ident``, or starts with it (8 characters at least, one record only)."""
        text = ident.strip().lower()
        with self.engine.connect() as c:
            if (found := self.record(text, conn=c)) is not None:
                return found
            if len(text) < 8 or any(ch not in "0123456789abcdef-" for ch in text):
                raise StoreError(ident, "no stored match record has this id (give the record id, or its first 8 characters or more)")
            rows = c.execute(sa.select(match_records.c.document).where(match_records.c.record_id.startswith(text)).limit(2)).all()
        if len(rows) > 1:
            raise StoreError(ident, "this prefix names more than one stored match record; give more characters")
        if not rows:
            raise StoreError(ident, "no stored match record has this id")
        document: dict[str, Any] = json.loads(rows[0].document)
        return document

    def known_labs(self) -> dict[str, Lab]:
        """Every lab the collection knows (its own, partners, the makers of imported exhibits), by id."""
        with self.engine.connect() as c:
            return {row.id: Lab(row.id, row.name, row.country) for row in c.execute(sa.select(labs).order_by(labs.c.id))}

    def partner_labs(self) -> set[str]:
        """Ids of the partner labs: marked so when their exhibits were imported, or senders of an imported bundle."""
        with self.engine.connect() as c:
            marked = {row.id for row in c.execute(sa.select(labs.c.id).where(labs.c.partner))}
            senders = {row.sender_lab for row in c.execute(sa.select(bundle_ledger.c.sender_lab).distinct())}
        return marked | senders

    def filings(self, shas: Sequence[str]) -> dict[str, Exhibit]:
        """The exhibits holding these scans, by SHA-256; a scan the collection does not hold is absent."""
        out: dict[str, Exhibit] = {}
        unique = sorted(set(shas))
        with self.engine.connect() as c:
            for start in range(0, len(unique), 500):
                out.update({e.sha256: e for e in self._exhibit_rows(c, exhibits.c.scan_sha256.in_(unique[start : start + 500]))})
        return out

    def exhibits(
        self, *, calibre: str | None = None, firing_pin_shape: str | None = None, lab: str | None = None, case: str | None = None
    ) -> list[Exhibit]:
        """The exhibits that match every filter given, in the order they were added."""
        filters = (
            (exhibits.c.calibre, calibre),
            (exhibits.c.firing_pin_shape, firing_pin_shape),
            (cases.c.lab_id, lab),
            (cases.c.case_id, case),
        )
        clauses = [col == value for col, value in filters if value is not None]
        with self.engine.connect() as c:
            return self._exhibit_rows(c, *clauses)

    def exhibit(self, ident: str) -> Exhibit:
        """The exhibit named ``CASE/EXHIBIT``, by its number, or by a SHA-256 prefix (6+ hex digits)."""
        with self.engine.connect() as c:
            return self._find(c, ident)

    def by_sha256(self, sha256: str) -> Exhibit | None:
        with self.engine.connect() as c:
            rows = self._exhibit_rows(c, exhibits.c.scan_sha256 == sha256)
        return rows[0] if rows else None

    def signatures(self, shas: Sequence[str]) -> dict[str, bytes]:
        """Cached signatures (current key) of these scans; missing ones are simply absent."""
        out: dict[str, bytes] = {}
        with self.engine.connect() as c:
            for start in range(0, len(shas), 500):
                chunk = list(shas[start : start + 500])
                query = sa.select(signatures.c.sha256, signatures.c.data).where(
                    signatures.c.key == self.cache_key, signatures.c.sha256.in_(chunk)
                )
                out.update({row.sha256: row.data for row in c.execute(query)})
        return out

    def exhibit_ids(self, *, calibre: str | None = None, firing_pin_shape: str | None = None, own_only: bool = False) -> list[int]:
        """Ids of the exhibits that match every filter given, the lab's own only if asked (no other column read: cheap at 10^6)."""
        filters = ((exhibits.c.calibre, calibre), (exhibits.c.firing_pin_shape, firing_pin_shape))
        clauses = [col == value for col, value in filters if value is not None]
        if own_only:
            clauses.append(exhibits.c.partner == sa.false())
        with self.engine.connect() as c:
            return [int(i) for i in c.execute(sa.select(exhibits.c.id).where(*clauses).order_by(exhibits.c.id)).scalars()]

    def exhibits_by_id(self, ids: Sequence[int]) -> dict[int, Exhibit]:
        out: dict[int, Exhibit] = {}
        with self.engine.connect() as c:
            for start in range(0, len(ids), 500):
                out.update({e.id: e for e in self._exhibit_rows(c, exhibits.c.id.in_(list(ids[start : start + 500])))})
        return out

    def exhibit_signatures(self, ids: Sequence[int]) -> dict[int, tuple[str, np.ndarray]]:
        """Exhibit id -> (scan SHA-256, signature) for these exhibits; a signature not yet stored is made and stored once."""
        from ballistics.signature import signature, signature_from_bytes

        out: dict[int, tuple[str, np.ndarray]] = {}
        missing: list[tuple[int, str]] = []
        with self.engine.connect() as c:
            for start in range(0, len(ids), 500):
                query = (
                    sa.select(exhibits.c.id, exhibits.c.scan_sha256, signatures.c.data)
                    .select_from(
                        exhibits.outerjoin(
                            signatures, (signatures.c.sha256 == exhibits.c.scan_sha256) & (signatures.c.key == self.cache_key)
                        )
                    )
                    .where(exhibits.c.id.in_(list(ids[start : start + 500])))
                )
                for row in c.execute(query):
                    if row.data is None:
                        missing.append((int(row.id), row.scan_sha256))
                    else:
                        out[int(row.id)] = (row.scan_sha256, signature_from_bytes(row.data, self.signature_params))
        for ident, sha in missing:
            sig = signature(self.prepared(sha), self.signature_params)
            self.put_signature(sha, sig)
            out[ident] = (sha, sig)
        return out

    # --- the vector index of the search funnel ---

    def case_index(self) -> CaseIndex:
        """The vector index of this collection (in the scan store, keyed by signature and embedding version)."""
        from ballistics.case_index import CaseIndex
        from ballistics.embedding import EMBEDDING_VERSION

        return CaseIndex(self.files / "index" / f"{self.cache_key}-e{EMBEDDING_VERSION}")

    def index_exhibits(self, ids: Sequence[int], index: CaseIndex | None = None) -> None:
        """Append the embeddings of these exhibits to the vector index (no rebuild)."""
        import numpy as np

        from ballistics.embedding import embeddings

        index = index or self.case_index()
        for start in range(0, len(ids), 2000):
            sigs = self.exhibit_signatures(ids[start : start + 2000])
            if sigs:
                keys = np.array(sorted(sigs), np.int64)
                index.add(keys, embeddings(np.stack([sigs[int(k)][1] for k in keys])))

    def _drop_from_index(self, ident: int) -> None:
        import numpy as np

        self.case_index().remove(np.array([ident], np.int64))

    def exhibit_summary(self) -> IndexSummary:
        """Count, sum and maximum of the exhibit ids: compared with the index's to find it stale."""
        from ballistics.case_index import IndexSummary

        with self.engine.connect() as c:
            row = c.execute(sa.select(sa.func.count(exhibits.c.id), sa.func.sum(exhibits.c.id), sa.func.max(exhibits.c.id))).one()
        return IndexSummary(int(row[0]), int(row[1] or 0), int(row[2] or 0))

    def synced_index(self) -> CaseIndex:
        """The vector index, brought up to date with the database if it is stale.

        Stale means that its count, sum or maximum of exhibit ids differs from the database's
        (exhibits imported in another process's transaction, or added by software that did not
        index them): then only the exhibits missing from it are added and those gone removed.
        """
        import numpy as np

        index = self.case_index()
        if index.summary() != self.exhibit_summary():
            held = index.ids()
            current = np.array(self.exhibit_ids(), np.int64)
            gone = np.setdiff1d(held, current)
            if len(gone):
                index.remove(gone)
            self.index_exhibits([int(i) for i in np.setdiff1d(current, held)], index)
        return index

    def reindex(self) -> CaseIndex:
        """Build the vector index again from scratch, from the signatures in the database (a lost or damaged index)."""
        import numpy as np

        from ballistics.embedding import embeddings

        index = self.case_index()
        ids = self.exhibit_ids()

        def batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            for start in range(0, len(ids), 2000):
                sigs = self.exhibit_signatures(ids[start : start + 2000])
                keys = np.array(sorted(sigs), np.int64)
                if len(keys):
                    yield keys, embeddings(np.stack([sigs[int(k)][1] for k in keys]))

        index.build(batches())
        return index

    def put_signature(self, sha256: str, sig: np.ndarray) -> None:
        from ballistics.signature import signature_bytes

        with self.transaction() as c:  # the same key gives the same signature: a concurrent search's row is as good
            insert_new(c, signatures, sha256=sha256, key=self.cache_key, data=signature_bytes(sig))

    def _find(self, conn: Connection, ident: str) -> Exhibit:
        text = ident.strip()
        if "/" in text:
            case_id, exhibit_id = text.rsplit("/", 1)
            rows = self._exhibit_rows(conn, cases.c.case_id == case_id, exhibits.c.exhibit_id == exhibit_id)
            if len(rows) > 1:
                raise StoreError(
                    ident, f"{len(rows)} labs file this case and exhibit ({', '.join(r.lab for r in rows)}); give the exhibit number"
                )
        elif text.isdigit():
            rows = self._exhibit_rows(conn, exhibits.c.id == int(text))
        elif len(text) >= 6 and all(ch in "0123456789abcdef" for ch in text.lower()):
            rows = self._exhibit_rows(conn, exhibits.c.scan_sha256.startswith(text.lower()))
            if len(rows) > 1:
                raise StoreError(ident, f"SHA-256 prefix matches {len(rows)} exhibits; give more digits")
        else:
            raise StoreError(
                ident, "name an exhibit as CASE/EXHIBIT, by its number (db list) or by a SHA-256 prefix of at least 6 hex digits"
            )
        if not rows:
            raise StoreError(ident, "no such exhibit in the collection")
        return rows[0]

    def _exhibit_rows(self, conn: Connection, *where: Any) -> list[Exhibit]:
        query = (
            sa.select(exhibits, cases.c.case_id, cases.c.lab_id, scans.c.file, scans.c.original_name)
            .join(cases, exhibits.c.case_pk == cases.c.pk)
            .join(scans, exhibits.c.scan_sha256 == scans.c.sha256)
            .where(*where)
            .order_by(exhibits.c.id)
        )
        return [
            Exhibit(
                id=r.id,
                lab=r.lab_id,
                partner=bool(r.partner),
                case=r.case_id,
                exhibit=r.exhibit_id,
                characteristics=ClassCharacteristics(
                    r.calibre, FiringPinShape(r.firing_pin_shape) if r.firing_pin_shape else None, r.ejector_position
                ),
                sha256=r.scan_sha256,
                path=self.files / r.file,
                original_name=r.original_name,
                added=r.added,
            )
            for r in conn.execute(query)
        ]

    # --- ballistic intelligence (ballistics/leads.py) ---

    def add_sent_request(self, request: SentRequest) -> None:
        with self.transaction() as c:
            c.execute(
                requests_sent.insert().values(
                    request_id=request.request_id,
                    bundle_id=request.bundle_id,
                    case_id=request.case_id,
                    recipients=json.dumps(list(request.recipients)),
                    scans=json.dumps([{"sha256": sha, "exhibit": exhibit} for sha, exhibit in request.scans]),
                    created=request.created,
                )
            )

    def sent_requests(self, request_id: str | None = None, *, conn: Connection | None = None) -> list[SentRequest]:
        """The requests this lab sent (or the one named), oldest first, each with its answers and hits."""
        query = sa.select(requests_sent).order_by(requests_sent.c.created, requests_sent.c.request_id)
        if request_id is not None:
            query = query.where(requests_sent.c.request_id == request_id)
        with self._reading(conn) as c:
            answers: dict[str, list[RequestAnswer]] = {}
            for row in c.execute(sa.select(request_answers).order_by(request_answers.c.received, request_answers.c.responder_lab)):
                answers.setdefault(row.request_id, []).append(
                    RequestAnswer(
                        row.responder_lab,
                        row.bundle_id,
                        int(row.collection_size),
                        int(row.candidates),
                        json.loads(row.document),
                        row.received,
                    )
                )
            hits: dict[str, list[ReceivedHit]] = {}
            for hit in self.received_hits(conn=c):
                if hit.request_id is not None:
                    hits.setdefault(hit.request_id, []).append(hit)
            return [
                SentRequest(
                    row.request_id,
                    row.bundle_id,
                    row.case_id,
                    tuple(json.loads(row.recipients)),
                    tuple((s["sha256"], s["exhibit"]) for s in json.loads(row.scans)),
                    row.created,
                    tuple(answers.get(row.request_id, ())),
                    tuple(hits.get(row.request_id, ())),
                )
                for row in c.execute(query)
            ]

    def add_request_answer(self, request_id: str, answer: RequestAnswer, *, conn: Connection) -> bool:
        """Record a partner's response to our request; False when that partner had already answered it."""
        return insert_new(
            conn,
            request_answers,
            request_id=request_id,
            responder_lab=answer.responder_lab,
            bundle_id=answer.bundle_id,
            collection_size=answer.collection_size,
            candidates=answer.candidates,
            document=json.dumps(answer.document, sort_keys=True),
            received=answer.received,
        )

    def add_correlation(self, correlation: Correlation, *, conn: Connection) -> None:
        """Mark a partner bundle's scans for searching, in the transaction that stores them."""
        insert_new(
            conn,
            correlations,
            sender_lab=correlation.sender_lab,
            bundle_id=correlation.bundle_id,
            request_id=correlation.request_id,
            state=correlation.state,
            scans=json.dumps(list(correlation.scans)),
        )

    def correlations(self, *, unfinished: bool = False) -> list[Correlation]:
        """Correlations of partner bundles; ``unfinished``: those not yet searched or not yet answered."""
        query = sa.select(correlations).order_by(correlations.c.sender_lab, correlations.c.bundle_id)
        if unfinished:
            query = query.where(correlations.c.state != ANSWERED)
        with self.engine.connect() as c:
            return [
                Correlation(
                    row.sender_lab,
                    row.bundle_id,
                    row.request_id,
                    tuple(json.loads(row.scans)),
                    row.state,
                    None if row.collection_size is None else int(row.collection_size),
                    row.searched,
                    row.response,
                )
                for row in c.execute(query)
            ]

    def finish_search(self, correlation: Correlation, found: Sequence[Lead], collection_size: int, searched: str) -> list[Lead]:
        """Store the leads of a correlation and mark it searched, in one transaction; returns the leads added.

        Only a pending correlation is finished (another process may have finished it meanwhile);
        a lead already known (the same pair of scans, from an earlier bundle) is not made twice.
        """
        added: list[Lead] = []
        with self.transaction(immediate=True) as c:
            key = _correlation_key(correlation.sender_lab, correlation.bundle_id)
            if c.execute(sa.select(correlations.c.state).where(*key)).scalar() != PENDING:
                return added
            for lead in found:
                if insert_new(c, leads, **_lead_row(lead)):
                    added.append(self._leads(c, leads.c.partner_sha256 == lead.partner_sha256, leads.c.our_sha256 == lead.our_sha256)[0])
            c.execute(correlations.update().where(*key).values(state=SEARCHED, collection_size=collection_size, searched=searched))
        return added

    def set_answered(self, sender_lab: str, bundle_id: str, response: str | None) -> None:
        with self.transaction() as c:
            c.execute(correlations.update().where(*_correlation_key(sender_lab, bundle_id)).values(state=ANSWERED, response=response))

    def leads(self, status: str | None = None, *, sender_lab: str | None = None, bundle_id: str | None = None) -> list[Lead]:
        clauses = [
            col == value
            for col, value in ((leads.c.status, status), (leads.c.sender_lab, sender_lab), (leads.c.bundle_id, bundle_id))
            if value
        ]
        with self.engine.connect() as c:
            return self._leads(c, *clauses)

    def lead(self, lead_id: int, *, conn: Connection | None = None) -> Lead:
        with self._reading(conn) as c:
            found = self._leads(c, leads.c.id == lead_id)
        if not found:
            raise StoreError(f"lead {lead_id}", "no such lead (ballistics leads list)")
        return found[0]

    def decide_lead(
        self, lead_id: int, status: str, *, decided: str, examiner: str | None, reason: str | None, record_id: str | None, conn: Connection
    ) -> bool:
        """Confirm or dismiss a new lead; False when it was already decided (it is decided once)."""
        result = conn.execute(
            leads.update()
            .where(leads.c.id == lead_id, leads.c.status == "new")
            .values(status=status, decided=decided, examiner=examiner, reason=reason, record_id=record_id)
        )
        return bool(result.rowcount == 1)

    def set_lead_notification(self, lead_id: int, path: str) -> None:
        with self.transaction() as c:
            c.execute(leads.update().where(leads.c.id == lead_id).values(notification=path))

    def add_received_hit(self, hit: ReceivedHit, *, conn: Connection) -> bool:
        return insert_new(
            conn,
            hits_received,
            record_id=hit.record_id,
            partner_lab=hit.partner_lab,
            bundle_id=hit.bundle_id,
            request_id=hit.request_id,
            scan_sha256=hit.scan_sha256,
            partner_case=hit.partner_case,
            partner_exhibit=hit.partner_exhibit,
            log10_lr=hit.log10_lr,
            examiner=hit.examiner,
            received=hit.received,
        )

    def received_hits(self, *, conn: Connection | None = None) -> list[ReceivedHit]:
        """Hits partners confirmed on our scans (their match records are in the store)."""
        with self._reading(conn) as c:
            return [
                ReceivedHit(
                    r.record_id,
                    r.partner_lab,
                    r.bundle_id,
                    r.request_id,
                    r.scan_sha256,
                    r.partner_case,
                    r.partner_exhibit,
                    r.log10_lr,
                    r.examiner,
                    r.received,
                )
                for r in c.execute(sa.select(hits_received).order_by(hits_received.c.received, hits_received.c.record_id))
            ]

    def _leads(self, conn: Connection, *where: Any) -> list[Lead]:
        return [
            Lead(
                sender_lab=r.sender_lab,
                bundle_id=r.bundle_id,
                request_id=r.request_id,
                partner_case=r.partner_case,
                partner_exhibit=r.partner_exhibit,
                partner_sha256=r.partner_sha256,
                our_lab=r.our_lab,
                our_case=r.our_case,
                our_exhibit=r.our_exhibit,
                our_sha256=r.our_sha256,
                cmc=int(r.cmc),
                ccf=r.ccf,
                log10_lr=r.log10_lr,
                likelihood_ratio=None if r.likelihood_ratio is None else json.loads(r.likelihood_ratio),
                comparison=json.loads(r.comparison),
                found=r.found,
                id=int(r.id),
                status=r.status,
                decided=r.decided,
                examiner=r.examiner,
                reason=r.reason,
                record_id=r.record_id,
                notification=r.notification,
            )
            for r in conn.execute(sa.select(leads).where(*where).order_by(leads.c.id))
        ]


def _ledger_key(sender_lab: str, bundle_id: str) -> tuple[sa.ColumnElement[bool], ...]:
    return (bundle_ledger.c.sender_lab == sender_lab, bundle_ledger.c.bundle_id == bundle_id)


def _correlation_key(sender_lab: str, bundle_id: str) -> tuple[sa.ColumnElement[bool], ...]:
    return (correlations.c.sender_lab == sender_lab, correlations.c.bundle_id == bundle_id)


def _lead_row(lead: Lead) -> dict[str, Any]:
    """The columns of a new lead (its id is the database's)."""
    return {
        "sender_lab": lead.sender_lab,
        "bundle_id": lead.bundle_id,
        "request_id": lead.request_id,
        "partner_case": lead.partner_case,
        "partner_exhibit": lead.partner_exhibit,
        "partner_sha256": lead.partner_sha256,
        "our_lab": lead.our_lab,
        "our_case": lead.our_case,
        "our_exhibit": lead.our_exhibit,
        "our_sha256": lead.our_sha256,
        "cmc": lead.cmc,
        "ccf": lead.ccf,
        "log10_lr": lead.log10_lr,
        "likelihood_ratio": None if lead.likelihood_ratio is None else json.dumps(lead.likelihood_ratio, sort_keys=True),
        "comparison": json.dumps(lead.comparison, sort_keys=True, default=str),
        "status": lead.status,
        "found": lead.found,
    }


def _holder(conn: Connection, case_pk: int, exhibit_id: str) -> str | None:
    """The scan (SHA-256) that exhibit ``exhibit_id`` of the case holds, if any."""
    return conn.execute(
        sa.select(exhibits.c.scan_sha256).where(exhibits.c.case_pk == case_pk, exhibits.c.exhibit_id == exhibit_id)
    ).scalar()


def _ledger_entry(row: Any) -> LedgerEntry:
    return LedgerEntry(
        row.bundle_id,
        row.sender_lab,
        row.sender_key_id,
        int(row.sequence),
        row.header_hash,
        row.kind,
        row.path,
        details_from_dict(row.kind, json.loads(row.details)),
        row.imported,
        row.receipt_sha256,
    )


def _inserted_pk(result: sa.CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    if key is None:
        raise StoreError("database", "the database did not return the new row's key")
    return int(key[0])


def _already(known: Exhibit, lab_id: str, case_id: str, exhibit_id: str) -> AddResult:
    """The answer for a scan the collection holds: the same filing changes nothing; another is refused, with why."""
    if (known.lab, known.case, known.exhibit) == (lab_id, case_id, exhibit_id):
        return AddResult(known, False, f"already exhibit #{known.id} {known.case}/{known.exhibit} (lab {known.lab}); nothing changed")
    return AddResult(
        known,
        False,
        f"not filed as {case_id}/{exhibit_id}: this scan is already exhibit #{known.id} {known.case}/{known.exhibit} (lab {known.lab}), "
        "and one scan is one exhibit; refer to it by that name",
        conflict=True,
    )


# --- files ---------------------------------------------------------------------------------------


def _readable(path: Path) -> Path:
    from ballistics.scan import sniff_format

    sniff_format(path)  # one-line ScanError for a missing, empty or foreign file
    return path
