"""The `Scan` type, and reading and writing scans.

A scan is a height field in metres on a regular grid (``heights[y, x]``, NaN where nothing was
measured) with its pixel spacing. 3-D topographies come from x3p files (ISO 25178-72) through
x3pio; 2-D photographs of a comparison microscope come through OpenCV, their grey level standing
in for height. The format is decided from the file's first bytes, never from its name, because
evidence files are renamed by people.

Every failure is a :class:`~ballistics.errors.ScanError` naming the file and the reason, so the CLI can print one
line and exit with code 3.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Literal
from xml.etree import ElementTree

import cv2
import numpy as np
import x3pio

from ballistics.errors import (
    BadSpacingError,
    ChecksumMismatchError,
    EmptySurfaceError,
    MalformedX3PError,
    NotAScanError,
    NotASurfaceError,
    TooLargeError,
    UnreadableImageError,
)
from ballistics.files import write_atomic
from ballistics.scan_limits import MAX_XML_BYTES, check_x3p_data, check_x3p_members, declared_image_shape, read_member

#: Largest accepted side of a scan, in pixels. A full-resolution confocal scan of a 9 mm
#: primer is about 2,500 px across; anything far beyond is a mistake or a denial of service.
MAX_SIDE_PX = 20_000
#: Largest accepted number of points (800 MB as float64).
MAX_POINTS = 100_000_000
#: An x3ptools mask has the surface's size; one may be resized to it, from at most this many pixels per point.
MASK_POINTS_PER_POINT = 4

ScanKind = Literal["topography", "image"]

# OpenCV's decoders write their own warnings straight to stderr; a damaged image must end in one
# ScanError line, so they are silenced.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

_ZIP_MAGIC = b"PK\x03\x04"
_IMAGE_MAGICS = {
    b"\x89PNG\r\n\x1a\n": "png",
    b"II*\x00": "tiff",
    b"MM\x00*": "tiff",
    b"\xff\xd8\xff": "jpeg",
    b"BM": "bmp",
}


@dataclass(frozen=True, eq=False)
class Scan:
    """A measured surface and where it came from.

    ``sha256`` is the hash of the source file's bytes (not of the array), because that is what a
    court record cites and what a partner lab can recompute from the file it received.
    """

    heights: np.ndarray
    spacing_x: float
    spacing_y: float
    kind: ScanKind = "topography"
    metadata: Mapping[str, str] = field(default_factory=dict)
    source: Path | None = None
    sha256: str | None = None
    format: str = "x3p"

    def __post_init__(self) -> None:
        where = self.source if self.source is not None else "<memory>"
        heights = np.asarray(self.heights, dtype=np.float64)
        if heights.ndim != 2:
            raise NotASurfaceError(where, f"heights must be a 2-D array, got {heights.ndim}-D")
        _check_size(where, heights.shape)
        for name, value in (("x", self.spacing_x), ("y", self.spacing_y)):
            if not (np.isfinite(value) and value > 0):
                raise BadSpacingError(where, f"pixel spacing along {name} must be a positive finite number, got {value!r}")
        if not np.isfinite(heights).any():
            raise EmptySurfaceError(where, "the surface has no measured point")
        heights.setflags(write=False)
        object.__setattr__(self, "heights", heights)
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    @property
    def shape(self) -> tuple[int, int]:
        return self.heights.shape

    @property
    def valid_fraction(self) -> float:
        return float(np.isfinite(self.heights).mean())

    @property
    def name(self) -> str:
        return self.source.name if self.source is not None else "<memory>"

    def with_heights(self, heights: np.ndarray, spacing_x: float | None = None, spacing_y: float | None = None) -> Scan:
        """The same scan (provenance kept) with new heights, as processing steps produce."""
        return Scan(
            heights=heights,
            spacing_x=self.spacing_x if spacing_x is None else spacing_x,
            spacing_y=self.spacing_y if spacing_y is None else spacing_y,
            kind=self.kind,
            metadata=self.metadata,
            source=self.source,
            sha256=self.sha256,
            format=self.format,
        )


def sha256_file(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file, read in blocks so a large scan never sits whole in memory twice."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sniff_format(path: Path) -> str:
    """``x3p``, ``png``, ``tiff``, ``jpeg`` or ``bmp`` from the file's first bytes."""
    try:
        with open(path, "rb") as stream:
            head = stream.read(8)
    except FileNotFoundError:
        raise NotAScanError(path, "no such file") from None
    except IsADirectoryError:
        raise NotAScanError(path, "is a directory, not a scan file") from None
    except OSError as exc:
        raise NotAScanError(path, f"cannot read: {exc.strerror or exc}") from None
    if head.startswith(_ZIP_MAGIC):
        return "x3p"
    for magic, name in _IMAGE_MAGICS.items():
        if head.startswith(magic):
            return name
    if not head:
        raise NotAScanError(path, "file is empty")
    raise NotAScanError(path, "not an x3p (zip) file nor a PNG, TIFF, JPEG or BMP image")


