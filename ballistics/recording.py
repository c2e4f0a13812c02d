"""Recording a comparison: the match record built, validated, written and stored in one step.

A library user records a comparison exactly as ``ballistics compare --record`` does: the
record names the lab, the case, both exhibits (from the collection when the scans are
exhibits, else the file stems), the examiner and every parameter of the method; it is
validated against the match-record schema, written atomically, and stored with its comparison
in one transaction, so the file and the database never disagree.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import TYPE_CHECKING

from ballistics.errors import UsageError
from ballistics.records import ExaminerConclusion, MatchRecord, build_record, write_record

if TYPE_CHECKING:
    from ballistics.compare import Comparison
    from ballistics.labs import Lab
    from ballistics.likelihood_ratio import LikelihoodRatio
    from ballistics.store import Store


def login_name() -> str:
    """The operating-system user, the examiner of a record when none is named."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def record_comparison(
    store: Store,
    comparison: Comparison,
    paths: tuple[Path, Path],
    target: Path,
    *,
    lab: Lab,
    case: str | None = None,
    examiner: str | None = None,
    store_faces: bool = True,
    likelihood_ratio: LikelihoodRatio | None = None,
    conclusion: ExaminerConclusion | None = None,
    reviewer: str | None = None,
    exhibits: tuple[str | None, str | None] = (None, None),
) -> MatchRecord:
    """Write the match record of ``comparison`` to ``target`` and store both in ``store``.

    ``case`` defaults to the case of whichever scan is already an exhibit of the collection;
    without either, the record cannot name its case and a :class:`UsageError` says so.
    ``store_faces`` keeps the comparison's prepared surfaces as the scans' cache (only valid
    when they were prepared with the store's own parameters). ``likelihood_ratio`` (with its
    calibration's hash), the examiner's ``conclusion`` and the technical ``reviewer`` go into the
    record; ``exhibits`` names the reference and questioned exhibits where the collection and
    the file names should not.
    """
    known = [store.by_sha256(str(side["sha256"])) for side in (comparison.reference, comparison.questioned)]
    case_id = case or next((e.case for e in known if e is not None), None)
    if case_id is None:
        raise UsageError(target, "give --case: neither scan is an exhibit of the collection")
    reference_exhibit, questioned_exhibit = (
        given or (e.exhibit if e is not None else p.stem) for given, e, p in zip(exhibits, known, paths, strict=True)
    )
    traits: dict[str, str] = {}
    for e in reversed(known):
        traits.update(e.characteristics.to_dict() if e is not None else {})
    document = comparison.to_dict()
    if likelihood_ratio is not None:
        document["likelihood_ratio"] = likelihood_ratio.to_dict()
    record = build_record(
        document,
        lab=lab,
        case_id=case_id,
        exhibits=(reference_exhibit, questioned_exhibit),
        examiner={"name": examiner or login_name()},
        class_characteristics=traits or None,
        likelihood_ratio=document.get("likelihood_ratio"),
        examiner_conclusion=conclusion,
        reviewer=None if reviewer is None else {"name": reviewer},
    )
    with store.transaction() as conn:
        comparison_id = store.add_comparison(document, paths[0], paths[1], faces=comparison.surfaces if store_faces else None, conn=conn)
        store.add_record(record, comparison_id=comparison_id, conn=conn)
        write_record(record, target)
    return record
