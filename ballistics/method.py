"""The method: every parameter of every stage, with the published defaults, and its name.

One frozen dataclass per stage (:class:`PreprocessParams`, :class:`CmcParams`,
:class:`DecisionParams`, :class:`SignatureParams`), echoed whole in every comparison and match
record (:func:`method_description`), so that a record reproduces its comparison. Plain Python,
no numerics: the command line reads the defaults from here at start-up without loading NumPy.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Literal

from ballistics.errors import PreprocessError

Mode = Literal["auto", "raw", "preprocessed"]
#: ``not validated``: the thresholds are validated on 3-D topography only, so a comparison that
#: involves a 2-D image reports its counts without a conclusion.
Decision = Literal["identification", "inconclusive", "elimination", "not validated"]
#: Bumped whenever the computation changes, so that cached signatures (and the cached prepared
#: surfaces whose primer centre they are sampled around) are recomputed. 2: the primer circle of
#: a processed scan must enclose the breech face (ballistics.primer.fit_circle).
SIGNATURE_VERSION = 2


@dataclass(frozen=True)
class PreprocessParams:
    """Every number of the pipeline, echoed in results (:meth:`to_dict`).

    Defaults follow cmcR's Fadul run where cmcR has the step; the others were set on the raw
    Fadul scans and the NBIDE photographs (``docs/preprocessing.md`` has a table with the
    reasons). Lengths are in micrometres (``_um``) whatever the scan's pixel size; fractions of
    the primer or crater radius are dimensionless.
    """

    # --- output and band-pass ---
    #: Pixel spacing of the working surface, um (cmcR downsamples 3.125 um scans by 2).
    working_spacing_um: float = 6.25
    #: Gaussian band-pass wavelengths (short, long), um; sigma = wavelength / (2 pi). cmcR's
    #: 16-500 um keeps the breech-face marks and removes the primer's dome and waviness.
    bandpass_um: tuple[float, float] = (16.0, 500.0)
    #: A Gaussian wider than this many pixels runs on a grid coarsened to sigma / this per step
    #: (dimensionless): the low-pass is smooth over such a step, so the result changes by a
    #: fraction of a percent of the form it removes, at a small part of the cost.
    blur_coarse_sigmas: float = 4.0

    # --- form removal ---
    #: Robust (median, quantile 0.5) form removal: a plane, or a second-order surface.
    trend: Literal["plane", "quadratic"] = "plane"
    #: Points of the regular subgrid the robust trend is fitted to (count). At ~16,000 the
    #: firing-pin zone found on the raw Fadul 2-1 shrinks visibly; 40,000 is stable.
    trend_points: int = 40_000
    #: Most reweighting passes of the robust trend (count); ~20 suffice with the floor below.
    trend_passes: int = 30
    #: The passes stop when the fitted surface moves by less than this fraction of the median
    #: absolute residual in one pass (dimensionless).
    trend_tolerance: float = 1e-3
    #: Residuals below this fraction of the median absolute residual weigh as much as it does
    #: (dimensionless): a Huber loss that is absolute deviation beyond 5 % of the typical
    #: residual, within 0.01 um of the exact least-absolute-deviations plane on the raw Fadul
    #: scans, converging in ~20 passes instead of hundreds.
    trend_floor: float = 0.05

    # --- primer circle ---
    #: Blur of a photograph before Otsu's threshold separates the bright breech-face contact
    #: disc, um: calms the breech-face texture so the disc comes out as one piece.
    face_blur_um: float = 40.0
    #: RANSAC inlier tolerance of the primer circle, um (at least 2 px): the edge of a masked
    #: scan is ragged by a few micrometres.
    primer_tolerance_um: float = 6.0
    #: Smallest primer radius accepted, um: a 9 mm primer's breech-face area is over 1.5 mm
    #: in radius, so a smaller circle is noise or a crater, not the primer.
    primer_min_radius_um: float = 300.0
    #: Scans showing the case head around the primer: the primer's edge is the seam between the
    #: primer and its pocket, judged across a window of this half-width, um (the seam of a 9 mm
    #: case is 50-200 um wide; the rim's rounded edge must lie 3 half-widths beyond it).
    seam_width_um: float = 100.0
    #: A seam is a groove at least this deep below both sides, or a step at least this high, um:
    #: breech-face marks stay within a few micrometres, primer seams are tens deep.
    seam_depth_um: float = 10.0
    #: A seam is found at this fraction of the angles around the primer at least (dimensionless):
    #: the headstamp's letters and the breech-face marks do not run around it.
    seam_coverage: float = 0.75
    #: A seam lies at least this far from the primer's centre, um: the smallest boxer primers are
    #: 4.45 mm across, while a crater's unmeasured wall and the firing-pin aperture's edge are rings
    #: too, within about 1.2 mm of the centre (on the raw Fadul scans the aperture's edge is a step
    #: found at 0.69-0.95 of the angles, 1.06-1.19 mm out).
    seam_min_radius_um: float = 1500.0
    #: Largest primer radius, um (topographies): boxer primers are 4.45-5.33 mm across, shotgun
    #: primers about 6.2 mm, while a 9 mm case head is 9.96 mm; a larger circle with no seam inside
    #: is a case head whose primer could not be found, and the scan is refused.
    primer_max_radius_um: float = 3500.0
    #: Width removed inside the primer boundary, um (cmcR: exterior offset -30 px at 3.125 um).
    exterior_offset_um: float = 93.75
    #: Margin beyond the disturbed zone around the firing pin (crater plus aperture flow-back).
    firing_pin_margin_um: float = 150.0
    #: Levelled heights further than this from the breech-face level belong to the firing-pin
    #: zone (crater or flow-back), um; breech-face marks stay within a few micrometres.
    firing_pin_depth_um: float = 8.0
    #: Smallest firing-pin crater radius, um (topographies and photographs): 9 mm firing pins
    #: leave craters of 0.4-0.8 mm radius, so a smaller dark or deep piece is a speck.
    crater_min_radius_um: float = 100.0
    #: Topographies: the crater's centre lies within this fraction of the primer radius from
    #: the primer's centre (dimensionless; the inner half of the primer).
    crater_max_offset: float = 0.5
    #: The crater's radius (of a disc of its measured area) is at most this fraction of the primer radius
    #: (dimensionless; 9 mm pins leave 0.2-0.4): a larger "crater" means the circle found is not
    #: the primer's edge (the primer sits below a case head whose rim was taken for it), and the
    #: scan is refused rather than compared on the wrong surface.
    crater_max_radius: float = 0.6
    #: Topographies: the zone reaches at most this many crater radii from the crater's centre,
    #: angle by angle (dimensionless): primer metal pushed into the firing-pin aperture ends at
    #: the aperture (about 1.5 crater radii on the Fadul Rugers); anything connected beyond it
    #: is breech face standing out of the plane.
    flowback_reach: float = 1.6
    #: The firing pin strikes near the primer's centre: on photographs, a firing-pin zone
    #: centred further than this fraction of the primer radius from it is a failed fit
    #: (dimensionless; the NBIDE pins sit at 0.22 of the contact disc's radius).
    firing_pin_max_offset: float = 0.3
    #: Photographs: smoothing before the aperture rings are traced, um: enough to calm the
    #: breech-face texture, little enough to keep a 30-70 um wide dark ring.
    aperture_smoothing_um: float = 8.0
    #: Photographs: RANSAC inlier tolerance of the aperture circle through the per-angle
    #: outline points, um (at least 2 px): the dark ring is 30-70 um wide.
    aperture_tolerance_um: float = 15.0
    #: Photographs: an aperture zone reaches at most this fraction of the primer radius
    #: (dimensionless): beyond it too little breech face would be left for a comparison to mean
    #: anything, so a larger fit is a failed fit (the NBIDE Berettas' rings end at 0.66).
    aperture_max_radius: float = 0.8

    # --- outliers and size ---
    #: Robust z-score of the band-passed surface beyond which a point is an outlier
    #: (dimensionless; aperture shear, drag marks, dust, measurement spikes).
    outlier_z: float = 6.0
    #: Outliers are dilated by this radius before removal, um, taking their shoulders too.
    outlier_dilation_um: float = 20.0
    #: Fewest valid points the working surface must keep (count at working spacing): below
    #: ~2000 an 8 x 8 cell grid has too few cells with enough data to count congruent ones.
    min_valid_points: int = 2000

    # --- recognising processed scans ---
    #: Grid on which the long-wavelength form of a topography is judged, um.
    form_grid_um: float = 50.0
    #: A topography is taken as processed when the low-pass at the band-pass's long cut-off keeps
    #: less than this fraction of its standard deviation (dimensionless): under a quarter on the
    #: processed Fadul, Weller and TopMatch sets, nearly all of it on raw scans.
    form_fraction: float = 0.5

    def __post_init__(self) -> None:
        low, high = self.bandpass_um
        checks = {
            "working_spacing_um must be positive": self.working_spacing_um > 0,
            "bandpass_um must be (short, long) with 0 <= short < long": 0 <= low < high,
            "trend must be 'plane' or 'quadratic'": self.trend in ("plane", "quadratic"),
            "offsets and margins must be non-negative": min(self.exterior_offset_um, self.firing_pin_margin_um, self.outlier_dilation_um)
            >= 0,
            "lengths, tolerances and thresholds must be positive": min(
                self.firing_pin_depth_um,
                self.outlier_z,
                self.face_blur_um,
                self.primer_tolerance_um,
                self.primer_min_radius_um,
                self.crater_min_radius_um,
                self.aperture_smoothing_um,
                self.aperture_tolerance_um,
                self.form_grid_um,
                self.blur_coarse_sigmas,
                self.seam_width_um,
                self.seam_depth_um,
                self.seam_min_radius_um,
                self.primer_max_radius_um,
                self.trend_tolerance,
                self.trend_floor,
            )
            > 0,
            "fractions of a radius must be in (0, 1]": all(
                0 < f <= 1
                for f in (
                    self.firing_pin_max_offset,
                    self.crater_max_offset,
                    self.crater_max_radius,
                    self.aperture_max_radius,
                    self.form_fraction,
                    self.seam_coverage,
                )
            ),
            "flowback_reach must be at least 1 crater radius": self.flowback_reach >= 1,
            "counts must be positive": min(self.min_valid_points, self.trend_points, self.trend_passes) > 0,
        }
        for reason, ok in checks.items():
            if not ok:
                raise PreprocessError(None, f"invalid preprocessing parameters: {reason}")

    def to_dict(self) -> dict[str, object]:
        """Every field by name, JSON-ready (tuples as lists): what a result's method echoes."""
        out = asdict(self)
        out["bandpass_um"] = list(self.bandpass_um)
        return out