def load_scan(path: str | os.PathLike[str], *, pixel_um: float | None = None) -> Scan:
    """Read a scan, deciding the format from the content.

    ``pixel_um`` gives the pixel size of an image (micrometres); TIFF files may carry it in
    their resolution tags instead. It is refused for x3p files, whose spacing is in the file.
    """
    path = Path(path)
    kind = sniff_format(path)
    if kind == "x3p":
        if pixel_um is not None:
            raise BadSpacingError(path, "an x3p file carries its own spacing; --pixel-um applies to images only")
        return _load_x3p(path)
    return _load_image(path, kind, pixel_um)


def _check_size(where: str | os.PathLike[str], shape: tuple[int, ...]) -> None:
    if any(side > MAX_SIDE_PX for side in shape) or int(np.prod(shape)) > MAX_POINTS:
        raise TooLargeError(
            where,
            f"surface of {' x '.join(map(str, shape))} points exceeds the limit of {MAX_SIDE_PX} px per side and {MAX_POINTS:,} points",
        )


def _load_x3p(path: Path) -> Scan:
    if not zipfile.is_zipfile(path):
        raise MalformedX3PError(path, "not a readable zip archive")
    check_x3p_members(path)  # before x3pio inflates main.xml and the vendor files
    try:
        description = x3pio.info(path)
    except x3pio.X3pChecksumError as exc:
        raise ChecksumMismatchError(path, f"checksum mismatch: {exc}") from None
    except (x3pio.X3pError, zipfile.BadZipFile, KeyError, ElementTree.ParseError) as exc:
        raise MalformedX3PError(path, _x3p_reason(exc)) from None
    if description.feature_type != x3pio.FeatureType.SURFACE:
        raise NotASurfaceError(path, f"holds a {description.feature_type.name.lower().replace('_', ' ')}, not a surface")
    _check_size(path, description.shape)
    check_x3p_data(path, description.shape, description.layer_count)
    try:
        surface = x3pio.read(path, verify=True)
    except x3pio.X3pChecksumError as exc:
        raise ChecksumMismatchError(path, f"checksum mismatch: {exc}") from None
    except (x3pio.X3pError, zipfile.BadZipFile, KeyError, EOFError, ValueError) as exc:
        raise MalformedX3PError(path, _x3p_reason(exc)) from None
    if not isinstance(surface, x3pio.Surface) or not surface.is_regular_grid:
        raise NotASurfaceError(path, "holds an irregular grid; a regular surface is needed")
    heights = np.array(surface.layers[0].z, dtype=np.float64)
    mask = _x3ptools_mask(path, heights.shape)
    if mask is not None:
        heights[~mask] = np.nan
    return Scan(
        heights=heights,
        spacing_x=float(surface.header.x.increment),
        spacing_y=float(surface.header.y.increment),
        kind="topography",
        metadata=_metadata_dict(surface.metadata),
        source=path,
        sha256=sha256_file(path),
        format="x3p",
    )


def _x3p_reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if "main.xml" in text.lower() or isinstance(exc, (KeyError, ElementTree.ParseError)):
        return f"missing or malformed main.xml: {text}"
    return f"malformed x3p: {text}"


def _metadata_dict(metadata: x3pio.Metadata | None) -> dict[str, str]:
    if metadata is None:
        return {}
    out: dict[str, str] = {}
    if metadata.creator:
        out["creator"] = metadata.creator
    if metadata.date is not None:
        out["date"] = metadata.date.isoformat()
    instrument = metadata.instrument
    if instrument is not None:
        parts = [instrument.manufacturer, instrument.model, instrument.version]
        text = " ".join(p for p in parts if p and p != "not available")
        if text:
            out["instrument"] = text
    if metadata.comment:
        out["comment"] = metadata.comment
    return out


