"""One comparison of two cartridge cases, from scans to a decision an examiner can cite.

:func:`compare` prepares both breech faces (:mod:`ballistics.preprocess`), runs Congruent
Matching Cells both ways (:mod:`ballistics.cmc`), scores the firing-pin impressions where both
scans still carry them (:mod:`ballistics.firing_pin`) and returns a :class:`Comparison`: every
number a match record needs, the method with all its parameters, and the software version.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import numpy as np

from ballistics import SOFTWARE_NAME, __version__
from ballistics.cmc import CmcResult, compare_surfaces, pearson_complete, transform
from ballistics.errors import IncomparableError, UsageError
from ballistics.firing_pin import firing_pin_score
from ballistics.method import CmcParams, Decision, DecisionParams, PreprocessParams, method_description
from ballistics.preprocess import BreechFace, prepare
from ballistics.registration import in_parallel
from ballistics.scan import Scan


@dataclass(frozen=True)
class CellOutlines:
    """The cells of the direction reference -> questioned as drawn over both surfaces.

    ``reference`` holds each cell's box on the reference and ``questioned`` where it registered
    on the questioned surface once that is registered onto the reference (x0, y0, x1, y1,
    reference pixels; a cell keeps its offset from the congruent cells' median displacement at
    the angle where most cells are congruent); ``congruent`` says which cells are congruent under
    the deciding rule, named by ``rule`` ("original" or "High CMC").
    """

    reference: np.ndarray
    questioned: np.ndarray
    congruent: np.ndarray
    rule: str


@dataclass(frozen=True)
class Comparison:
    """The outcome of one comparison, with what is needed to reproduce and report it."""

    reference: dict[str, Any]
    questioned: dict[str, Any]
    cmc: int
    cmc_original: int
    cmc_high: int
    cmc_forward: int
    cmc_backward: int
    high_cmc_passed: bool
    cells_compared: int
    rotation_deg: float
    translation_um: tuple[float, float]
    ccf: float | None
    firing_pin: float | None
    decision: Decision
    method: dict[str, Any]
    software: dict[str, str]
    elapsed_s: float
    #: What the examiner must read beside the decision (a 2-D image involved, ...), in words.
    warnings: tuple[str, ...] = ()
    details: CmcResult | None = field(default=None, repr=False, compare=False)
    surfaces: tuple[BreechFace, BreechFace] | None = field(default=None, repr=False, compare=False)

    def registered_surfaces(self) -> tuple[np.ndarray, np.ndarray]:
        """The reference working surface and the questioned one registered onto its grid (metres, NaN unmeasured)."""
        details, surfaces = self._details()
        ref, qst = surfaces
        shift = (details.shift_px[0], details.shift_px[1])
        moved = transform(np.asarray(qst.surface, np.float32), self.rotation_deg, shift, ref.surface.shape)
        return np.asarray(ref.surface, np.float64), moved.astype(np.float64)

    def cell_outlines(self) -> CellOutlines:
        """The cells as the figures and the browser view draw them (:class:`CellOutlines`)."""
        details, _ = self._details()
        forward, rules = details.forward, details.forward_rules
        high = self.method["decision"]["rule"] == "high" and details.high_cmc_passed
        congruent = rules.high.congruent(details.params.rotation_deg) if high else rules.original.congruent
        i = int(np.argmax(rules.high.congruent_at.sum(axis=1))) if rules.high.congruent_at.size else 0
        dx = np.nan_to_num(forward.dx[i] - np.nanmedian(forward.dx[i][congruent])) if congruent.any() else np.zeros(len(congruent))
        dy = np.nan_to_num(forward.dy[i] - np.nanmedian(forward.dy[i][congruent])) if congruent.any() else np.zeros(len(congruent))
        y0, x0, y1, x1 = (forward.cell_box[:, k].astype(float) for k in range(4))
        reference = np.stack([x0, y0, x1, y1], axis=1)
        questioned = reference + np.stack([dx, dy, dx, dy], axis=1)
        return CellOutlines(reference, questioned, np.asarray(congruent, bool), "High CMC" if high else "original")

    def _details(self) -> tuple[CmcResult, tuple[BreechFace, BreechFace]]:
        if self.details is None or self.surfaces is None:
            raise ValueError("the comparison was made without its details; draw it where it was computed")
        return self.details, self.surfaces

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``ballistics compare --json``."""
        return {
            "reference": self.reference,
            "questioned": self.questioned,
            "cmc": self.cmc,
            "cmc_original": self.cmc_original,
            "cmc_high": self.cmc_high,
            "rule": self.method["decision"]["rule"],
            "cmc_forward": self.cmc_forward,
            "cmc_backward": self.cmc_backward,
            "high_cmc_passed": self.high_cmc_passed,
            "cells_compared": self.cells_compared,
            "rotation_deg": round(self.rotation_deg, 3),
            "translation_um": [round(v, 2) for v in self.translation_um],
            "ccf": None if self.ccf is None else round(self.ccf, 4),
            "firing_pin": None if self.firing_pin is None else round(self.firing_pin, 4),
            "decision": self.decision,
            "method": self.method,
            "software": self.software,
            "elapsed_s": round(self.elapsed_s, 3),
            "warnings": list(self.warnings),
        }


def scan_identity(scan: Scan) -> dict[str, Any]:
    """What a comparison echoes of a scan: file, SHA-256, kind and pixel size (micrometres, x and y)."""
    return {
        "path": str(scan.source) if scan.source else None,
        "sha256": scan.sha256,
        "kind": scan.kind,
        "spacing_um": [round(scan.spacing_x * 1e6, 6), round(scan.spacing_y * 1e6, 6)],
    }


