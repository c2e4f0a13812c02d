"""The end-to-end demo (``make demo``): the UK-France story runs and tells its outcome."""

from __future__ import annotations

import pytest

import cli


def test_demo_tells_the_whole_story(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["demo"]) == 0
    text = capsys.readouterr().out
    assert "1 imported, 0 duplicates, 0 not for us, 2 rejected" in text  # the case bundle in, the tampered copy and the replay out
    assert "TamperedError" in text or "fails authentication" in text
    assert "replay: sequence 1 is not newer than 2" in text
    assert "UK holds FR-IRCGN's signed receipt" in text
    assert "cross-border link found: UK case UK-2026-0117 exhibit CS1 and French case FR-2025-401" in text
    assert "UK holds FR-IRCGN's confirmed hit: its crime-scene scan" in text
    # one firearm on both sides: the UK's two cases and the French one, as each lab sees it
    assert (
        "UK sees one firearm across the Channel" in text
        and "3 cases (FR-IRCGN/FR-2025-401, UK-FSL/UK-2026-0099, UK-FSL/UK-2026-0117)" in text
    )
    assert "FR sees one firearm across the Channel" in text and "countries FR, GB" in text
    assert text.count("audit log intact") == 2 and "BROKEN" not in text
