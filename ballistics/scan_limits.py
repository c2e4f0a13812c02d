"""Bounds a scan file must satisfy before anything in it is decompressed or decoded.

A scan can be a decompression bomb: an x3p (a zip archive) whose ``main.xml`` inflates to
hundreds of megabytes, or whose mask is a PNG declaring more pixels than memory holds; an image
whose header declares 20,000 x 20,000 pixels compressed into a few kilobytes. Decoders allocate
what the file declares, so these checks read only what is declared (the zip's central directory,
an image's header) and refuse before a decoder runs:

* every member of an x3p is at most :data:`MAX_XML_BYTES` (``main.xml``) or
  :data:`MAX_MEMBER_BYTES` (anything else) when inflated, before x3pio reads it; once
  ``main.xml`` gives the grid, each binary member is at most what that grid needs
  (:func:`check_x3p_data`);
* an image (PNG, TIFF, JPEG, BMP, and an x3p's ``bindata/mask.png``) declares a size within
  ``MAX_SIDE_PX`` per side and ``MAX_POINTS`` points (:func:`declared_image_shape`), read by
  Pillow, which parses headers only until asked for pixels.

Python's :mod:`zipfile` stops inflating a member at its declared size (and then fails its CRC),
so a member cannot inflate beyond what its directory entry declares.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from typing import BinaryIO

from ballistics.errors import MalformedX3PError, TooLargeError, UnreadableImageError

#: Largest accepted ``main.xml`` inflated: x3p descriptions are a few kilobytes.
MAX_XML_BYTES = 4 * 1024 * 1024
#: Largest accepted other member before the grid is known: the point data of the largest
#: accepted surface (100,000,000 points as float64).
MAX_MEMBER_BYTES = 800_000_000
#: Bytes per grid point any binary member may use: x, y and z as float64.
MAX_BYTES_PER_POINT = 24
#: Room for a member that does not scale with the grid (checksums, vendor files, a small mask).
MEMBER_ALLOWANCE = 1024 * 1024


def check_x3p_members(path: str | os.PathLike[str]) -> None:
    """Refuse an x3p whose members declare more than :data:`MAX_XML_BYTES` / :data:`MAX_MEMBER_BYTES`."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise MalformedX3PError(path, f"not a readable zip archive: {exc}") from None
    for member in members:
        limit = MAX_XML_BYTES if member.filename.lower() == "main.xml" else MAX_MEMBER_BYTES
        if member.file_size > limit:
            raise TooLargeError(
                path, f"x3p member {member.filename[:80]!r} declares {member.file_size:,} bytes, over the limit of {limit:,}"
            )


def check_x3p_data(path: str | os.PathLike[str], shape: tuple[int, ...], layers: int) -> None:
    """Each member at most what a grid of ``shape`` with ``layers`` layers can need."""
    points = 1
    for side in shape:
        points *= side
    limit = points * MAX_BYTES_PER_POINT * max(layers, 1) + MEMBER_ALLOWANCE
    with zipfile.ZipFile(path) as archive:
        for member in archive.infolist():
            if member.filename.lower() != "main.xml" and member.file_size > limit:
                raise TooLargeError(
                    path, f"x3p member {member.filename[:80]!r} declares {member.file_size:,} bytes; a {shape} grid needs at most {limit:,}"
                )


def read_member(archive: zipfile.ZipFile, name: str, limit: int, where: str | os.PathLike[str]) -> bytes:
    """A member's bytes, refused before inflating when it declares more than ``limit``."""
    info = archive.getinfo(name)
    if info.file_size > limit:
        raise TooLargeError(where, f"x3p member {name[:80]!r} declares {info.file_size:,} bytes, over the limit of {limit:,}")
    return archive.read(info)


def declared_image_shape(source: BinaryIO | str | os.PathLike[str], where: str | os.PathLike[str], kind: str) -> tuple[int, int]:
    """(rows, columns) an image declares in its header, without decoding its pixels."""
    from PIL import Image  # Pillow ships with scikit-image

    try:
        with warnings.catch_warnings():  # the size is checked against this project's own limits
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                width, height = image.size
    except Image.DecompressionBombError as exc:
        raise TooLargeError(where, f"image declares too many pixels: {exc}") from None
    except (OSError, ValueError, SyntaxError) as exc:  # Pillow's errors for a header it cannot read
        raise UnreadableImageError(
            where, f"cannot decode {kind.upper()} image header: {str(exc).replace(str(where), 'the file')}"
        ) from None
    return height, width
