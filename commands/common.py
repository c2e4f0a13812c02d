"""What every command shares: global state, consoles, options, JSON, tables, progress, secrets.

Only light modules are imported here (typer, the standard library): ``ballistics --version``,
``--help`` and the bookkeeping commands must start quickly, so each command imports the
science, the database layer and the cryptography inside its own body, where they are used.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ballistics import SOFTWARE_NAME
from ballistics.errors import BallisticsError, UsageError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from ballistics.store import Store

#: Where the passphrase of the lab's private keys comes from when no one can type it.
PASSPHRASE_ENV = "BALLISTICS_PASSPHRASE"
#: The examiner named in the audit log (default: the login name).
EXAMINER_ENV = "BALLISTICS_EXAMINER"
#: Default lab home when neither ``--home`` nor ``BALLISTICS_HOME`` is given.
HOME_ENV = "BALLISTICS_HOME"

Progress = Callable[[int, int | None], None]


def default_home() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir(SOFTWARE_NAME))


@dataclass
class State:
    """Global options, set by the callback and read by the commands."""

    home: Path = field(default_factory=default_home)
    debug: bool = False
    #: A JSON document is on stdout already: an error after it must not print a second one.
    json_emitted: bool = False


state = State()


@cache
def out() -> Console:
    """The console for results (stdout)."""
    from rich.console import Console

    return Console(soft_wrap=True)


@cache
def err() -> Console:
    """The console for progress, notes and confirmations (stderr)."""
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


# --- options shared by several commands ------------------------------------------------------

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print exactly one JSON document on stdout (an error too) instead of tables.", show_default=False)
]
PixelOpt = Annotated[
    float | None,
    typer.Option("--pixel-um", help="Pixel size of 2-D images in micrometres (required for images; ignored for x3p files)."),
]
DbUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--db-url",
        envvar="BALLISTICS_DB_URL",
        help="SQLAlchemy URL of the collection (default: SQLite in the lab home).",
        show_default=False,
    ),
]
WorkersOpt = Annotated[
    int | None, typer.Option("--workers", min=1, help="Local worker processes [default: one per CPU core].", show_default=False)
]


def worker_count(workers: int | None) -> int:
    return workers if workers is not None else max(1, os.cpu_count() or 1)


# --- output --------------------------------------------------------------------------------


def emit_json(document: Any) -> None:
    """Exactly one JSON document on stdout."""
    state.json_emitted = True
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False, default=str) + "\n")


def visible(text: str) -> str:
    """``text`` with every character that is not printable shown as its escape (``\\x1b``, ``\\u202e``).

    Rich strips a few control characters but passes ESC through, so a partner's case id could
    carry terminal escape sequences (clear the screen, move the cursor, rewrite a line), and
    bidirectional or invisible format characters reorder or hide what an examiner reads. Shown
    escaped, they are seen for what they are.
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode("ascii") for char in text)


def note(message: str) -> None:
    """One line for the person at the terminal (stderr): what was written, what changed.

    Printed without markup and with control characters made visible: names and reasons may come
    from partners and are data.
    """
    err().print(visible(message), markup=False, highlight=False)


