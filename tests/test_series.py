"""Firearm series from confirmed links: components with known truth, what counts as a link, stable ids, merges, the figure."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest
from PIL import Image
from series_support import link_record

from ballistics.errors import StoreError
from ballistics.labs import Lab
from ballistics.records import validate_record
from ballistics.series import CaseRef, find_all_series, find_series, is_confirmed_link, series_id
from ballistics.series_plot import DPI, draw_series

UK = Lab("UK-FSL", "UK Forensic Science Laboratory", "GB")
MET = Lab("UK-MET", "Metropolitan Police lab", "GB")
FR = Lab("FR-IRCGN", "IRCGN", "FR")
LABS = {lab.id: lab for lab in (UK, MET, FR)}


def sha(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def filing(*entries: tuple[Lab, str, str]) -> dict[str, tuple[CaseRef, str]]:
    """Scan SHA-256 -> (case, exhibit), as the collection would file ``case/exhibit`` scans."""
    return {sha(f"{case}/{exhibit}"): (CaseRef(lab.id, case), exhibit) for lab, case, exhibit in entries}


FILED = filing(
    (UK, "UK-1", "CS1"),
    (UK, "UK-1", "CS2"),
    (UK, "UK-2", "CS1"),
    (FR, "FR-1", "E1"),
    (FR, "FR-2", "E1"),
    (FR, "FR-3", "E1"),
    (MET, "MET-9", "Q1"),
)


def link(lab: Lab, case: str, a: str, b: str, **kw) -> dict:
    """A record of ``lab``'s ``case`` comparing the scans filed as ``a`` and ``b`` (``CASE/EXHIBIT``)."""
    return link_record(lab, case, (sha(a), sha(b)), (a.split("/")[1], b.split("/")[1]), **kw)


def known_world() -> list[dict]:
    """Two firearms: one seen by the UK and France (cross-border), one by France alone; and records that are not links."""
    return [
        link(UK, "UK-1", "UK-1/CS1", "UK-1/CS2", day=1, log10_lr=5.1),  # within one case: one node
        link(FR, "FR-1", "FR-1/E1", "UK-1/CS2", day=3, log10_lr=4.4),  # cross-border link
        link(FR, "FR-2", "FR-2/E1", "FR-3/E1", day=2, log10_lr=3.3),
        # the algorithm said identification, the examiner did not: not links, they join nothing
        link(UK, "UK-1", "UK-1/CS1", "FR-2/E1", afte="elimination", day=4),
        link(FR, "FR-3", "FR-3/E1", "UK-2/CS1", afte=None, day=5),
        link(FR, "FR-3", "FR-3/E1", "MET-9/Q1", afte="inconclusive-a", day=6),
    ]


def test_two_firearms_with_known_truth_one_cross_border() -> None:
    found = find_all_series(known_world(), FILED, LABS)
    assert [[c.ref.key for c in s.cases] for s in found] == [["FR-IRCGN/FR-1", "UK-FSL/UK-1"], ["FR-IRCGN/FR-2", "FR-IRCGN/FR-3"]]
    border, french = found
    assert border.cross_border and border.countries == ("FR", "GB") and {lab.id for lab in border.labs} == {"UK-FSL", "FR-IRCGN"}
    assert not french.cross_border and french.countries == ("FR",)
    assert [c.exhibits for c in border.cases] == [("E1",), ("CS1", "CS2")]  # two exhibits of one case, one node
    assert border.first == "2026-01-01T09:30:00Z" and border.last == "2026-01-03T09:30:00Z"
    assert border.dates == ("2026-01-01", "2026-01-03") and french.dates == ("2026-01-02",)
    assert [link.likelihood_ratio.log10_lr for link in border.links if link.likelihood_ratio] == [5.1, 4.4]
    assert border.id == series_id(CaseRef("FR-IRCGN", "FR-1")) and french.id == series_id(CaseRef("FR-IRCGN", "FR-2"))
    document = border.to_dict()
    assert document["cross_border"] is True and [c["case"] for c in document["cases"]] == ["FR-1", "UK-1"]
    assert document["links"][1]["reference"] == {"lab": "FR-IRCGN", "case": "FR-1", "exhibit": "E1"}
    assert document["links"][1]["questioned"] == {"lab": "UK-FSL", "case": "UK-1", "exhibit": "CS2"}


def test_only_the_examiners_identification_is_a_confirmed_link() -> None:
    scans = (sha("UK-1/CS1"), sha("FR-1/E1"))
    assert is_confirmed_link(link_record(UK, "UK-1", scans))
    assert not is_confirmed_link(link_record(UK, "UK-1", scans, afte=None))  # the algorithm's identification alone
    assert not is_confirmed_link(link_record(UK, "UK-1", scans, afte="inconclusive-a"))
    assert not is_confirmed_link(link_record(UK, "UK-1", scans, afte="elimination", decision="identification"))
    old = link_record(UK, "UK-1", scans, version=1)  # version 1 kept the examiner's category in "conclusion"
    validate_record(old)
    assert old["schema_version"] == 1 and is_confirmed_link(old)
    assert not is_confirmed_link(link_record(UK, "UK-1", scans, afte=None, version=1))


