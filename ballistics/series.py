"""Firearm series: the firearms that confirmed links reveal across cases and labs.

A **confirmed link** is a match record (the lab's own or a partner's, imported) in which the
*examiner* concluded identification: AFTE category ``identification`` in ``examiner_conclusion``
(version 2) or in ``conclusion`` (version 1, where it was the examiner's;
:func:`ballistics.records.examiner_conclusion`). The algorithm's decision alone, a verbal LR
conclusion without the AFTE identification, or a record without any examiner's conclusion is not
a confirmed link: a series is what examiners have stood behind.

The two ends of a link are **cases**, a lab's case number (``lab/case``), so that two exhibits
of one case are one node. Each side of a record is placed by its scan's SHA-256: where the
collection files that scan (as the lab's exhibit, or a partner's imported one) the exhibit's lab
and case are that side's; otherwise the scan belongs to the lab and case of the oldest confirmed
link citing it (the record's own), so that two records citing one such scan meet. A series
is a connected component of the graph of cases joined by confirmed links (:mod:`networkx`); a
link within one case makes a series of that one case.

Series ids are ``S-`` and the first 12 hex digits of the SHA-256 of the smallest case key of the
series (``["lab", "case"]`` as JSON, compared as (lab, case)). They depend on nothing but the
membership, so every listing gives the same ids, and a series that grows keeps its id. When a
new link joins two series, the merged series keeps the id of the one whose smallest case sorts
first; the other id no longer names a series, and :func:`find_series` says which series holds
the case it was named after.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import networkx as nx

from ballistics.clock import format_time
from ballistics.errors import StoreError
from ballistics.labs import UNKNOWN_COUNTRY, Lab
from ballistics.record_summary import StatedLR, stated_lr
from ballistics.records import examiner_conclusion

if TYPE_CHECKING:
    from ballistics.store import Store

#: The examiner's AFTE category that makes a record a confirmed link.
CONFIRMED = "identification"
#: Hex digits of the SHA-256 kept in a series id.
ID_DIGITS = 12


@dataclass(frozen=True, order=True)
class CaseRef:
    """A case of a lab: one node of the link graph."""

    lab: str  # lab id
    case: str

    @property
    def key(self) -> str:
        """``lab/case`` for a reader (lab ids cannot hold ``/``)."""
        return f"{self.lab}/{self.case}"


def series_id(case: CaseRef) -> str:
    """The id of the series whose smallest case is ``case``."""
    digest = hashlib.sha256(json.dumps([case.lab, case.case], ensure_ascii=False).encode("utf-8")).hexdigest()
    return f"S-{digest[:ID_DIGITS]}"


@dataclass(frozen=True)
class Link:
    """One confirmed link: a match record whose examiner concluded identification."""

    record_id: str
    recorded_by: Lab
    ends: tuple[CaseRef, CaseRef]  # the reference's case, the questioned's
    exhibits: tuple[str, str]
    decision: str  # the algorithm's
    cmc: int
    likelihood_ratio: StatedLR | None
    examiner: str
    created: str  # UTC, the toolkit's one time format

    def to_dict(self) -> dict[str, Any]:
        return {
            "record_id": self.record_id,
            "recorded_by": self.recorded_by.to_dict(),
            "reference": {"lab": self.ends[0].lab, "case": self.ends[0].case, "exhibit": self.exhibits[0]},
            "questioned": {"lab": self.ends[1].lab, "case": self.ends[1].case, "exhibit": self.exhibits[1]},
            "decision": self.decision,
            "cmc": self.cmc,
            "likelihood_ratio": None if self.likelihood_ratio is None else self.likelihood_ratio.to_dict(),
            "examiner": self.examiner,
            "created": self.created,
        }


@dataclass(frozen=True)
class SeriesCase:
    """A case of a series, with the exhibits its confirmed links name."""

    ref: CaseRef
    lab: Lab
    exhibits: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"lab": self.lab.to_dict(), "case": self.ref.case, "exhibits": list(self.exhibits)}


@dataclass(frozen=True)
class Series:
    """One firearm revealed by confirmed links: its cases and the links that join them."""

    id: str
    cases: tuple[SeriesCase, ...]  # sorted by (lab, case)
    links: tuple[Link, ...]  # oldest first

    @property
    def labs(self) -> tuple[Lab, ...]:
        return tuple({case.lab.id: case.lab for case in self.cases}.values())

    @property
    def countries(self) -> tuple[str, ...]:
        """ISO 3166 codes of the labs' countries, sorted (``ZZ`` for a lab known by id only)."""
        return tuple(sorted({lab.country for lab in self.labs}))

    @property
    def cross_border(self) -> bool:
        """The labs of the series are in at least two known countries (``ZZ``, unknown, does not count)."""
        return len(set(self.countries) - {UNKNOWN_COUNTRY}) >= 2

    @property
    def first(self) -> str:
        return self.links[0].created

    @property
    def last(self) -> str:
        return self.links[-1].created

    @property
    def dates(self) -> tuple[str, ...]:
        """The distinct days (UTC) of the links, in order."""
        return tuple(sorted({link.created[:10] for link in self.links}))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "cross_border": self.cross_border,
            "countries": list(self.countries),
            "labs": [lab.to_dict() for lab in self.labs],
            "cases": [case.to_dict() for case in self.cases],
            "first": self.first,
            "last": self.last,
            "dates": list(self.dates),
            "links": [link.to_dict() for link in self.links],
        }


