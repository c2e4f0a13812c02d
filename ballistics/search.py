"""Ranked search of the collection, like an IBIS correlation list: a funnel of three stages.

1. **Nearest embeddings.** The questioned case's rotation-invariant embedding
   (:mod:`ballistics.embedding`) is looked up in the collection's vector index
   (:mod:`ballistics.case_index`, exact inner product, restricted to the exhibits passing the
   class-characteristic filters): the ``nearest`` most similar exhibits go on.
2. **Signature correlation.** Only their polar signatures (:mod:`ballistics.signature`) are read
   from the database and correlated with the query's at every rotation; the best ``shortlist``
   go on. A collection no larger than ``nearest`` is thus scored exactly as before the index.
3. **Full comparison** (:func:`ballistics.compare.compare_prepared`, on the cached prepared
   surfaces) of the shortlist, on a local process pool or a Dask distributed cluster; both give
   the same ranking.

Memory does not grow with the collection beyond the index (768 bytes per case): the
signatures (16 KB per case) are read for ``nearest`` exhibits only.

Ranking key: the deciding CMC count, then the correlation of the registered surfaces (``ccf``)
to order equal counts, then the SHA-256 so that the order never depends on the executor.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ballistics.compare import Comparison, compare_prepared, scan_identity
from ballistics.embedding import embedding
from ballistics.errors import SearchError
from ballistics.method import CmcParams, DecisionParams
from ballistics.preprocess import BreechFace, prepare
from ballistics.scan import Scan
from ballistics.signature import signature, signature_from_bytes, similarity
from ballistics.store import Exhibit, Store

Progress = Callable[[int, int], None]
#: Shortlist size chosen from the recall measured on Weller and Fadul (docs/search.md).
DEFAULT_SHORTLIST = 20
#: Shortlist size when more than ``LARGE_COLLECTION`` exhibits are searched: the more exhibits,
#: the more of them outscore a weak true mate in the signature correlation (docs/search.md,
#: "Speed and recall at scale": 40 kept every real query's mate at rank 1 at 10^5 and 10^6).
LARGE_SHORTLIST = 40
LARGE_COLLECTION = 10_000
#: Exhibits passed from the vector index to the signature correlation (docs/search.md).
DEFAULT_NEAREST = 2000


@dataclass(frozen=True)
class SearchParams:
    top: int = 10
    #: Exhibits kept for the full comparison; ``None``: :func:`shortlist_size` of the exhibits searched.
    shortlist: int | None = None
    nearest: int = DEFAULT_NEAREST
    calibre: str | None = None
    firing_pin_shape: str | None = None
    #: Scans (SHA-256) left out besides the questioned one, e.g. the original of a rotated copy.
    exclude: tuple[str, ...] = ()
    #: Only the lab's own exhibits, not those received from partners (the correlation of partner scans).
    own_only: bool = False
    cmc: CmcParams = CmcParams()
    decision: DecisionParams = DecisionParams()


@dataclass(frozen=True)
class Hit:
    """One ranked candidate."""

    rank: int
    exhibit: Exhibit
    prefilter: float
    cmc: int
    decision: str
    score: float | None
    comparison: dict[str, Any] = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        e = self.exhibit
        return {
            "rank": self.rank,
            "exhibit": e.exhibit,
            "case": e.case,
            "lab": e.lab,
            "partner": e.partner,
            "path": str(e.path),
            "sha256": e.sha256,
            "cmc": self.cmc,
            "decision": self.decision,
            "score": None if self.score is None else round(self.score, 4),
            "prefilter": round(self.prefilter, 4),
            "rotation_deg": self.comparison["rotation_deg"],
        }


@dataclass(frozen=True)
class StageTimes:
    """Seconds spent in each stage of the funnel (``index_s`` includes bringing a stale index up to date)."""

    index_s: float
    correlation_s: float
    rerank_s: float

    def to_dict(self) -> dict[str, float]:
        return {"index_s": round(self.index_s, 4), "correlation_s": round(self.correlation_s, 4), "rerank_s": round(self.rerank_s, 3)}


@dataclass(frozen=True)
class SearchResult:
    query: dict[str, Any]
    searched: int
    nearest: int
    shortlisted: int
    elapsed_s: float
    stages: StageTimes
    candidates: list[Hit]

    @property
    def prefilter_s(self) -> float:
        """The two stages before the full comparison."""
        return self.stages.index_s + self.stages.correlation_s

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "searched": self.searched,
            "nearest": self.nearest,
            "shortlisted": self.shortlisted,
            "elapsed_s": round(self.elapsed_s, 3),
            "prefilter_s": round(self.prefilter_s, 4),
            "stages": self.stages.to_dict(),
            "candidates": [hit.to_dict() for hit in self.candidates],
        }


# --- executors -----------------------------------------------------------------------------------

RerankTask = tuple[BreechFace, BreechFace, dict[str, Any], dict[str, Any], CmcParams, DecisionParams]


def rerank_one(task: RerankTask) -> dict[str, Any]:
    """Full comparison of one shortlisted exhibit (reference) with the questioned scan."""
    reference, questioned, reference_id, questioned_id, cmc, decision = task
    return compare_prepared(reference, questioned, reference_id, questioned_id, cmc=cmc, decision=decision).to_dict()


class Executor(Protocol):
    def map(self, tasks: Sequence[RerankTask], progress: Progress | None = None) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class LocalExecutor:
    """A process pool on this machine (one process: run in place, no pool)."""

    workers: int = max(1, os.cpu_count() or 1)

    def map(self, tasks: Sequence[RerankTask], progress: Progress | None = None) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        if self.workers == 1 or len(tasks) <= 1:
            for task in tasks:
                results.append(rerank_one(task))
                _tick(progress, len(results), len(tasks))
            return results
        with ProcessPoolExecutor(max_workers=min(self.workers, len(tasks))) as pool:
            for result in pool.map(rerank_one, tasks):
                results.append(result)
                _tick(progress, len(results), len(tasks))
        return results


@dataclass
class DaskExecutor:
    """The same work on a Dask distributed cluster (``tcp://host:port``, or a ``Client``)."""

    address: Any

    def map(self, tasks: Sequence[RerankTask], progress: Progress | None = None) -> list[dict[str, Any]]:
        """Submit one task per comparison; the scheduler reruns a task whose worker died.

        Each task holds its inputs (both prepared surfaces) in the scheduler's graph, not on a
        worker, so a task lost with its worker is recomputed elsewhere. A task whose workers died
        more often than the scheduler's ``distributed.scheduler.allowed-failures`` (default 3),
        or a scheduler lost mid-search, fails the search with a :class:`SearchError`.
        """
        from concurrent.futures import CancelledError

        from distributed import Client, as_completed
        from distributed.comm import CommClosedError
        from distributed.scheduler import KilledWorker

        own = not isinstance(self.address, Client)
        try:
            client = Client(self.address, timeout="10s") if own else self.address
        except (OSError, TimeoutError, ValueError) as exc:
            raise SearchError(str(self.address), f"cannot reach the Dask scheduler: {exc}") from None
        try:
            futures = [client.submit(rerank_one, task, pure=False) for task in tasks]
            index = {future.key: i for i, future in enumerate(futures)}
            results: list[dict[str, Any] | None] = [None] * len(futures)
            for done, future in enumerate(as_completed(futures), start=1):
                results[index[future.key]] = future.result()
                _tick(progress, done, len(futures))
            return [r for r in results if r is not None]
        except KilledWorker as exc:
            reference = tasks[index[exc.task]][2]["path"] if exc.task in index else "a candidate"
            raise SearchError(
                str(self.address), f"a Dask worker died comparing {reference} more often than the scheduler retries; search again"
            ) from None
        except (CancelledError, CommClosedError) as exc:
            raise SearchError(str(self.address), f"lost the Dask scheduler during the search: {type(exc).__name__} {exc}") from None
        finally:
            if own:
                client.close()


def _tick(progress: Progress | None, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)


# --- search --------------------------------------------------------------------------------------


def prefilter(store: Store, query: np.ndarray, candidates: Sequence[Exhibit]) -> np.ndarray:
    """Signature similarity of every candidate; signatures missing from the cache are made once."""
    stored = store.signatures([e.sha256 for e in candidates])
    for e in candidates:
        if e.sha256 not in stored:
            sig = signature(store.prepared(e.sha256), store.signature_params)
            store.put_signature(e.sha256, sig)
            stored[e.sha256] = sig.tobytes()
    if not candidates:
        return np.zeros(0)
    matrix = np.stack([signature_from_bytes(stored[e.sha256], store.signature_params) for e in candidates])
    return similarity(query, matrix, store.signature_params)[0]


@dataclass(frozen=True)
class Shortlist:
    """What the first two stages of the funnel keep for the full comparison."""

    searched: int  # exhibits passing the filters, the questioned scan left out
    nearest: tuple[int, ...]  # exhibit ids taken from the vector index
    exhibits: tuple[Exhibit, ...]  # the shortlist, best signature correlation first
    scores: tuple[float, ...]  # their signature correlations
    index_s: float
    correlation_s: float


def shortlist_size(searched: int) -> int:
    """The default shortlist for a search among ``searched`` exhibits (:data:`DEFAULT_SHORTLIST` or :data:`LARGE_SHORTLIST`)."""
    return DEFAULT_SHORTLIST if searched <= LARGE_COLLECTION else LARGE_SHORTLIST


def shortlist(store: Store, face: BreechFace, left_out: set[str], params: SearchParams = SearchParams()) -> Shortlist:
    """Stages 1 and 2: nearest embeddings in the vector index, then signature correlation of those only.

    ``left_out``: SHA-256 of scans not to return (the questioned scan, ``params.exclude``).
    """
    query = signature(face, store.signature_params)
    excluded = {e.id for sha in left_out if sha and (e := store.by_sha256(sha)) is not None}
    filtered = params.calibre is not None or params.firing_pin_shape is not None or params.own_only
    allowed = (
        store.exhibit_ids(calibre=params.calibre, firing_pin_shape=params.firing_pin_shape, own_only=params.own_only) if filtered else None
    )
    searching = time.perf_counter()
    index = store.synced_index()
    pool = np.array(allowed, np.int64) if allowed is not None else index.ids()
    searched = len(pool) - int(np.isin(np.array(sorted(excluded), np.int64), pool).sum())
    found, _ = index.nearest(embedding(query), params.nearest + len(excluded), None if allowed is None else pool)
    near = sorted(int(i) for i in found if int(i) not in excluded)[: params.nearest]
    correlating = time.perf_counter()
    stored = store.exhibit_signatures(near)
    near = [i for i in near if i in stored]
    if not near:
        return Shortlist(max(searched, 0), (), (), (), correlating - searching, time.perf_counter() - correlating)
    scores = similarity(query, np.stack([stored[i][1] for i in near]), store.signature_params)[0]
    keep = np.argsort(-scores, kind="stable")[: params.shortlist if params.shortlist is not None else shortlist_size(searched)]
    exhibits = store.exhibits_by_id([near[i] for i in keep])
    return Shortlist(
        searched,
        tuple(near),
        tuple(exhibits[near[i]] for i in keep),
        tuple(float(scores[i]) for i in keep),
        correlating - searching,
        time.perf_counter() - correlating,
    )


def search(
    store: Store,
    questioned: Scan,
    params: SearchParams = SearchParams(),
    executor: Executor | None = None,
    progress: Progress | None = None,
) -> SearchResult:
    """Rank the collection's exhibits (the questioned scan itself left out) against a scan."""
    started = time.perf_counter()
    face = questioned_face(store, questioned)
    kept = shortlist(store, face, {questioned.sha256 or "", *params.exclude}, params)
    if not kept.exhibits:
        raise SearchError(questioned.source, "no exhibit of the collection passes the filters")
    reranking = time.perf_counter()
    query_id = scan_identity(questioned)
    tasks = [
        (store.prepared(e.sha256), face, {"path": str(e.path), "sha256": e.sha256}, query_id, params.cmc, params.decision)
        for e in kept.exhibits
    ]
    results = (executor or LocalExecutor()).map(tasks, progress)
    order = sorted(range(len(results)), key=lambda i: _rank_key(results[i], kept.exhibits[i].sha256))
    hits = [
        Hit(
            rank=rank,
            exhibit=kept.exhibits[i],
            prefilter=kept.scores[i],
            cmc=int(results[i]["cmc"]),
            decision=str(results[i]["decision"]),
            score=results[i]["ccf"],
            comparison=results[i],
        )
        for rank, i in enumerate(order[: params.top], start=1)
    ]
    finished = time.perf_counter()
    stages = StageTimes(kept.index_s, kept.correlation_s, finished - reranking)
    return SearchResult(query_id, kept.searched, len(kept.nearest), len(kept.exhibits), finished - started, stages, hits)


def questioned_face(store: Store, questioned: Scan) -> BreechFace:
    """The questioned scan prepared as the collection prepares its exhibits (its cached face when it is one of them)."""
    if questioned.sha256 and store.by_sha256(questioned.sha256):
        return store.prepared(questioned.sha256)
    return prepare(questioned, store.preprocess)


def hit_comparisons(
    store: Store, questioned: Scan, result: SearchResult, params: SearchParams = SearchParams(), progress: Progress | None = None
) -> list[Comparison]:
    """Each ranked candidate's comparison again, in this process, with its details and surfaces (for views and figures).

    The executors return only each comparison's JSON document; the comparison is deterministic,
    so the one made here has the same counts and registration as the ranked one.
    """
    face = questioned_face(store, questioned)
    comparisons = []
    for hit in result.candidates:
        reference_id = {"path": str(hit.exhibit.path), "sha256": hit.exhibit.sha256}
        comparisons.append(
            compare_prepared(store.prepared(hit.exhibit.sha256), face, reference_id, result.query, cmc=params.cmc, decision=params.decision)
        )
        _tick(progress, len(comparisons), len(result.candidates))
    return comparisons


def _rank_key(result: dict[str, Any], sha256: str) -> tuple[int, float, str]:
    ccf = result["ccf"]
    return (-int(result["cmc"]), -(ccf if ccf is not None else -2.0), sha256)
