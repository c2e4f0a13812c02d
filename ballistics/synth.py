"""Simulated firearms and fired cartridge cases with known ground truth.

Real reference sets are small (Fadul: 10 slides, Weller: 11), so the comparison, the search
prefilter and the firing-pin score are tested and benchmarked on cases made here, where the truth
is known exactly: which firearm fired each case, how the case was turned and shifted under the
microscope, which firearms share subclass marks.

The model, in the frame of the firearm (all lengths in pixels of :data:`PIXEL_M`):

- the breech face of each slide carries machining marks, either *striated* (parallel milling
  lines) or *arched* (arcs of a fly-cutter), plus granular texture and pits, with most energy at
  wavelengths of 16-500 um. Slides made one after another (a *family*) share the coarse part of
  the tool pattern (subclass marks) but each has its own fine marks;
- the firing pin leaves a crater near the primer centre whose outline is a class characteristic
  (hemispherical, elliptical or rectangular), with the pin's own texture inside;
- each shot transfers the marks unevenly (weak sectors, weaker towards the primer edge), over the
  primer's own roughness, with a dome, a primer gap and a raised or lowered case head around it;
- the case is then placed under the microscope at an arbitrary angle and offset, tilted, measured
  with noise, and loses points where a confocal microscope does: steep walls, specks, patches.

A second instrument model (:class:`WholeHead`, :func:`fire_whole_head`) scans the whole case head
at a coarser spacing (9.5 um), as several commercial 3D instruments export it: the primer, a
measured groove around it (the primer pocket's seam), the head surface with a headstamp out to
the rim, and a firing-pin crater measured down to its bottom. The breech-face marks and the
firing pin are the firearm's own, the same as in the confocal model fired with the same
generation of marks (:data:`Marks`), so scans from the two instruments compare with each other.
Whole-head scans use generation 2, whose individual marks lie at wavelengths a 9.5 um
instrument still resolves; the committed confocal sample set keeps generation 1.

Everything is drawn from ``numpy.random.Generator`` streams keyed by (seed, firearm, shot, part),
so the same seed gives the same cases, and byte-identical files.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import x3pio

from ballistics.characteristics import MEASURED_SHAPES, FiringPinShape
from ballistics.files import write_atomic
from ballistics.scan import Scan

#: Pixel spacing of the simulated scans, metres: the working resolution of the comparison.
PIXEL_M = 6.25e-6
#: Height increment of the stored x3p files (int16): fine against toolmarks of 0.5-3 um, coarse
#: enough that the committed sample set stays small.
Z_STEP_M = 20e-9
#: Pixel size of the rendered images: a comparison-microscope camera sees half the detail of the
#: confocal scan, and the committed sample set stays small.
IMAGE_PIXEL_M = 2 * PIXEL_M
TRUTH_COLUMNS = ("file", "firearm", "family", "firing_pin_shape", "rotation_deg", "shift_x_um", "shift_y_um")

Lay = Literal["striated", "arched"]
#: Generation of the breech-face marks, written into each file as the instrument's version.
#: 1 (:func:`fire`'s default: the committed sample set): the firearm's individual marks are a
#: profile along the lay at 20-150 um and a texture at 16-200 um, most of whose variance lies
#: below 40 um; a 9.5 um instrument loses half of it (area-averaging a prepared surface to 9.5 um
#: and back keeps 0.53 of its variance, against 0.88-0.92 on the real Fadul and Weller knowns),
#: so on whole-head scans the subclass marks shared by consecutively made slides decide.
#: 2 (:func:`fire_whole_head`'s default): the same draws at 50-400 and 40-400 um (keeps 0.67;
#: docs/sample-data.md).
Marks = Literal[1, 2]
#: Wavelength bands (short, long), micrometres, of a firearm's individual marks by generation:
#: the profile along the lay, then the isotropic texture.
INDIVIDUAL_BANDS_UM: dict[int, tuple[tuple[float, float], tuple[float, float]]] = {1: ((20, 150), (16, 200)), 2: ((50, 400), (40, 400))}
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class CaseGeometry:
    """Dimensions of a 9 mm Luger case head as scanned, in micrometres."""

    primer_radius_um: float = 2200.0
    primer_gap_um: float = 50.0
    head_ring_um: float = 300.0
    max_shift_um: float = 50.0

    def radii_px(self) -> tuple[float, float, float]:
        """Primer radius, inner and outer radius of the visible case head, in pixels."""
        px = PIXEL_M * 1e6
        primer = self.primer_radius_um / px
        inner = primer + self.primer_gap_um / px
        return primer, inner, inner + self.head_ring_um / px

    def grid_px(self) -> int:
        """Side of the square scan: the whole visible case head wherever the shift puts it."""
        outer = self.radii_px()[2] + self.max_shift_um / (PIXEL_M * 1e6)
        return 2 * math.ceil(outer + 4)


GEOMETRY = CaseGeometry()


@dataclass(frozen=True)
class WholeHead:
    """A scan of the whole case head around the primer, lengths in micrometres.

    The field of view holds the primer, the seam between the primer and its pocket (a groove
    ``groove_width_um`` wide, its bottom ``groove_depth_um`` below the lower of its two sides), the head
    surface ``head_offset_um`` above or below the primer with lathe marks and an engraved
    headstamp ``headstamp_depth_um`` deep, and the rounded rim edge at ``head_radius_um`` (9 mm
    Luger: 9.96 mm rim diameter). The instrument measures walls up to ``slope_limit`` (rise over
    run; a limit drawn per scan from ``slope_limit``) steep, so the firing-pin crater is measured
    down to its bottom.
    """

    spacing_um: float = 9.5
    head_radius_um: float = 4950.0
    groove_width_um: float = 140.0
    groove_depth_um: tuple[float, float] = (30.0, 80.0)
    head_offset_um: tuple[float, float] = (8.0, 40.0)
    headstamp_depth_um: tuple[float, float] = (15.0, 30.0)
    slope_limit: tuple[float, float] = (1.2, 1.6)

    def model_grid_px(self, geometry: CaseGeometry = GEOMETRY) -> int:
        """Side of the square firearm-frame grid (pixels of :data:`PIXEL_M`) holding the head wherever the shift puts it."""
        return 2 * math.ceil((self.head_radius_um + geometry.max_shift_um) / (PIXEL_M * 1e6) + 4)

    def scan_grid_px(self, geometry: CaseGeometry = GEOMETRY) -> int:
        """Side of the square scan, pixels of ``spacing_um``."""
        return 2 * math.ceil((self.head_radius_um + geometry.max_shift_um) / self.spacing_um + 4)


WHOLE_HEAD = WholeHead()
#: Headstamp engraved on the simulated whole-head cases, one word at 12, 3, 6 and 9 o'clock.
HEADSTAMP = ("SYN", "9mm", "LUGER", "26")


@dataclass(frozen=True)
class Firearm:
    """One simulated pistol. ``seed`` and ``family_seed`` key its random streams."""

    id: str
    index: int
    family: str
    family_seed: int
    seed: int
    lay: Lay
    firing_pin_shape: FiringPinShape


@dataclass(frozen=True, eq=False)
class SimulatedCase:
    """A fired case as scanned, and the truth about it.

    ``rotation_deg`` turns the firearm frame into the scan counter-clockwise in the x3p
    coordinates (x along columns, y along rows); ``shift_um`` is where the firearm-frame centre
    lies relative to the centre of the scan grid. :func:`to_firearm_frame` undoes both.
    """

    firearm: Firearm
    shot: int
    scan: Scan
    rotation_deg: float
    shift_um: tuple[float, float]

    @property
    def stem(self) -> str:
        return f"{self.firearm.id}-{self.shot:02d}"


def generate_firearms(n: int, seed: int) -> list[Firearm]:
    """``n`` firearms in families of consecutively made slides (the first family has two or more).

    A family shares the make and model, so it shares the lay of the machining and the firing-pin
    shape; the shapes of successive families run through all three before repeating.
    """
    if n < 1:
        raise ValueError("at least one firearm is needed")
    rng = _rng(seed, 0, 0, "firearms")
    shapes = [MEASURED_SHAPES[i] for i in rng.permutation(len(MEASURED_SHAPES))]
    firearms: list[Firearm] = []
    family = 0
    while len(firearms) < n:
        # the first family has two or more members, and leaves room for a second family
        size = min(int(rng.integers(2, 4)), max(n - 1, 2)) if family == 0 else int(rng.integers(1, 4))
        lay: Lay = "striated" if rng.random() < 0.5 else "arched"
        family_seed = int(rng.integers(2**62))
        for _ in range(min(size, n - len(firearms))):
            index = len(firearms)
            firearms.append(
                Firearm(
                    id=f"F{index + 1:02d}",
                    index=index,
                    family=_family_name(family),
                    family_seed=family_seed,
                    seed=int(rng.integers(2**62)),
                    lay=lay,
                    firing_pin_shape=shapes[family % len(shapes)],
                )
            )
        family += 1
    return firearms


def fire(firearm: Firearm, shot_index: int, seed: int, geometry: CaseGeometry = GEOMETRY, marks: Marks = 1) -> SimulatedCase:
    """Fire one case and scan it: the marks of ``firearm`` (generation ``marks``, :data:`Marks`) with this shot's variation and pose."""
    rng = _rng(seed, firearm.seed, shot_index, "shot")
    size = geometry.grid_px()
    primer_r, inner_r, outer_r = geometry.radii_px()
    x, y = _centred_grid(size)
    r = np.hypot(x, y)

    case = _transferred_marks(firearm, rng, size, primer_r, x, y, r, marks)
    case += _firing_pin(firearm, size) * np.float32(rng.normal(1.0, 0.04))
    case += _dome_and_head(rng, r, primer_r, inner_r)
    case[(r > primer_r) & (r < inner_r)] = np.nan  # the primer gap is too deep to measure
    case[r > outer_r] = np.nan

    rotation_deg = round(float(rng.uniform(0.0, 360.0)), 3)
    shift_um = (round(float(rng.uniform(-1, 1) * geometry.max_shift_um), 1), round(float(rng.uniform(-1, 1) * geometry.max_shift_um), 1))
    scan = _place(case, rotation_deg, shift_um)
    scan += _tilt_and_noise(rng, x, y)
    scan[_dropouts(rng, scan)] = np.nan
    heights = np.rint(scan.astype(np.float64) * 1e-6 / Z_STEP_M) * Z_STEP_M  # as stored in the file
    metadata = {
        "date": _file_date(seed, firearm.index, shot_index).isoformat(),
        "creator": "ballistics synth",
        "instrument": f"ballistics synth {marks}",
        "comment": f"simulated case {firearm.id} shot {shot_index} (family {firearm.family}, {firearm.firing_pin_shape} firing pin, {firearm.lay} breech face), seed {seed}",
    }
    return SimulatedCase(
        firearm=firearm,
        shot=shot_index,
        scan=Scan(heights=heights, spacing_x=PIXEL_M, spacing_y=PIXEL_M, metadata=metadata),
        rotation_deg=rotation_deg,
        shift_um=shift_um,
    )


