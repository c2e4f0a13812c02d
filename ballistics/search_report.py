"""The correlation list as a page: every ranked candidate with a thumbnail, each opening its pair view.

``ballistics search ... --report out.html`` writes one self-contained file: the list (rank,
exhibit, lab, CMC, decision, score, prefilter) with, per candidate, a thumbnail of the
candidate registered onto the questioned case (:func:`thumbnail`), and every candidate's pair
view (:func:`ballistics.view.pair_view`) embedded in the same file, shown when its button is
pressed. All candidates are drawn in the questioned case's frame, so their thumbnails can be
read down the list as on a correlation system's screen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from markupsafe import Markup

from ballistics.compare import Comparison
from ballistics.registration import block_mean, inverse_registration, transform
from ballistics.relief import shade
from ballistics.search import SearchResult
from ballistics.view import asset, environment, page, pair_view, png_data_uri

#: Thumbnail size (pixels, longest side) and the pair views' resolution cap (points per side).
THUMBNAIL_PX = 180
VIEW_MAX_SIDE = 400


@dataclass(frozen=True)
class Thumbnail:
    uri: str
    width: int
    height: int


def thumbnail(comparison: Comparison, side_px: int = THUMBNAIL_PX) -> Thumbnail:
    """The questioned case (left half) and the candidate registered onto it (right half), in shaded relief.

    The comparison's reference is the candidate; the inverse of its registration
    (:func:`ballistics.registration.inverse_registration`) brings it onto the questioned
    surface's grid. Both are block-averaged to at most ``side_px`` points per side.
    """
    if comparison.details is None or comparison.surfaces is None:
        raise ValueError("the comparison was made without its details")
    candidate, questioned = comparison.surfaces
    angle, shift = inverse_registration(comparison.rotation_deg, comparison.details.shift_px)
    moved = transform(np.asarray(candidate.surface, np.float32), angle, shift, questioned.surface.shape)
    factor = max(1, -(-max(questioned.surface.shape) // side_px))
    spacing = questioned.spacing_m * factor
    left = shade(block_mean(np.asarray(questioned.surface, np.float32), factor), spacing)
    right = shade(block_mean(moved, factor), spacing)
    half = left.shape[1] // 2
    picture = np.concatenate([left[:, :half], right[:, half:]], axis=1)
    picture[:, half] = 1.0  # the split line, white
    return Thumbnail(png_data_uri(picture), picture.shape[1], picture.shape[0])


def search_report(result: SearchResult, comparisons: list[Comparison], query_label: str) -> str:
    """The whole page: the list, a thumbnail per candidate, and every candidate's pair view (hidden until opened)."""
    from ballistics.identifiers import Identifiers

    rows = []
    for hit, comparison in zip(result.candidates, comparisons, strict=True):
        exhibit = f"{hit.exhibit.case}/{hit.exhibit.exhibit}"
        picture = thumbnail(comparison)
        view_id = f"pair-{hit.rank}"
        rows.append(
            {
                "rank": hit.rank,
                "exhibit": exhibit,
                "lab": hit.exhibit.lab + (" (partner)" if hit.exhibit.partner else ""),
                "cmc": hit.cmc,
                "decision": hit.decision,
                "score": "" if hit.score is None else f"{hit.score:.3f}",
                "prefilter": f"{hit.prefilter:.3f}",
                "thumbnail": picture.uri,
                "thumb_width": picture.width,
                "thumb_height": picture.height,
                "view_id": view_id,
                "view": pair_view(comparison, Identifiers(exhibit, query_label), view_id=view_id, max_side=VIEW_MAX_SIDE),
            }
        )
    body = Markup(
        environment()
        .get_template("search_report.html")
        .render(
            query=query_label,
            query_sha256=result.query.get("sha256"),
            searched=result.searched,
            shortlisted=result.shortlisted,
            rows=rows,
            script=asset("search_report.js"),
        )
    )
    return page(f"Correlation list for {query_label}", body, asset("search_report.css"))