def require_two_scans(reference_id: dict[str, Any], questioned_id: dict[str, Any]) -> None:
    """Refuse a scan compared with itself (same SHA-256): it would read as a perfect identification."""
    if reference_id.get("sha256") and reference_id.get("sha256") == questioned_id.get("sha256"):
        raise UsageError(
            questioned_id.get("path"),
            f"the questioned scan is the reference itself (SHA-256 {reference_id['sha256']}): a comparison needs two cartridge cases",
        )


#: Said with every comparison that involves a photograph (docs/comparison.md, "2-D images").
IMAGE_WARNING = (
    "a 2-D image is compared: the CMC thresholds are validated on 3-D topography only, so the counts are "
    "reported without a conclusion (decision 'not validated')"
)


def compare(
    reference: Scan,
    questioned: Scan,
    *,
    preprocess: PreprocessParams = PreprocessParams(),
    cmc: CmcParams = CmcParams(),
    decision: DecisionParams = DecisionParams(),
    mode: Literal["auto", "raw", "preprocessed"] = "auto",
) -> Comparison:
    """Compare two scans: preprocess both (at once, on two threads), then :func:`compare_prepared`."""
    started = time.perf_counter()
    reference_id, questioned_id = scan_identity(reference), scan_identity(questioned)
    require_two_scans(reference_id, questioned_id)  # before the work of preparing them
    ref, qst = in_parallel([partial(prepare, reference, preprocess, mode), partial(prepare, questioned, preprocess, mode)])
    return compare_prepared(ref, qst, reference_id, questioned_id, cmc=cmc, decision=decision, started=started)


def compare_prepared(
    reference: BreechFace,
    questioned: BreechFace,
    reference_id: dict[str, Any],
    questioned_id: dict[str, Any],
    *,
    cmc: CmcParams = CmcParams(),
    decision: DecisionParams = DecisionParams(),
    started: float | None = None,
) -> Comparison:
    """Compare two prepared breech faces (as cached by the reference collection).

    Parameters
    ----------
    reference, questioned : BreechFace
        Working surfaces of the same spacing (see :func:`ballistics.preprocess.prepare`).
    reference_id, questioned_id : dict
        ``path`` and ``sha256`` of each scan, echoed in the result.
    cmc : CmcParams
        Cell grid, thresholds and search settings (:func:`ballistics.cmc.compare_surfaces`).
    decision : DecisionParams
        The deciding rule and its thresholds (cells).
    started : float, optional
        ``time.perf_counter()`` at the start, when preprocessing is to be timed too.

    Returns
    -------
    Comparison
        ``cmc`` (the deciding count, cells), ``cmc_original`` and ``cmc_high``, the decision, the
        registration (degrees, micrometres), and the method with every parameter.

    Raises
    ------
    IncomparableError
        Different working spacings, or no cell with enough measured points.
    """
    started = time.perf_counter() if started is None else started
    require_two_scans(reference_id, questioned_id)
    if not np.isclose(reference.spacing_m, questioned.spacing_m, rtol=1e-6):
        raise IncomparableError(
            questioned_id.get("path"),
            f"working spacing {questioned.spacing_m * 1e6:.4g} µm differs from the reference's {reference.spacing_m * 1e6:.4g} µm",
        )
    result = compare_surfaces(reference.surface, questioned.surface, reference.spacing_m, cmc)
    if result.forward.cell_index.shape[0] == 0:
        raise IncomparableError(reference_id.get("path"), "no cell of the breech face has enough measured points to compare")
    tol = cmc.rotation_deg
    forward_rules, backward_rules = result.forward_rules, result.backward_rules
    if decision.rule == "high" and result.high_cmc_passed:
        count = result.cmc_high
        forward_count, backward_count = forward_rules.high.count(tol), backward_rules.high.count(tol)
    else:
        count = result.cmc_high if decision.rule == "high" else result.cmc_original
        forward_count, backward_count = forward_rules.original.count, backward_rules.original.count
    fp = firing_pin_score(reference.firing_pin, questioned.firing_pin, result.rotation_deg)
    images = "image" in (reference.kind, questioned.kind)
    return Comparison(
        reference=reference_id,
        questioned=questioned_id,
        cmc=count,
        cmc_original=result.cmc_original,
        cmc_high=result.cmc_high,
        cmc_forward=forward_count,
        cmc_backward=backward_count,
        high_cmc_passed=result.high_cmc_passed,
        cells_compared=result.cells_compared,
        rotation_deg=result.rotation_deg,
        translation_um=(result.shift_px[0] * reference.spacing_m * 1e6, result.shift_px[1] * reference.spacing_m * 1e6),
        ccf=registered_correlation(reference.surface, questioned.surface, result.rotation_deg, result.shift_px),
        firing_pin=fp,
        decision="not validated" if images else decision.decide(count),
        warnings=(IMAGE_WARNING,) if images else (),
        method=method_description(reference.params, cmc, decision),
        software={"name": SOFTWARE_NAME, "version": __version__},
        elapsed_s=time.perf_counter() - started,
        details=result,
        surfaces=(reference, questioned),
    )


def registered_correlation(
    reference: np.ndarray, questioned: np.ndarray, rotation_deg: float, shift_px: tuple[float, float]
) -> float | None:
    """Pairwise-complete Pearson correlation of the reference and the registered questioned surface."""
    moved = transform(np.asarray(questioned, np.float32), rotation_deg, shift_px, reference.shape)
    return pearson_complete(reference, moved)