def fire_whole_head(
    firearm: Firearm, shot_index: int, seed: int, head: WholeHead = WHOLE_HEAD, geometry: CaseGeometry = GEOMETRY, marks: Marks = 2
) -> SimulatedCase:
    """Fire one case and scan its whole head with the coarser instrument of ``head``.

    The breech-face marks (generation ``marks``) and the firing pin are the firearm's own (as in :func:`fire`); the
    shot's variation is drawn from its own stream, so whole-head shot k is another firing than
    confocal shot k. The truth's pose is in the same convention, the scan's pixels being
    ``head.spacing_um`` wide.
    """
    rng = _rng(seed, firearm.seed, shot_index, "whole-head shot")
    size = geometry.grid_px()
    primer_r = geometry.radii_px()[0]
    x, y = _centred_grid(size)
    surface = _transferred_marks(firearm, rng, size, primer_r, x, y, np.hypot(x, y), marks)
    surface += _firing_pin(firearm, size) * np.float32(rng.normal(1.0, 0.04))
    big = head.model_grid_px(geometry)
    case = np.zeros((big, big), np.float32)
    start = (big - size) // 2
    case[start : start + size, start : start + size] = surface
    bx, by = _centred_grid(big)
    case += _whole_head_relief(rng, bx, by, primer_r, head)

    spacing = head.spacing_um * 1e-6
    rotation_deg = round(float(rng.uniform(0.0, 360.0)), 3)
    shift_um = (round(float(rng.uniform(-1, 1) * geometry.max_shift_um), 1), round(float(rng.uniform(-1, 1) * geometry.max_shift_um), 1))
    out = head.scan_grid_px(geometry)
    scan = _place(case, rotation_deg, shift_um, spacing, out)
    sx, sy = _centred_grid(out)
    scan += _tilt_and_noise(rng, sx, sy, spacing)
    scan[_dropouts(rng, scan, spacing, head.slope_limit)] = np.nan
    heights = np.rint(scan.astype(np.float64) * 1e-6 / Z_STEP_M) * Z_STEP_M
    metadata = {
        "date": _file_date(seed, firearm.index, shot_index).isoformat(),
        "creator": "ballistics synth",
        "instrument": f"ballistics synth whole head {marks}",
        "comment": (
            f"simulated case {firearm.id} shot {shot_index} (family {firearm.family}, {firearm.firing_pin_shape} firing pin, "
            f"{firearm.lay} breech face), whole case head at {head.spacing_um:g} um, seed {seed}"
        ),
    }
    return SimulatedCase(
        firearm=firearm,
        shot=shot_index,
        scan=Scan(heights=heights, spacing_x=spacing, spacing_y=spacing, metadata=metadata),
        rotation_deg=rotation_deg,
        shift_um=shift_um,
    )


