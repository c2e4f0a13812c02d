"""Ranked search of the collection, like an IBIS correlation list: shortlist, then rerank.

A questioned scan is compared with the whole collection in two stages. The prefilter scores
every candidate that passes the class-characteristic filters with the rotation-invariant polar
signature (:mod:`ballistics.signature`; one vectorised pass over signatures read from the
database) and keeps the best ``shortlist``. The full comparison
(:func:`ballistics.compare.compare_prepared`, on the cached prepared surfaces) then ranks the
shortlist, on a local process pool or a Dask distributed cluster; both give the same ranking.

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

from ballistics.compare import compare_prepared, scan_identity
from ballistics.errors import SearchError
from ballistics.method import CmcParams, DecisionParams
from ballistics.preprocess import BreechFace, prepare
from ballistics.scan import Scan
from ballistics.signature import signature, signature_from_bytes, similarity
from ballistics.store import Exhibit, Store

Progress = Callable[[int, int], None]
#: Shortlist size chosen from the recall measured on Weller and Fadul (docs/search.md).
DEFAULT_SHORTLIST = 20


@dataclass(frozen=True)
class SearchParams:
    top: int = 10
    shortlist: int = DEFAULT_SHORTLIST
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
class SearchResult:
    query: dict[str, Any]
    searched: int
    shortlisted: int
    elapsed_s: float
    prefilter_s: float
    candidates: list[Hit]

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "searched": self.searched,
            "shortlisted": self.shortlisted,
            "elapsed_s": round(self.elapsed_s, 3),
            "prefilter_s": round(self.prefilter_s, 4),
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


def search(
    store: Store,
    questioned: Scan,
    params: SearchParams = SearchParams(),
    executor: Executor | None = None,
    progress: Progress | None = None,
) -> SearchResult:
    """Rank the collection's exhibits (the questioned scan itself left out) against a scan."""
    started = time.perf_counter()
    face = (
        store.prepared(questioned.sha256)
        if questioned.sha256 and store.by_sha256(questioned.sha256)
        else prepare(questioned, store.preprocess)
    )
    left_out = {questioned.sha256, *params.exclude}
    candidates = [
        e
        for e in store.exhibits(calibre=params.calibre, firing_pin_shape=params.firing_pin_shape)
        if e.sha256 not in left_out and not (params.own_only and e.partner)
    ]
    if not candidates:
        raise SearchError(questioned.source, "no exhibit of the collection passes the filters")
    filtering = time.perf_counter()
    scores = prefilter(store, signature(face, store.signature_params), candidates)
    keep = np.argsort(-scores, kind="stable")[: params.shortlist]
    prefilter_s = time.perf_counter() - filtering
    shortlisted = [candidates[i] for i in keep]
    query_id = scan_identity(questioned)
    tasks = [
        (store.prepared(e.sha256), face, {"path": str(e.path), "sha256": e.sha256}, query_id, params.cmc, params.decision)
        for e in shortlisted
    ]
    results = (executor or LocalExecutor()).map(tasks, progress)
    order = sorted(range(len(results)), key=lambda i: _rank_key(results[i], shortlisted[i].sha256))
    hits = [
        Hit(
            rank=rank,
            exhibit=shortlisted[i],
            prefilter=float(scores[keep[i]]),
            cmc=int(results[i]["cmc"]),
            decision=str(results[i]["decision"]),
            score=results[i]["ccf"],
            comparison=results[i],
        )
        for rank, i in enumerate(order[: params.top], start=1)
    ]
    return SearchResult(query_id, len(candidates), len(shortlisted), time.perf_counter() - started, prefilter_s, hits)


def _rank_key(result: dict[str, Any], sha256: str) -> tuple[int, float, str]:
    ccf = result["ccf"]
    return (-int(result["cmc"]), -(ccf if ccf is not None else -2.0), sha256)