def table(title: str, columns: Sequence[str], *, keep: Sequence[str] = (), fold: Sequence[str] = ()) -> Table:
    """A table whose ``keep`` columns (identifiers) are never wrapped or cut, the others folded, never cut.

    Identifiers an examiner reads out or copies (case and exhibit numbers, decisions, hashes)
    are kept whole; the ``fold`` columns (free text, file names) take the width that is left.
    """
    from rich import box
    from rich.table import Table
    from rich.text import Text

    result = Table(title=Text(visible(title)), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for column in columns:
        if column in keep:
            result.add_column(column, no_wrap=True, overflow="ignore")
        else:
            result.add_column(column, overflow="fold", ratio=1 if column in fold else None)
    return result


def add_row(target: Table, *cells: str | Text | tuple[str, ...]) -> None:
    """One row; every cell is shown as it is, never read as markup, control characters made visible.

    Case and exhibit ids, lab names and refusal reasons may come from partners: they are data. A
    :class:`~rich.text.Text` cell keeps its style (the whole cell's) and has its text made visible too.
    A tuple is a cell of several lines, each made visible (so a partner's text cannot add lines).
    """
    from rich.text import Text

    def shown(cell: str | Text | tuple[str, ...]) -> Text:
        if isinstance(cell, tuple):
            return Text("\n".join(visible(line) for line in cell))
        return Text(visible(cell)) if isinstance(cell, str) else Text(visible(cell.plain), style=cell.style)

    target.add_row(*(shown(cell) for cell in cells))


def print_table(result: Table) -> None:
    out().print(result)


def print_rows(title: str, rows: Sequence[tuple[str, str]], whole: Sequence[tuple[str, str]] = ()) -> None:
    """Key/value rows: keys kept whole, values folded (never cut) at the terminal's width.

    The ``whole`` rows (hashes, fingerprints, paths: what an examiner copies or reads out) follow
    the table as ``key: value`` lines that are never folded, so that a copy takes them entire.
    """
    from rich.table import Table
    from rich.text import Text

    result = Table(title=Text(visible(title)), show_header=False, title_justify="left")
    result.add_column(no_wrap=True)
    result.add_column(overflow="fold")
    for key, value in rows:
        result.add_row(Text(visible(key)), Text(visible(value)))
    out().print(result)
    for key, value in whole:
        out().print(visible(f"{key}: {value}"), markup=False, highlight=False, soft_wrap=True)


@contextmanager
def progress(label: str, *, quiet: bool = False, unit: str = "items", total: int | None = None) -> Iterator[Progress]:
    """The one progress bar: on stderr, driven by the core's ``(done, total)`` callback.

    Quiet under ``--json`` and when stderr is not a terminal (a pipeline, a log file, CI), so
    that nothing but the result reaches a reader that parses it. ``unit`` is ``items`` (a
    count of M/N with time remaining) or ``bytes`` (size and speed).
    """
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )
    from rich.progress import Progress as Bar

    columns = (
        (DownloadColumn(), TransferSpeedColumn()) if unit == "bytes" else (MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    )
    bar = Bar("{task.description}", BarColumn(), *columns, console=err(), transient=True, disable=quiet or not err().is_terminal)
    task = bar.add_task(label, total=total)

    def update(done: int, total: int | None = None) -> None:
        bar.update(task, completed=done, total=total)

    with bar:
        yield update


# --- the collection, the lab, secrets and the audit log ----------------------------------------


def check_figures(*paths: Path | None) -> None:
    """Refuse a figure file whose extension is neither .png nor .svg (exit 2), before any work is done."""
    from ballistics.plots import figure_format

    for path in paths:
        if path is not None:
            figure_format(path)


def open_store(db_url: str | None = None) -> Store:
    from ballistics.store import Store

    return Store.open(state.home, db_url)


def passphrase(confirm: bool = False) -> bytes:
    """From ``BALLISTICS_PASSPHRASE`` for automation, else a hidden prompt; never an argument.

    Without a terminal to ask on and without the variable, this is a usage error (exit 2)
    naming the variable, not a traceback.
    """
    value = os.environ.get(PASSPHRASE_ENV)
    if value is None:
        if not sys.stdin.isatty():
            raise UsageError(PASSPHRASE_ENV, "no passphrase: set BALLISTICS_PASSPHRASE or run the command in a terminal to be asked")
        value = typer.prompt("Passphrase for the lab's private keys", hide_input=True, confirmation_prompt=confirm, err=True)
    return value.encode("utf-8")


def audit(*events: tuple[str, dict[str, Any]], identity: Any = None, examiner: str | None = None, retire: str | None = None) -> None:
    """Append this command's events to the audit log and sign its head (docs/audit.md).

    With the unlocked ``identity`` at hand, also make sure the audit key is certified by its
    current card; with ``retire``, withdraw the audit key after a revocation.
    """
    from exchange.audit import Actor, audit_session

    actor = Actor.current(state.home, examiner or os.environ.get(EXAMINER_ENV))
    with audit_session(state.home, actor) as log:
        for event_type, details in events:
            log.append(event_type, details)
        if identity is not None:
            log.certify_key(identity)
    if retire is not None:
        log.retire_key(retire)


@contextmanager
def audit_refusal(event_type: str, details: dict[str, Any]) -> Iterator[None]:
    """Record a refusal (with its reason and exit class) in the audit log, then let it propagate."""
    try:
        yield
    except BallisticsError as exc:
        audit((event_type, {**details, "error": type(exc).__name__, "reason": exc.reason, "exit_code": exc.exit_code}))
        raise