def to_firearm_frame(heights: np.ndarray, rotation_deg: float, shift_um: tuple[float, float], spacing_m: float = PIXEL_M) -> np.ndarray:
    """Turn and shift a scan back into the firearm frame, undoing the pose in the truth."""
    size_y, size_x = heights.shape
    centre = np.array([(size_x - 1) / 2, (size_y - 1) / 2])
    shift = np.asarray(shift_um) * 1e-6 / spacing_m
    c, s = math.cos(math.radians(rotation_deg)), math.sin(math.radians(rotation_deg))
    rotation = np.array([[c, -s], [s, c]])
    # firearm-frame pixel q shows at scan pixel centre + shift + R (q - centre)
    matrix = np.hstack([rotation, (centre + shift - rotation @ centre)[:, None]])
    return cv2.warpAffine(
        np.asarray(heights, np.float32), matrix, (size_x, size_y), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderValue=float("nan")
    ).astype(np.float64)


def render_image(
    heights: np.ndarray, spacing_m: float = PIXEL_M, azimuth_deg: float = 135.0, elevation_deg: float = 25.0, exaggeration: float = 12.0
) -> np.ndarray:
    """An 8-bit image of the surface lit obliquely, as a comparison microscope shows it.

    Light comes from ``azimuth_deg`` (counter-clockwise from +x) at ``elevation_deg`` above the
    surface; slopes are exaggerated so that micrometre toolmarks show. Unmeasured points are black.
    """
    valid = np.isfinite(heights)
    filled = np.where(valid, heights, np.nanmedian(heights)).astype(np.float32) * np.float32(exaggeration / spacing_m)
    gx = cv2.Sobel(filled, cv2.CV_32F, 1, 0, ksize=3, scale=1 / 8)
    gy = cv2.Sobel(filled, cv2.CV_32F, 0, 1, ksize=3, scale=1 / 8)
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    light = (math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el))
    shade = (-gx * light[0] - gy * light[1] + light[2]) / np.sqrt(gx * gx + gy * gy + 1)
    image = np.clip(0.1 + 0.9 * shade, 0, 1) * 255
    image[~valid] = 0
    return np.rint(image).astype(np.uint8)