def _x3ptools_mask(path: Path, shape: tuple[int, int]) -> np.ndarray | None:
    """The keep-mask of an x3ptools / FiX3P annotation, or None when the file has none.

    x3ptools stores the mask as ``bindata/mask.png`` (one colour per pixel, the un-annotated
    background in the colour named by ``Mask/Background`` in main.xml). Annotations paint the
    regions an examiner marked for removal (firing pin, ejector mark, damage); ``x3p_delete``
    then removes them. We keep the background-coloured points and drop the painted ones.
    """
    with zipfile.ZipFile(path) as archive:
        names = {name.lower(): name for name in archive.namelist()}
        mask_name = names.get("bindata/mask.png")
        if mask_name is None:
            return None
        xml = read_member(archive, names["main.xml"], MAX_XML_BYTES, path) if "main.xml" in names else b""
        png = archive.read(mask_name)  # bounded by the grid (check_x3p_data)
    background = _mask_background(xml)
    try:
        mask_shape = declared_image_shape(io.BytesIO(png), path, "png")
    except UnreadableImageError:
        raise MalformedX3PError(path, "bindata/mask.png is not a readable PNG image") from None
    _check_size(path, mask_shape)
    if mask_shape[0] * mask_shape[1] > MASK_POINTS_PER_POINT * shape[0] * shape[1]:
        raise TooLargeError(
            path, f"bindata/mask.png declares {mask_shape[1]} x {mask_shape[0]} pixels for a {shape[1]} x {shape[0]} surface"
        )
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise MalformedX3PError(path, "bindata/mask.png is not a readable PNG image")
    # x3ptools writes the mask image with rows = y from the top, matching x3pio's z[y, x].
    if image.shape[:2] != shape:
        image = cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    b, g, r = (int(background[i : i + 2], 16) for i in (5, 3, 1))
    return np.all(image == np.array([b, g, r], dtype=np.uint8), axis=2)


def _mask_background(xml: bytes) -> str:
    match = re.search(rb"<Background>\s*(#[0-9a-fA-F]{6})", xml)
    return match.group(1).decode().lower() if match else "#cd7f32"


def _load_image(path: Path, kind: str, pixel_um: float | None) -> Scan:
    _check_size(path, declared_image_shape(path, path, kind))  # before the decoder allocates what the header declares
    data = np.fromfile(path, dtype=np.uint8)
    header = cv2.imdecode(data, cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION) if data.size else None
    if header is None:
        raise UnreadableImageError(path, f"cannot decode {kind.upper()} image data")
    image = header
    if image.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        image = cv2.cvtColor(image, code)
    if image.dtype not in (np.uint8, np.uint16):
        raise UnreadableImageError(path, f"unsupported sample type {image.dtype}; 8- or 16-bit images are read")
    _check_size(path, image.shape)
    if pixel_um is None and kind == "tiff":
        pixel_um = _tiff_pixel_um(path)
    if pixel_um is None:
        raise BadSpacingError(path, "pixel size unknown: give --pixel-um for a 2-D image")
    if not (np.isfinite(pixel_um) and pixel_um > 0):
        raise BadSpacingError(path, f"pixel size must be a positive finite number of micrometres, got {pixel_um!r}")
    full_scale = 65535.0 if image.dtype == np.uint16 else 255.0
    # Grey level stands in for height: scaled to [0, 1] x pixel size, so that filters written in
    # metres act on an image exactly as on a topography of the same pixel size.
    heights = image.astype(np.float64) / full_scale * pixel_um * 1e-6
    return Scan(
        heights=heights,
        spacing_x=pixel_um * 1e-6,
        spacing_y=pixel_um * 1e-6,
        kind="image",
        metadata={"bit_depth": str(8 * image.dtype.itemsize)},
        source=path,
        sha256=sha256_file(path),
        format=kind,
    )


def _tiff_pixel_um(path: Path) -> float | None:
    """Pixel size from the TIFF XResolution / ResolutionUnit tags, when present and meaningful."""
    from PIL import Image  # Pillow ships with scikit-image; only TIFF tags need it

    try:
        with Image.open(path) as image:
            tags = image.tag_v2  # type: ignore[attr-defined]
            resolution = tags.get(282)
            unit = tags.get(296, 2)
    except Exception:
        return None
    if not resolution:
        return None
    per_unit = float(resolution)
    if per_unit <= 0:
        return None
    um_per_unit = {2: 25_400.0, 3: 10_000.0}.get(int(unit))
    if um_per_unit is None:
        return None
    return um_per_unit / per_unit


def save_x3p(scan: Scan, path: str | os.PathLike[str]) -> Path:
    """Write a scan as ISO 25178-72, atomically: a reader never sees half a file."""
    path = Path(path)
    metadata = _x3p_metadata(scan)
    buffer = io.BytesIO()
    x3pio.write(buffer, scan.heights, x_scale=scan.spacing_x, y_scale=scan.spacing_y, metadata=metadata)
    write_atomic(path, buffer.getvalue())
    return path


def _x3p_metadata(scan: Scan) -> x3pio.Metadata:
    from ballistics import SOFTWARE_NAME, __version__

    date_text = scan.metadata.get("date")
    date = datetime.fromisoformat(date_text) if date_text else None
    comment = scan.metadata.get("comment", "")
    return x3pio.Metadata(
        date=date,
        creator=scan.metadata.get("creator", ""),
        instrument=x3pio.Instrument(
            manufacturer=SOFTWARE_NAME, model=scan.metadata.get("instrument", scan.kind), serial="not available", version=__version__
        ),
        comment=comment,
    )
