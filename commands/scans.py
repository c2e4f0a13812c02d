"""``info`` and ``convert``: what a scan holds, and x3p out of any scan the toolkit reads."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from commands.common import JsonOpt, PixelOpt, emit_json, note, print_rows

if TYPE_CHECKING:
    from ballistics.scan import Scan


def image_pixel_um(path: Path, pixel_um: float | None) -> float | None:
    """``--pixel-um`` applies to the images of a mixed list of files and is ignored for x3p files (they carry their spacing)."""
    from ballistics.scan import sniff_format

    return None if sniff_format(path) == "x3p" else pixel_um


def load_file(path: Path, pixel_um: float | None) -> Scan:
    """Load a scan file, with ``--pixel-um`` for images."""
    from ballistics.scan import load_scan

    return load_scan(path, pixel_um=image_pixel_um(path, pixel_um))


def scan_summary(scan: Scan) -> dict[str, Any]:
    import numpy as np

    finite = scan.heights[np.isfinite(scan.heights)]
    return {
        "path": str(scan.source) if scan.source else None,
        "format": scan.format,
        "kind": scan.kind,
        "shape": list(scan.shape),
        "spacing_um": [scan.spacing_x * 1e6, scan.spacing_y * 1e6],
        "valid_fraction": round(scan.valid_fraction, 4),
        "height_range_um": [float(finite.min()) * 1e6, float(finite.max()) * 1e6],
        "metadata": dict(scan.metadata),
        "sha256": scan.sha256,
    }


def info(
    scans: Annotated[list[Path], typer.Argument(help="x3p files or images.")],
    json_out: JsonOpt = False,
    pixel_um: PixelOpt = None,
) -> None:
    """Describe scans: format, kind, shape, spacing, valid fraction, heights, metadata, SHA-256."""
    summaries = [scan_summary(load_file(path, pixel_um)) for path in scans]
    if json_out:
        emit_json({"scans": summaries})
        return
    for s in summaries:
        unit = "µm" if s["kind"] == "topography" else "µm (grey level x pixel)"
        rows = [
            ("format / kind", f"{s['format']} / {s['kind']}"),
            ("shape (rows x cols)", f"{s['shape'][0]} x {s['shape'][1]}"),
            ("spacing (µm)", f"{s['spacing_um'][0]:.4g} x {s['spacing_um'][1]:.4g}"),
            ("valid fraction", f"{s['valid_fraction']:.3f}"),
            (f"height range ({unit})", f"{s['height_range_um'][0]:.3f} .. {s['height_range_um'][1]:.3f}"),
            *((key, str(value)) for key, value in s["metadata"].items()),
        ]
        print_rows(s["path"], rows, whole=[("sha256", s["sha256"] or "")])


def convert(
    source: Annotated[Path, typer.Argument(help="x3p file or image.")],
    target: Annotated[Path, typer.Argument(help="Output .x3p file.")],
    pixel_um: PixelOpt = None,
) -> None:
    """Convert a scan (x3p or image) to an ISO 25178-72 x3p file."""
    from ballistics.scan import load_scan, save_x3p

    save_x3p(load_scan(source, pixel_um=pixel_um), target)
    note(f"wrote {target}")


def register(app: typer.Typer) -> None:
    app.command()(info)
    app.command()(convert)
