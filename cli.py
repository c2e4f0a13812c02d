"""The ``ballistics`` command: assembles the command groups and maps errors to exit codes.

Nothing here does science or cryptography, and the command modules (:mod:`commands`) import
those inside each command, so that ``--version`` and ``--help`` start at once. Every expected
failure arrives as a :class:`ballistics.errors.BallisticsError`; :func:`main` prints it as one
line ``error: <path>: <reason>`` on stderr (and, under ``--json``, as one JSON document on
stdout) and returns its code: 0 ok, 1 unexpected, 2 usage, 3 invalid input, 4 security refusal.
``--debug`` adds the traceback.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer

from ballistics import SOFTWARE_NAME
from ballistics.errors import EXIT_UNEXPECTED, EXIT_USAGE, BallisticsError
from commands import (
    audit,
    bundles,
    calibration,
    collection,
    comparison,
    demo,
    intelligence,
    keys,
    records,
    report,
    scans,
    series,
    view,
)
from commands.common import HOME_ENV, default_home, state, visible

#: Exit code of an interrupted command (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130

app = typer.Typer(
    name=SOFTWARE_NAME,
    help="Compare fired cartridge cases and exchange ballistic intelligence between laboratories.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from ballistics import __version__

        print(f"{SOFTWARE_NAME} {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    home: Annotated[
        Path | None,
        typer.Option(envvar=HOME_ENV, help="Where the lab's database, keys, logs and quarantine live.", show_default=False),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    state.home = home if home is not None else default_home()
    state.debug = debug


for group in (scans, comparison, view, calibration, collection, records, series, report, keys, bundles, intelligence, audit, demo):
    group.register(app)


def _whole_summaries(command: Any) -> Any:
    """Give every command its docstring's first paragraph as summary, so command lists wrap it instead of cutting it with '...'."""
    for sub in getattr(command, "commands", {}).values():
        if not sub.short_help and sub.help:
            sub.short_help = " ".join(sub.help.split("\n\n")[0].split())
        _whole_summaries(sub)
    return command


def _fail(path: str, reason: str, code: int, as_json: bool) -> int:
    """One line on stderr; under ``--json`` also the one JSON document on stdout."""
    print(visible(f"error: {path}: {reason}"), file=sys.stderr)  # a partner's name must not drive the terminal
    if as_json and not state.json_emitted:
        sys.stdout.write(json.dumps({"error": {"path": path, "reason": reason, "exit_code": code}}) + "\n")
    return code


def main(argv: list[str] | None = None) -> int:
    """Run the command line and return the exit code, mapping errors to one line on stderr."""
    args = sys.argv[1:] if argv is None else list(argv)
    state.debug = "--debug" in args
    state.json_emitted = False
    as_json = "--json" in args
    try:
        code = _whole_summaries(typer.main.get_command(app)).main(args=args, prog_name=SOFTWARE_NAME, standalone_mode=False)
    except typer.Exit as done:
        return done.exit_code
    except BallisticsError as exc:
        if state.debug:
            traceback.print_exc()
        return _fail(exc.path, exc.reason, exc.exit_code, as_json)
    except typer.TyperException as exc:  # usage: unknown option, bad value, missing argument
        reason = " ".join(exc.format_message().split())
        return _fail("-", f"{reason} (see --help)", getattr(exc, "exit_code", EXIT_USAGE), as_json)
    except (KeyboardInterrupt, typer.Abort):
        return _fail("-", "interrupted", EXIT_INTERRUPTED, as_json)
    except Exception as exc:  # the last line of defence: one line, code 1
        if state.debug:
            traceback.print_exc()
        return _fail("-", f"unexpected {type(exc).__name__}: {exc}", EXIT_UNEXPECTED, as_json)
    return code if isinstance(code, int) else 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
