"""Atomic writes: the target is the old or the new file, never half of one; temporaries are named once."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from ballistics.files import (
    TEMPORARY_SUFFIX,
    atomic_output,
    copy_atomic,
    is_temporary_of,
    open_regular,
    temporaries_of,
    temporary_affixes,
    write_atomic,
)

KILLED_WRITER = """
import os, signal, sys
from ballistics.files import atomic_output
with atomic_output(sys.argv[1]) as handle:
    handle.write(b"half of a scan" * 1000)
    handle.flush()
    os.kill(os.getpid(), signal.SIGKILL)
"""


def kill_writer_mid_write(target: Path) -> None:
    """Run an atomic write in a child process and SIGKILL it inside the block, as a crash would."""
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(target)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()


def test_a_failure_inside_the_block_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "record.json"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_output(target) as handle:
        handle.write(b"new but unfinished")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]


def test_success_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "record.json"
    write_atomic(target, b"first")
    write_atomic(target, b"second")
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["record.json"]


def test_the_target_is_never_visible_half_written(tmp_path: Path) -> None:
    target = tmp_path / "scan.x3p"
    target.write_bytes(b"old")
    with atomic_output(target) as handle:
        handle.write(b"new")
        assert target.read_bytes() == b"old"
    assert target.read_bytes() == b"new"


def test_mode_bits_follow_the_umask_or_the_given_mode(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        write_atomic(tmp_path / "plain", b"x")
        write_atomic(tmp_path / "key", b"secret", mode=0o600)
        copy_atomic(tmp_path / "plain", tmp_path / "copy", mode=0o640)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "plain").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "copy").stat().st_mode) == 0o640
    assert (tmp_path / "copy").read_bytes() == b"x"


def test_the_temporary_in_use_is_named_by_the_helper(tmp_path: Path) -> None:
    target = tmp_path / "ab12.x3p"
    prefix, suffix = temporary_affixes(target)
    assert (prefix, suffix) == (".ab12.x3p.", TEMPORARY_SUFFIX)
    with atomic_output(target) as handle:
        handle.write(b"x")
        live = temporaries_of(target)
        assert len(live) == 1 and live[0].name.startswith(prefix) and live[0].name.endswith(suffix)
        assert is_temporary_of(live[0], target)
    assert temporaries_of(target) == []


def test_the_recogniser_refuses_look_alikes(tmp_path: Path) -> None:
    target = tmp_path / "ab12.x3p"
    assert is_temporary_of(tmp_path / ".ab12.x3p.k3j_9x.partial", target)
    for name in (
        "ab12.x3p",  # the target itself
        ".ab12.x3p.k3j_9x.tmp",  # another naming scheme
        ".ab12.x3p..partial",  # no random part
        ".ab12.x3p.a.b.partial",  # a dot inside the random part
        ".ab12.x3p.k3j_9x.partial.json",
        ".ab12.x3p2.k3j_9x.partial",  # the temporary of another file
        "ab12.x3p.k3j_9x.partial",  # not hidden
    ):
        assert not is_temporary_of(tmp_path / name, target), name
    assert not is_temporary_of(tmp_path / "elsewhere" / ".ab12.x3p.k3j_9x.partial", target)


def test_a_killed_writer_leaves_the_old_file_and_a_recognisable_temporary(tmp_path: Path) -> None:
    target = tmp_path / "scans" / "ab" / "ab12.x3p"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"old")
    kill_writer_mid_write(target)
    assert target.read_bytes() == b"old"
    leftovers = temporaries_of(target)
    assert len(leftovers) == 1 and leftovers[0].read_bytes().startswith(b"half of a scan")


def test_only_regular_files_are_opened_or_copied(tmp_path: Path) -> None:
    """A FIFO would block the open; a device can be read forever: both are refused at once."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    plain = tmp_path / "plain"
    plain.write_bytes(b"x")
    link = tmp_path / "link"
    link.symlink_to(plain)
    for path in (fifo, Path("/dev/zero"), tmp_path):
        with pytest.raises(OSError, match="not a regular file"):
            open_regular(path)
        with pytest.raises(OSError, match="not a regular file"):
            copy_atomic(path, tmp_path / "copy")
    with pytest.raises(OSError, match="not a regular file"):
        open_regular(link, follow=False)
    with open_regular(link) as handle:
        assert handle.read() == b"x"
    assert not (tmp_path / "copy").exists() and temporaries_of(tmp_path / "copy") == []