@dataclass(frozen=True)
class CmcParams:
    """Every knob of the comparison; defaults are cmcR's / Song (2018)'s published ones."""

    cells: tuple[int, int] = (8, 8)
    region_factor: float = 3.0
    max_missing: float = 0.85
    translation_um: float = 125.0  # Tx = Ty = 20 px at 6.25 um
    rotation_deg: float = 6.0
    ccf_threshold: float = 0.5
    tau: int = 1
    angle_step_deg: float = 3.0
    coarse_block: int = 6  # block-averaging factor of the coarse global registration
    coarse_min_overlap: float = 0.5  # of the smaller valid area
    coarse_max_shift_um: float = 1000.0
    candidates: int = 3
    candidate_separation_deg: float = 15.0
    window_deg: float = 6.0  # cell-level search covers candidate +- window
    full_circle: bool = True  # False: cmcR's fixed search, -fixed_window..+fixed_window degrees
    fixed_window_deg: float = 30.0

    def to_dict(self) -> dict[str, object]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class DecisionParams:
    """Which CMC count decides, and its thresholds for the three conclusions.

    Identification at CMC >= 6 is Song's published criterion, defined for the original rule,
    which is the default here. The High CMC rule (Tong 2015) is computed and reported too but
    does not decide by default: pooling congruent cells over every angle within the rotation
    threshold, in both directions, lets different-source pairs reach counts of 9-17 on Fadul
    (cmcR reports up to 10), above the identification threshold; the original rule keeps them at
    0-3 while same-source pairs stay at 11 or more (docs/comparison.md has the figures).
    Below identification, a count at or under ``elimination_cmc`` is what different-source pairs
    produce on the validation sets, and the counts between are left to the examiner as
    inconclusive.
    """

    identification_cmc: int = 6
    elimination_cmc: int = 2
    rule: Literal["original", "high"] = "original"

    def decide(self, cmc: int) -> Decision:
        if cmc >= self.identification_cmc:
            return "identification"
        if cmc <= self.elimination_cmc:
            return "elimination"
        return "inconclusive"