def write_case(case: SimulatedCase, out_dir: Path) -> Path:
    """Write ``<stem>.x3p`` (int16 heights) and ``<stem>.png`` (half the scan's resolution: :data:`IMAGE_PIXEL_M` for
    the confocal model); return the x3p path."""
    scan = case.scan
    date = datetime.fromisoformat(scan.metadata["date"])
    metadata = x3pio.Metadata(
        date=date,
        creator=scan.metadata["creator"],
        instrument=x3pio.Instrument(
            manufacturer="ballistics", model="synth", serial="", version=scan.metadata["instrument"].rsplit(" ", 1)[1]
        ),
        probing_system=x3pio.ProbingSystem(x3pio.ProbingType.SOFTWARE, "ballistics synth"),
        comment=scan.metadata["comment"],
    )
    buffer = io.BytesIO()
    spacing = scan.spacing_x
    x3pio.write(buffer, scan.heights, x_scale=spacing, y_scale=spacing, z_type=x3pio.DataType.INT16, z_scale=Z_STEP_M, metadata=metadata)
    target = out_dir / f"{case.stem}.x3p"
    write_atomic(target, buffer.getvalue())
    image = cv2.resize(render_image(scan.heights, spacing), None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    ok, png = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise RuntimeError(f"cannot encode the image of {case.stem}")
    write_atomic(out_dir / f"{case.stem}.png", png.tobytes())
    return target


def write_sample_set(
    out_dir: str | Path,
    firearms: list[Firearm],
    shots: int,
    seed: int,
    progress: Progress | None = None,
    whole_head: WholeHead | None = None,
) -> list[Path]:
    """Fire ``shots`` cases (numbered from 1) from each firearm; write them and ``truth.csv``.

    With ``whole_head`` the cases are scanned whole-head by that instrument
    (:func:`fire_whole_head`, marks of generation 2) instead of by the confocal model (:func:`fire`,
    generation 1, as the committed sample set); see :data:`Marks`.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    rows: list[list[str]] = []
    total = len(firearms) * shots
    for firearm in firearms:
        for shot in range(1, shots + 1):
            case = fire(firearm, shot, seed) if whole_head is None else fire_whole_head(firearm, shot, seed, whole_head)
            paths.append(write_case(case, out_dir))
            rows.append(
                [
                    paths[-1].name,
                    firearm.id,
                    firearm.family,
                    firearm.firing_pin_shape,
                    f"{case.rotation_deg:.3f}",
                    f"{case.shift_um[0]:.1f}",
                    f"{case.shift_um[1]:.1f}",
                ]
            )
            if progress is not None:
                progress(len(paths), total)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(TRUTH_COLUMNS)
    writer.writerows(rows)
    write_atomic(out_dir / "truth.csv", text.getvalue().encode())
    return paths


# --- the model --------------------------------------------------------------------------------


def _rng(seed: int, key: int, index: int, part: str) -> np.random.Generator:
    return np.random.default_rng([seed & (2**63 - 1), key, index, sum(ord(ch) << (8 * i) for i, ch in enumerate(part))])


def _family_name(index: int) -> str:
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(ord("A") + rest) + name
    return name


def _file_date(seed: int, firearm_index: int, shot: int) -> datetime:
    base = datetime(2020, 1, 1, tzinfo=UTC) + timedelta(days=seed % 3650)
    return base + timedelta(days=firearm_index, minutes=10 * shot)


def _centred_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    axis = np.arange(size, dtype=np.float32) - np.float32((size - 1) / 2)
    return axis[None, :].repeat(size, 0), axis[:, None].repeat(size, 1)


def _sigma_px(wavelength_um: float) -> float:
    """Gaussian filter sigma for a cut-off wavelength, as cmcR's band-pass uses it."""
    return wavelength_um / (2 * math.pi) / (PIXEL_M * 1e6)


def _band_noise_1d(rng: np.random.Generator, length: int, short_um: float, long_um: float) -> np.ndarray:
    white = rng.standard_normal(length).astype(np.float32)[None, :]
    band = _blur(white, _sigma_px(short_um), 0) - _blur(white, _sigma_px(long_um), 0)
    band = band[0]
    return band / np.float32(band.std())


def _band_noise_2d(rng: np.random.Generator, size: int, short_um: float, long_um: float) -> np.ndarray:
    white = rng.standard_normal((size, size), dtype=np.float32)
    band = _blur(white, _sigma_px(short_um)) - _blur(white, _sigma_px(long_um))
    return band / np.float32(band.std())


def _blur(image: np.ndarray, sigma: float, sigma_y: float | None = None) -> np.ndarray:
    sy = sigma if sigma_y is None else sigma_y
    return cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sy if sy > 0 else 1e-6, borderType=cv2.BORDER_REFLECT)


