"""The ``ballistics`` command: parse options, call the packages, print tables or JSON.

Nothing here does science or cryptography. Every expected failure arrives as a
:class:`ballistics.errors.BallisticsError`; :func:`main` prints it as one line
``error: <path>: <reason>`` on stderr and exits with its code (0 ok, 1 unexpected, 2 usage,
3 invalid input, 4 security refusal). ``--debug`` adds the traceback.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import numpy as np
import platformdirs
import typer
from rich.console import Console
from rich.table import Table

from ballistics import SOFTWARE_NAME, __version__
from ballistics.errors import EXIT_UNEXPECTED, BallisticsError
from ballistics.scan import Scan, load_scan, save_x3p, sniff_format

app = typer.Typer(
    name="ballistics",
    help="Compare fired cartridge cases and exchange ballistic intelligence between laboratories.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


@dataclass
class State:
    """Global options, set by the callback and read by the commands."""

    home: Path = Path(platformdirs.user_data_dir(SOFTWARE_NAME))
    debug: bool = False


state = State()


def _version(value: bool) -> None:
    if value:
        print(f"{SOFTWARE_NAME} {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    home: Annotated[
        Optional[Path],
        typer.Option(envvar="BALLISTICS_HOME", help="Where the lab's database, keys, logs and quarantine live."),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    state.home = home if home is not None else Path(platformdirs.user_data_dir(SOFTWARE_NAME))
    state.debug = debug


def emit_json(document: Any) -> None:
    """Exactly one JSON document on stdout."""
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False, default=str) + "\n")


def scan_summary(scan: Scan) -> dict[str, Any]:
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


@app.command()
def info(
    scans: Annotated[list[Path], typer.Argument(help="x3p files or images.")],
    json_out: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
    pixel_um: Annotated[Optional[float], typer.Option(help="Pixel size of 2-D images, in micrometres.")] = None,
) -> None:
    """Describe scans: format, kind, shape, spacing, valid fraction, heights, metadata, SHA-256."""
    summaries = []
    for path in scans:
        summaries.append(scan_summary(_load_for_info(path, pixel_um)))
    if json_out:
        emit_json({"scans": summaries})
        return
    for s in summaries:
        table = Table(title=s["path"], show_header=False, title_justify="left")
        table.add_row("format / kind", f"{s['format']} / {s['kind']}")
        table.add_row("shape (rows x cols)", f"{s['shape'][0]} x {s['shape'][1]}")
        table.add_row("spacing (um)", f"{s['spacing_um'][0]:.4g} x {s['spacing_um'][1]:.4g}")
        table.add_row("valid fraction", f"{s['valid_fraction']:.3f}")
        unit = "um" if s["kind"] == "topography" else "um (grey level x pixel)"
        table.add_row(f"height range ({unit})", f"{s['height_range_um'][0]:.3f} .. {s['height_range_um'][1]:.3f}")
        for key, value in s["metadata"].items():
            table.add_row(key, str(value))
        table.add_row("sha256", s["sha256"] or "")
        out.print(table)


def _load_for_info(path: Path, pixel_um: float | None) -> Scan:
    """``--pixel-um`` applies to the images in a mixed list and is ignored for x3p files."""
    return load_scan(path, pixel_um=None if sniff_format(path) == "x3p" else pixel_um)


@app.command()
def convert(
    source: Annotated[Path, typer.Argument(help="x3p file or image.")],
    target: Annotated[Path, typer.Argument(help="Output .x3p file.")],
    pixel_um: Annotated[Optional[float], typer.Option(help="Pixel size of a 2-D image, in micrometres.")] = None,
) -> None:
    """Convert a scan (x3p or image) to an ISO 25178-72 x3p file."""
    scan = load_scan(source, pixel_um=pixel_um)
    save_x3p(scan, target)
    err.print(f"wrote {target}")


def main(argv: list[str] | None = None) -> int:
    """Run the command line and return the exit code, mapping errors to one line on stderr."""
    args = sys.argv[1:] if argv is None else argv
    state.debug = "--debug" in args
    try:
        # Typer handles --help, usage errors (exit 2) and normal exits itself, by SystemExit.
        app(args=args, prog_name="ballistics")
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else EXIT_UNEXPECTED)
    except BallisticsError as exc:
        if state.debug:
            traceback.print_exc()
        print(f"error: {exc.path}: {exc.reason}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: -: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, code 1
        if state.debug:
            traceback.print_exc()
        print(f"error: -: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_UNEXPECTED
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