@dataclass(frozen=True)
class SignatureParams:
    """How the polar signature is sampled (chosen on Weller and Fadul, docs/search.md)."""

    sigma_um: float = 25.0
    radii_um: tuple[float, float] = (250.0, 1750.0)
    rings: int = 32
    angles: int = 256
    frequencies: int = 64

    def key(self, preprocess: dict[str, object]) -> str:
        """Cache key: this signature's version and parameters plus the preprocessing's."""
        text = json.dumps({"version": SIGNATURE_VERSION, "signature": asdict(self), "preprocess": preprocess}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


#: How the method names the rule that decides (``DecisionParams.rule``).
RULE_NAMES = {
    "original": "original rule (Song 2013) deciding",
    "high": "High CMC rule (Tong 2015) deciding, original rule where it fails",
}


def method_name(cmc: CmcParams, decision: DecisionParams) -> str:
    """The method in words: which rule decides and which rotations are searched.

    E.g. ``"congruent-matching-cells, original rule (Song 2013) deciding, full circle"``.
    """
    search = "full circle" if cmc.full_circle else f"{-cmc.fixed_window_deg:g}..{cmc.fixed_window_deg:g} degrees"
    return f"congruent-matching-cells, {RULE_NAMES[decision.rule]}, {search}"


def method_description(preprocess: PreprocessParams, cmc: CmcParams, decision: DecisionParams) -> dict[str, object]:
    """Name and every parameter, as echoed in results and match records."""
    return {
        "name": method_name(cmc, decision),
        "preprocess": preprocess.to_dict(),
        "cmc": cmc.to_dict(),
        "decision": asdict(decision),
    }