def test_a_side_the_collection_does_not_file_is_the_records_own_case() -> None:
    """A partner's record whose scans never came: both sides are its own lab and case."""
    unfiled = link_record(FR, "FR-77", (sha("x"), sha("y")), ("E1", "E2"), day=1)
    later = link_record(UK, "UK-2", (sha("UK-2/CS1"), sha("y")), ("CS1", "Q7"), day=2)  # cites y too: the scans meet
    [series] = find_all_series([later, unfiled], FILED, LABS)
    assert [c.ref.key for c in series.cases] == ["FR-IRCGN/FR-77", "UK-FSL/UK-2"] and series.cross_border
    assert [c.exhibits for c in series.cases] == [("E1", "E2"), ("CS1",)]  # y is FR-77's E2, as the oldest record named it
    assert series.links[1].ends == (CaseRef("UK-FSL", "UK-2"), CaseRef("FR-IRCGN", "FR-77"))


def test_ids_are_stable_across_calls_and_input_order() -> None:
    records = known_world()
    first = find_all_series(records, FILED, LABS)
    shuffled = records[:]
    random.Random(7).shuffle(shuffled)
    again = find_all_series(shuffled, FILED, LABS)
    assert [s.id for s in first] == [s.id for s in again] and [s.to_dict() for s in first] == [s.to_dict() for s in again]
    assert all(s.id.startswith("S-") and len(s.id) == 14 for s in first)


def test_a_growing_series_keeps_its_id_and_a_merge_keeps_the_first_cases() -> None:
    records = known_world()
    border, french = find_all_series(records, FILED, LABS)
    grown = find_all_series([*records, link(MET, "MET-9", "MET-9/Q1", "UK-1/CS1", day=9)], FILED, LABS)
    assert [s.id for s in grown] == [border.id, french.id] and len(grown[0].cases) == 3  # MET-9 joined, id kept
    merged = find_all_series([*records, link(FR, "FR-3", "FR-3/E1", "UK-1/CS1", day=8)], FILED, LABS)
    assert [s.id for s in merged] == [border.id]  # FR-1 sorts before FR-2: the merged series is the first's
    assert [c.ref.key for c in merged[0].cases] == ["FR-IRCGN/FR-1", "FR-IRCGN/FR-2", "FR-IRCGN/FR-3", "UK-FSL/UK-1"]
    assert find_series(merged, border.id.lower()) == merged[0]
    with pytest.raises(StoreError, match=f"case FR-IRCGN/FR-2 is in series {border.id}") as gone:
        find_series(merged, french.id)
    assert gone.value.exit_code == 3
    with pytest.raises(StoreError, match="no such series"):
        find_series(merged, "S-000000000000")


def test_the_figure_is_a_300_dpi_png_with_no_overlapping_labels(tmp_path: Path) -> None:
    border, _ = find_all_series(known_world(), FILED, LABS)
    drawn = draw_series(border, tmp_path / "border.png")
    with Image.open(drawn.path) as image:
        assert image.format == "PNG" and image.size == (drawn.width_px, drawn.height_px)
        assert round(image.info["dpi"][0]) == DPI == 300
        assert 900 <= image.size[0] <= 6000 and 700 <= image.size[1] <= 6000
        assert len(image.convert("RGB").getcolors(1 << 20) or ()) > 20  # drawn, not blank
    assert drawn.overlapping_labels == 0


def test_a_dense_series_still_has_readable_labels(tmp_path: Path) -> None:
    """Ten cases of three labs all linked to each other: the figure grows until no two labels overlap."""
    cases = [(lab, f"{lab.id[:2]}-2026-{n:04d}") for n, lab in enumerate([UK, FR, MET] * 3 + [FR])]
    filed = filing(*((lab, case, "E1") for lab, case in cases))
    records = [
        link(a[0], a[1], f"{a[1]}/E1", f"{b[1]}/E1", day=1 + (i + j) % 27, log10_lr=2.0 + (i * j) % 5)
        for i, a in enumerate(cases)
        for j, b in enumerate(cases)
        if i < j
    ]
    [series] = find_all_series(records, filed, LABS)
    assert len(series.cases) == 10 and len(series.links) == 45 and series.cross_border
    drawn = draw_series(series, tmp_path / "dense.png")
    assert drawn.overlapping_labels == 0 and drawn.path.stat().st_size > 50_000


def test_a_partners_case_number_is_drawn_as_text_never_as_mathtext(tmp_path: Path) -> None:
    """Between two ``$`` matplotlib reads mathtext: ``$\\frac{$`` would stop the drawing, ``$x^2$`` would typeset."""
    odd = Lab("FR-IRCGN", "IRCGN", "FR")
    cases = ["FR $\\frac{$ 1", "$x^2$ 2026"]
    records = [link_record(odd, cases[0], (sha("p"), sha("q"))), link_record(odd, cases[1], (sha("q"), sha("r")), day=2)]
    [series] = find_all_series(records, {}, LABS)
    assert [c.ref.case for c in series.cases] == sorted(cases)
    drawn = draw_series(series, tmp_path / "odd.png")
    assert drawn.overlapping_labels == 0 and drawn.path.stat().st_size > 10_000
