"""The vector index of the collection's embeddings: a FAISS index persisted in the scan store.

One index per signature key and embedding version, in ``<scan store>/index/<key>/``:

* ``base-<g>.faiss``: a snapshot (FAISS ``IndexIDMap2`` over ``IndexFlatIP``: exact inner
  product over unit vectors, keyed by exhibit id), written to a temporary file and renamed;
* ``journal-<g>.bin``: the additions and removals since that snapshot, appended one fixed-size
  record at a time (operation, exhibit id, embedding) under an exclusive lock, then flushed to
  disk. Adding a case appends one record: nothing is rebuilt;
* ``meta.json`` (written atomically): the current generation ``g``, how many times the index was
  built from scratch (``builds``) and when, and how many compactions ran.

Opening the index reads the snapshot and replays its journal (a trailing partial record, from a
writer that died mid-append, is ignored). When the journal has grown past an eighth of the
snapshot (and at least :data:`COMPACT_AFTER` records), opening folds it into a new generation:
snapshot and empty journal written first, ``meta.json`` switched last, old files deleted, so a
crash at any point leaves one consistent generation. A lost or damaged index is rebuilt from
the signatures in the database (:meth:`ballistics.store.Store.reindex`, ``ballistics db
reindex``); a stale one (exhibits added or removed by a process that did not update it) is
detected by the search, which compares the index's count, sum and maximum of exhibit ids with
the database's and adds or removes only what differs.

Why FAISS (``faiss-cpu``, MIT licence, maintained by Meta, wheels on PyPI): an exact flat index
of 192 float32 per case holds 10^6 cases in 768 MB and scans them in well under a second on one
core, with no approximation to lose a true mate; ``IndexIDMap2`` adds by id incrementally and
removes by id (hnswlib only marks deletions; FAISS's graph indexes cannot remove at all); the
same code can move to an IVF or HNSW index if collections outgrow exact search. Its files are
written whole, which is why additions go to the journal and snapshots are rewritten rarely.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

from ballistics.clock import format_time
from ballistics.embedding import DIMENSIONS
from ballistics.errors import StoreError
from ballistics.files import PRIVATE_FILE_MODE, ensure_private_dir, write_atomic

if TYPE_CHECKING:
    from faiss import IndexIDMap2

#: A journal shorter than this is never compacted.
COMPACT_AFTER = 4096
ADD, REMOVE = 1, 2
RECORD = np.dtype([("op", "<i1"), ("id", "<i8"), ("vector", "<f4", (DIMENSIONS,))])


@dataclass(frozen=True)
class IndexSummary:
    """What identifies the set of exhibits indexed, cheaply comparable with the database's."""

    count: int
    id_sum: int
    id_max: int


@dataclass(frozen=True)
class IndexMeta:
    generation: int = 0
    builds: int = 0
    built: str = ""
    compactions: int = 0

    def to_dict(self) -> dict[str, object]:
        return {"generation": self.generation, "builds": self.builds, "built": self.built, "compactions": self.compactions}


