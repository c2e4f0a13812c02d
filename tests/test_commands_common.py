"""The shared pieces of the commands: the one progress bar, tables that keep identifiers whole."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from commands import common


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """Stderr as a 60-column terminal, so that the progress bar would draw."""
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=60)
    monkeypatch.setattr(common, "err", lambda: console)
    return screen


def test_progress_draws_on_a_terminal_and_reports_the_count(terminal: io.StringIO) -> None:
    with common.progress("comparing the shortlist", total=4) as update:
        for done in range(1, 5):
            update(done, 4)
    assert "comparing the shortlist" in terminal.getvalue() and "4/4" in terminal.getvalue()


def test_progress_is_quiet_under_json(terminal: io.StringIO) -> None:
    with common.progress("comparing the shortlist", quiet=True, total=4) as update:
        update(4, 4)
    assert terminal.getvalue() == ""


def test_progress_is_quiet_when_stderr_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = io.StringIO()
    monkeypatch.setattr(common, "err", lambda: Console(file=screen, width=60))
    with common.progress("verifying", unit="bytes") as update:
        update(1 << 20, 1 << 21)
    assert screen.getvalue() == ""


def test_tables_keep_identifiers_whole_and_fold_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = io.StringIO()
    monkeypatch.setattr(common, "out", lambda: Console(file=screen, width=50))
    listing = common.table("t", ("case/exhibit", "sha256", "what happened"), keep=("case/exhibit", "sha256"), fold=("what happened",))
    listing.add_row("UK-2026-0117/CS1-12", "afbb22e4f2ee", "a partner's long explanation that has to fold onto further lines")
    common.print_table(listing)
    text = screen.getvalue()
    assert "UK-2026-0117/CS1-12" in text and "afbb22e4f2ee" in text and "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 50 and "further" in text


def test_partner_text_is_never_markup(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(common, "err", lambda: Console(stderr=True, width=200))
    common.note("lab [bold red]FR-IRCGN[/] says [link=http://x]click[/link]")
    assert capsys.readouterr().err.strip() == "lab [bold red]FR-IRCGN[/] says [link=http://x]click[/link]"


def test_table_cells_from_partners_are_never_markup(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = io.StringIO()
    monkeypatch.setattr(common, "out", lambda: Console(file=screen, width=80))
    listing = common.table("t", ("case/exhibit", "lab"), keep=("case/exhibit",))
    common.add_row(listing, "[bold]FR-2025-0401[/bold]/E1", "FR-IRCGN [link=http://x]y[/link]")
    common.print_table(listing)
    assert "[bold]FR-2025-0401[/bold]/E1" in screen.getvalue() and "[link=http://x]y[/link]" in screen.getvalue()