def is_confirmed_link(record: Mapping[str, Any]) -> bool:
    """The examiner (not the algorithm) concluded identification in this validated record."""
    return examiner_conclusion(record).get("afte_category") == CONFIRMED


def confirmed_links(records: Iterable[Mapping[str, Any]], filed: Mapping[str, tuple[CaseRef, str]]) -> tuple[list[Link], dict[str, Lab]]:
    """The confirmed links among ``records``, oldest first, and the labs their records name (by id).

    ``filed`` maps a scan's SHA-256 to the case and exhibit the collection files it under. A
    scan it does not file belongs to the case of the oldest confirmed link citing it (that
    record's lab and case, under the exhibit id the record gives), so that two records citing
    one such scan still meet at one node.
    """
    confirmed = sorted(
        (record for record in records if is_confirmed_link(record)),
        key=lambda record: (_utc(record["created"]), record["record_id"]),
    )
    placed = dict(filed)
    links: list[Link] = []
    named: dict[str, Lab] = {}
    for record in confirmed:
        maker = Lab.from_dict(record["lab"])
        named.setdefault(maker.id, maker)
        own = CaseRef(maker.id, record["case_id"])
        sides = [
            placed.setdefault(record["scans"][side]["sha256"], (own, record["exhibits"][side])) for side in ("reference", "questioned")
        ]
        links.append(
            Link(
                record_id=record["record_id"],
                recorded_by=maker,
                ends=(sides[0][0], sides[1][0]),
                exhibits=(sides[0][1], sides[1][1]),
                decision=record["conclusion"]["decision"],
                cmc=int(record["scores"]["cmc"]),
                likelihood_ratio=stated_lr(record),
                examiner=record["examiner"]["name"],
                created=_utc(record["created"]),
            )
        )
    return links, named


def _utc(moment: str) -> str:
    """An RFC 3339 time of a record (any offset) in the toolkit's one format (UTC, ``Z``)."""
    return format_time(datetime.fromisoformat(moment))


def find_all_series(
    records: Iterable[Mapping[str, Any]], filed: Mapping[str, tuple[CaseRef, str]], labs: Mapping[str, Lab]
) -> tuple[Series, ...]:
    """Every series the confirmed links among ``records`` reveal, oldest first (then by id).

    ``filed``: scan SHA-256 -> (case, exhibit) as the collection files it; ``labs``: the labs the
    collection knows, by id (a lab only a record names is taken from that record).
    """
    links, named = confirmed_links(records, filed)
    known = {**named, **labs}
    graph: nx.MultiGraph[CaseRef] = nx.MultiGraph()
    for index, link in enumerate(links):
        graph.add_edge(*link.ends, key=index)
    components = [sorted(members) for members in nx.connected_components(graph)]
    component_of = {ref: index for index, refs in enumerate(components) for ref in refs}
    grouped: list[list[Link]] = [[] for _ in components]
    for link in links:
        grouped[component_of[link.ends[0]]].append(link)
    found = []
    for refs, own in zip(components, grouped, strict=True):  # links oldest first, as confirmed_links gives them
        exhibits: dict[CaseRef, set[str]] = {ref: set() for ref in refs}
        for link in own:
            for end, exhibit in zip(link.ends, link.exhibits, strict=True):
                exhibits[end].add(exhibit)
        cases = tuple(SeriesCase(ref, known.get(ref.lab, Lab(ref.lab, ref.lab)), tuple(sorted(exhibits[ref]))) for ref in refs)
        found.append(Series(series_id(refs[0]), cases, tuple(own)))
    return tuple(sorted(found, key=lambda s: (s.first, s.id)))


def find_series(all_series: Iterable[Series], ident: str) -> Series:
    """The series named ``ident`` (case-insensitive); one line saying why when there is none.

    An id that no longer names a series because its case joined another (two series merged, or
    the case was never the smallest of its series) is answered with the series that holds it.
    """
    wanted = ident.strip().upper()
    every = list(all_series)
    for series in every:
        if series.id.upper() == wanted:
            return series
    for series in every:
        for case in series.cases:
            if series_id(case.ref).upper() == wanted:
                raise StoreError(
                    ident,
                    f"no longer a series of its own: case {case.ref.key} is in series {series.id} "
                    "(confirmed links joined it to a case that sorts first)",
                )
    raise StoreError(ident, "no such series (series list shows them)")


def collection_series(store: Store) -> tuple[Series, ...]:
    """Every series of a collection: its stored records (own and imported), placed by where it files their scans."""
    confirmed = [record for record in store.records() if is_confirmed_link(record)]
    shas = [record["scans"][side]["sha256"] for record in confirmed for side in ("reference", "questioned")]
    filed = {sha: (CaseRef(e.lab, e.case), e.exhibit) for sha, e in store.filings(shas).items()}
    return find_all_series(confirmed, filed, store.known_labs())