class CaseIndex:
    """The embeddings of a collection's exhibits, searchable by inner product."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        if not directory.exists():
            ensure_private_dir(directory)
        self._index: IndexIDMap2 | None = None

    # --- files ---

    @property
    def meta(self) -> IndexMeta:
        path = self.directory / "meta.json"
        if not path.exists():
            return IndexMeta()
        try:
            return IndexMeta(**json.loads(path.read_text()))
        except (ValueError, TypeError) as exc:
            raise StoreError(path, f"damaged index metadata ({exc}); rebuild it with ballistics db reindex") from None

    def _base(self, generation: int) -> Path:
        return self.directory / f"base-{generation}.faiss"

    def journal(self, generation: int | None = None) -> Path:
        return self.directory / f"journal-{self.meta.generation if generation is None else generation}.bin"

    @contextmanager
    def _locked(self, mode: int) -> Iterator[None]:
        fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)  # releases the lock

    # --- writes ---

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Append embeddings of these exhibits to the journal (an exhibit added again replaces its vector)."""
        self._append(ADD, ids, vectors)

    def remove(self, ids: np.ndarray) -> None:
        self._append(REMOVE, ids, np.zeros((len(ids), DIMENSIONS), np.float32))

    def _append(self, op: int, ids: np.ndarray, vectors: np.ndarray) -> None:
        records = np.zeros(len(ids), RECORD)
        records["op"] = op
        records["id"] = ids
        records["vector"] = vectors
        with self._locked(fcntl.LOCK_EX):
            path = self.journal()
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_FILE_MODE)
            try:
                size = os.fstat(fd).st_size
                if size % RECORD.itemsize:  # a writer died mid-record: drop its fragment first
                    os.ftruncate(fd, size - size % RECORD.itemsize)
                os.write(fd, records.tobytes())
                os.fsync(fd)
            finally:
                os.close(fd)
        if self._index is not None:
            _apply(self._index, records)

    def build(self, batches: Iterator[tuple[np.ndarray, np.ndarray]]) -> None:
        """Replace the index by one built from scratch from (ids, vectors) batches."""
        index = _empty()
        for ids, vectors in batches:
            if len(ids):
                index.add_with_ids(np.ascontiguousarray(vectors, np.float32), np.asarray(ids, np.int64))
        with self._locked(fcntl.LOCK_EX):
            meta = self.meta
            self._switch(index, IndexMeta(meta.generation + 1, meta.builds + 1, format_time(), meta.compactions))
        self._index = index

    def _switch(self, index: IndexIDMap2, meta: IndexMeta) -> None:
        """Write generation ``meta.generation`` (snapshot, empty journal), then point meta.json at it (lock held)."""
        import faiss

        old = self.meta.generation
        temporary = self.directory / f".base-{meta.generation}.tmp"
        faiss.write_index(index, str(temporary))
        os.chmod(temporary, PRIVATE_FILE_MODE)
        os.replace(temporary, self._base(meta.generation))
        write_atomic(self.journal(meta.generation), b"", PRIVATE_FILE_MODE)
        write_atomic(self.directory / "meta.json", json.dumps(meta.to_dict(), sort_keys=True).encode(), PRIVATE_FILE_MODE)
        if old != meta.generation:
            self._base(old).unlink(missing_ok=True)
            self.journal(old).unlink(missing_ok=True)

    # --- reads ---

    def load(self) -> None:
        """Read the snapshot and replay the journal; compact a long journal."""
        import faiss

        with self._locked(fcntl.LOCK_SH):
            meta = self.meta
            base = self._base(meta.generation)
            try:
                index = cast("IndexIDMap2", faiss.read_index(str(base))) if base.exists() else _empty()
            except RuntimeError as exc:
                raise StoreError(
                    base, f"damaged index snapshot ({str(exc).splitlines()[0]}); rebuild it with ballistics db reindex"
                ) from None
            journal = self.journal(meta.generation)
            records = np.fromfile(journal, RECORD, count=journal.stat().st_size // RECORD.itemsize) if journal.exists() else None
        if records is not None:
            _apply(index, records)
        self._index = index
        if records is not None and len(records) >= max(COMPACT_AFTER, index.ntotal // 8):
            with self._locked(fcntl.LOCK_EX):
                if self.meta == meta:  # nobody compacted or appended meanwhile
                    now = self.journal(meta.generation)
                    if now.stat().st_size // RECORD.itemsize == len(records):
                        self._switch(index, IndexMeta(meta.generation + 1, meta.builds, meta.built, meta.compactions + 1))

    @property
    def loaded(self) -> IndexIDMap2:
        if self._index is None:
            self.load()
        assert self._index is not None
        return self._index

    def ids(self) -> np.ndarray:
        import faiss

        return faiss.vector_to_array(self.loaded.id_map).astype(np.int64)

    def summary(self) -> IndexSummary:
        ids = self.ids()
        return IndexSummary(len(ids), int(ids.sum()), int(ids.max()) if len(ids) else 0)

    def nearest(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` exhibits of largest inner product with ``query`` (ids, similarities), best first.

        ``allowed``, when given, restricts the search to those exhibit ids.
        """
        import faiss

        index = self.loaded
        params = None
        if allowed is not None:
            params = faiss.SearchParameters()
            params.sel = faiss.IDSelectorBatch(np.asarray(allowed, np.int64))
        k = min(k, index.ntotal)
        if k == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        scores, ids = index.search(np.ascontiguousarray(query[None], np.float32), k, params=params)
        found = ids[0] >= 0
        return ids[0][found], scores[0][found]


def _empty() -> IndexIDMap2:
    import faiss

    return faiss.IndexIDMap2(faiss.IndexFlatIP(DIMENSIONS))


def _apply(index: IndexIDMap2, records: np.ndarray) -> None:
    """Replay journal records in order: runs of additions are added at once, removals drop the ids."""
    import faiss

    start = 0
    ops = records["op"]
    while start < len(records):
        end = start
        while end < len(records) and ops[end] == ops[start]:
            end += 1
        chunk = records[start:end]
        ids = np.ascontiguousarray(chunk["id"], np.int64)
        index.remove_ids(faiss.IDSelectorBatch(ids))  # an addition replaces, a removal drops
        if ops[start] == ADD:
            index.add_with_ids(np.ascontiguousarray(chunk["vector"], np.float32), ids)
        start = end