def _profile_along(values: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Sample a 1-D profile (one value per pixel, centred) at the coordinates ``u``."""
    offset = (values.size - 1) / 2
    return np.interp(u.ravel() + offset, np.arange(values.size, dtype=np.float32), values).reshape(u.shape).astype(np.float32)


def _lay_coordinate(firearm: Firearm, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Distance across the machining marks: along a normal (striated) or from the cutter axis (arched)."""
    rng = _rng(firearm.family_seed, 0, 0, "lay")
    angle = rng.uniform(0, math.pi)
    if firearm.lay == "striated":
        along = -x * math.sin(angle) + y * math.cos(angle)
        wander = _profile_along(_band_noise_1d(rng, 4 * x.shape[0], 400, 3000), along) * np.float32(1.5)
        return x * math.cos(angle) + y * math.sin(angle) + wander
    distance = rng.uniform(500, 1200)
    return np.hypot(x - distance * math.cos(angle), y - distance * math.sin(angle)) - np.float32(distance)


@lru_cache(maxsize=32)
def _breech_face(firearm: Firearm, size: int, marks: Marks = 1) -> np.ndarray:
    """The breech-face marks of a firearm, micrometres, in its own frame (cached: shared by its shots).

    The individual profile and texture lie in the bands of :data:`INDIVIDUAL_BANDS_UM` for the
    generation ``marks``; the random draws are the same for both generations.
    """
    x, y = _centred_grid(size)
    u = _lay_coordinate(firearm, x, y)
    length = 4 * size
    family_rng = _rng(firearm.family_seed, 0, 0, "tool")
    own = _rng(firearm.seed, 0, 0, "marks")
    (profile_short, profile_long), (texture_short, texture_long) = INDIVIDUAL_BANDS_UM[marks]
    subclass = _profile_along(_band_noise_1d(family_rng, length, 120, 500), u)
    individual = _profile_along(_band_noise_1d(own, length, profile_short, profile_long), u)
    granular = _band_noise_2d(own, size, texture_short, texture_long)
    pits = np.zeros((size, size), np.float32)
    for sigma in (1.5, 2.5, 4.0):
        spots = np.zeros((size, size), np.float32)
        count = int(own.integers(25, 50))
        rows, cols = own.integers(0, size, count), own.integers(0, size, count)
        spots[rows, cols] = own.uniform(1.0, 3.0, count).astype(np.float32) * np.float32(2 * math.pi * sigma**2)
        pits -= _blur(spots, sigma)
    return (0.45 * subclass + 0.7 * individual + 0.45 * granular + pits).astype(np.float32)


@lru_cache(maxsize=32)
def _firing_pin(firearm: Firearm, size: int) -> np.ndarray:
    """The firing-pin crater, micrometres: outline by class, depth and tip texture by firearm."""
    rng = _rng(firearm.seed, 0, 0, "pin")
    x, y = _centred_grid(size)
    px = PIXEL_M * 1e6
    cx, cy = rng.normal(0, 80 / px, 2)
    angle = rng.uniform(0, math.pi)
    u = (x - cx) * math.cos(angle) + (y - cy) * math.sin(angle)
    v = -(x - cx) * math.sin(angle) + (y - cy) * math.cos(angle)
    depth = rng.uniform(60, 110)
    if firearm.firing_pin_shape == "hemispherical":
        radius = rng.uniform(480, 560) / px
        rho = np.hypot(u, v) / radius
        crater = np.sqrt(np.clip(1 - rho**2, 0, None))
    elif firearm.firing_pin_shape == "elliptical":
        a, b = rng.uniform(600, 680) / px, rng.uniform(360, 420) / px
        rho = np.hypot(u / a, v / b)
        crater = np.sqrt(np.clip(1 - rho**2, 0, None))
    else:
        a, b = rng.uniform(480, 540) / px, rng.uniform(280, 330) / px
        rho = (np.abs(u / a) ** 6 + np.abs(v / b) ** 6) ** (1 / 6)
        crater = np.clip((1 - rho) / 0.2, 0, 1)
        crater = crater * crater * (3 - 2 * crater) * (1 - 0.15 * rho**2)
    inside = (rho < 1).astype(np.float32)
    texture = _band_noise_2d(rng, size, 16, 120) * np.float32(0.5) * inside
    lip = np.float32(rng.uniform(2, 5)) * np.exp(-(((rho - 1.05) / 0.06) ** 2))
    return (_blur((-depth * crater).astype(np.float32), 1.0) + texture + lip).astype(np.float32)


def _transferred_marks(
    firearm: Firearm, rng: np.random.Generator, size: int, primer_r: float, x: np.ndarray, y: np.ndarray, r: np.ndarray, marks: Marks = 1
) -> np.ndarray:
    """What one shot leaves on the primer: breech-face marks weighted by uneven contact, plus primer roughness."""
    theta = np.arctan2(y, x)
    contact = 1 - 0.45 * (r / np.float32(primer_r)) ** 4
    for _ in range(int(rng.integers(1, 4))):
        centre, width, loss = rng.uniform(-math.pi, math.pi), rng.uniform(0.3, 1.0), rng.uniform(0.4, 0.8)
        gap = np.angle(np.exp(1j * (theta - centre))).astype(np.float32)
        contact -= np.float32(loss) * np.exp(-((gap / np.float32(width)) ** 2))
    contact = np.clip(contact, 0.15, 1.0)
    pin_free = _firing_pin(firearm, size) > -1.0  # the pin hole of the breech face leaves no marks
    roughness = _band_noise_2d(rng, size, 16, 300) * np.float32(0.6)
    left = _breech_face(firearm, size, marks) * contact * pin_free + roughness * (1.4 - contact)
    left[r > primer_r] = 0
    return left.astype(np.float32)


def _dome_and_head(rng: np.random.Generator, r: np.ndarray, primer_r: float, inner_r: float) -> np.ndarray:
    """Primer dome and rounded edge, and the case head beyond the gap, raised or lowered, with lathe marks."""
    rel = r / np.float32(primer_r)
    dome = np.float32(rng.uniform(-4, 8)) * np.clip(1 - rel**2, 0, None)
    edge = -np.float32(rng.uniform(5, 12)) * np.clip((rel - 0.95) / 0.05, 0, 1) ** 2
    head_level = np.float32(rng.choice([-1, 1]) * rng.uniform(8, 30))
    lathe = _profile_along(_band_noise_1d(rng, r.shape[0], 20, 200), r) * np.float32(0.3)
    return np.where(r < inner_r, dome + edge, head_level + lathe).astype(np.float32)


def _whole_head_relief(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, primer_r: float, head: WholeHead) -> np.ndarray:
    """Primer dome and rounded edge, the seam groove, the head surface with lathe marks and headstamp, the rim.

    Micrometres on the firearm-frame grid (pixels of :data:`PIXEL_M`), NaN beyond the rim.
    """
    px = PIXEL_M * 1e6
    r = np.hypot(x, y)
    rel = r / np.float32(primer_r)
    dome = np.float32(rng.uniform(-4, 8)) * np.clip(1 - rel**2, 0, None)
    edge_drop = np.float32(rng.uniform(5, 12))
    primer = dome - edge_drop * np.clip((rel - 0.95) / 0.05, 0, 1) ** 2
    head_level = np.float32(rng.choice([-1, 1]) * rng.uniform(*head.head_offset_um))
    groove_depth = np.float32(rng.uniform(*head.groove_depth_um))
    lathe = _profile_along(_band_noise_1d(rng, r.shape[0], 20, 200), r) * np.float32(0.3)
    # the seam: from the primer's edge down to the groove's bottom and up the pocket wall to the head
    t = np.clip((r - primer_r) / np.float32(head.groove_width_um / px), 0, 1)
    bottom = min(head_level, -edge_drop) - groove_depth  # below the primer's edge and the head
    seam = np.where(
        t < 0.5, -edge_drop + (bottom + edge_drop) * np.sin(np.pi * t), bottom + (head_level - bottom) * (1 - np.cos(np.pi * (t - 0.5)))
    )
    rim_r = head.head_radius_um / px
    rim = -np.float32(60.0) * np.clip((r - (rim_r - 150 / px)) / np.float32(150 / px), 0, 1) ** 2  # the rounded rim edge
    stamp = _headstamp(r.shape[0], 0.5 * (primer_r + head.groove_width_um / px + rim_r)) * np.float32(rng.uniform(*head.headstamp_depth_um))
    surface = np.where(r <= primer_r, primer, np.where(t < 1, seam, head_level + lathe + rim - stamp)).astype(np.float32)
    surface[r > rim_r] = np.nan
    return surface


@lru_cache(maxsize=4)
def _headstamp(size: int, radius_px: float) -> np.ndarray:
    """The engraved headstamp (0..1 depth profile): :data:`HEADSTAMP` at 12, 3, 6 and 9 o'clock, 0.6 mm letters."""
    canvas = np.zeros((size, size), np.uint8)
    centre = (size - 1) / 2
    height_px = 600 / (PIXEL_M * 1e6)
    scale = height_px / 22.0  # FONT_HERSHEY_SIMPLEX capitals are about 22 units high at scale 1
    thickness = max(1, round(70 / (PIXEL_M * 1e6)))
    for word, (dx, dy) in zip(HEADSTAMP, ((0, -1), (1, 0), (0, 1), (-1, 0)), strict=True):
        (width, height), _ = cv2.getTextSize(word, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        origin = (round(centre + dx * radius_px - width / 2), round(centre + dy * radius_px + height / 2))
        cv2.putText(canvas, word, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, 255, thickness, cv2.LINE_AA)
    return _blur(canvas.astype(np.float32) / np.float32(255.0), 1.5)


def _place(
    case: np.ndarray, rotation_deg: float, shift_um: tuple[float, float], spacing_m: float = PIXEL_M, size: int | None = None
) -> np.ndarray:
    """Put the case under the microscope: rotate and shift the firearm frame into the scan grid.

    The scan grid is ``size`` pixels square (the model's by default) at ``spacing_m``; a coarser
    spacing samples the model's :data:`PIXEL_M` grid after an area-averaging blur.
    """
    model_centre = (case.shape[0] - 1) / 2
    size = case.shape[0] if size is None else size
    centre = (size - 1) / 2
    scale = spacing_m / PIXEL_M
    if scale > 1:
        case = _blur(case, 0.5 * math.sqrt(scale * scale - 1))  # the instrument's pixels average the surface
    shift = np.asarray(shift_um) * 1e-6 / spacing_m
    c, s = math.cos(math.radians(rotation_deg)), math.sin(math.radians(rotation_deg))
    # R(-theta): scan pixel p comes from model centre + scale R(-theta)(p - centre - shift)
    inverse = np.array([[c, s], [-s, c]]) * scale
    offset = np.array([model_centre, model_centre]) - inverse @ (np.array([centre, centre]) + shift)
    matrix = np.hstack([inverse, offset[:, None]])
    return cv2.warpAffine(case, matrix, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderValue=float("nan"))


def _tilt_and_noise(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, spacing_m: float = PIXEL_M) -> np.ndarray:
    slope = rng.normal(0, 8e-4, 2) * spacing_m * 1e6  # micrometres per pixel
    noise = rng.standard_normal(x.shape, dtype=np.float32) * np.float32(0.03)
    return (np.float32(slope[0]) * x + np.float32(slope[1]) * y + noise).astype(np.float32)


def _dropouts(
    rng: np.random.Generator, surface: np.ndarray, spacing_m: float = PIXEL_M, slope_limit: tuple[float, float] = (0.35, 0.5)
) -> np.ndarray:
    """Points an instrument loses: steep walls, isolated specks and a few patches.

    Walls steeper than a limit drawn from ``slope_limit`` (rise over run; a confocal objective's
    0.35-0.5 by default) are lost.
    """
    gy, gx = np.gradient(np.nan_to_num(surface), spacing_m * 1e6)
    steep = np.hypot(gx, gy) > rng.uniform(*slope_limit)
    specks = rng.random(surface.shape, dtype=np.float32) < rng.uniform(0.001, 0.004)
    blobs = _blur(rng.standard_normal(surface.shape, dtype=np.float32), 6.0)
    patches = blobs > np.float32(blobs.std() * rng.uniform(3.0, 3.6))
    return steep | specks | patches
