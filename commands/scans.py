"""``info`` and ``convert``: what a scan holds, and x3p out of any scan the toolkit reads."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from commands.common import JsonOpt, PixelOpt, check_figures, emit_json, note, print_rows, progress

if TYPE_CHECKING:
    from ballistics.preprocess import BreechFace
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


def prepared_summary(scan: Scan, face: BreechFace) -> dict[str, Any]:
    """Where the comparison takes the breech face from: the primer's edge (scan pixels, mm) and the firing-pin zone."""
    import numpy as np

    crop = face.crop
    primer = None
    if crop is not None and crop.primer is not None:
        x, y, r = crop.primer
        primer = {"center_px": [round(x, 1), round(y, 1)], "radius_mm": round(r * scan.spacing_x * 1e3, 4)}
    return {
        "mode": face.mode,
        "primer": primer,
        "firing_pin": None if face.firing_pin is None else face.firing_pin.to_dict(),
        "valid_points": int(np.isfinite(face.surface).sum()),
    }


def prepared_rows(prepared: dict[str, Any]) -> list[tuple[str, str]]:
    primer, pin = prepared["primer"], prepared["firing_pin"]
    return [
        ("prepared as", str(prepared["mode"])),
        (
            "primer edge (scan pixels)",
            "not found"
            if primer is None
            else f"centre {primer['center_px'][0]:.1f}, {primer['center_px'][1]:.1f}; radius {primer['radius_mm']:.3f} mm",
        ),
        (
            "firing-pin zone",
            "none" if pin is None else f"{pin['shape']}, crater radius {pin['radius_um']:.0f} µm, zone {pin['extent_um']:.0f} µm",
        ),
        ("breech-face points (working spacing)", str(prepared["valid_points"])),
    ]


def info(
    scans: Annotated[list[Path], typer.Argument(help="x3p files or images.")],
    json_out: JsonOpt = False,
    pixel_um: PixelOpt = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            help="Prepare the scans for comparison and write a figure here (PNG at 300 dpi; SVG when the name ends in .svg): "
            "each scan with the primer edge, the crop and the firing-pin zone removed drawn over it."
        ),
    ] = None,
) -> None:
    """Describe scans: format, kind, shape, spacing, valid fraction, heights, metadata, SHA-256."""
    check_figures(plot)
    loaded = [load_file(path, pixel_um) for path in scans]
    summaries = [scan_summary(scan) for scan in loaded]
    if plot is not None:
        from ballistics.plots import crop_figure
        from ballistics.preprocess import prepare

        with progress("preparing for comparison", quiet=json_out):
            faces = [prepare(scan) for scan in loaded]
        crop_figure([(scan, face, path.name) for scan, face, path in zip(loaded, faces, scans, strict=True)], plot)
        for summary, scan, face in zip(summaries, loaded, faces, strict=True):
            summary["prepared"] = prepared_summary(scan, face)
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
        if "prepared" in s:
            rows.extend(prepared_rows(s["prepared"]))
        print_rows(s["path"], rows, whole=[("sha256", s["sha256"] or "")])
    if plot is not None:
        note(f"wrote {plot}")


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
