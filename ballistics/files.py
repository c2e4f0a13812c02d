"""Atomic file writes: a reader never sees half a file, and a crash never leaves one.

Every file the toolkit writes (scans, records, figures, keys, bundles, logs) goes through a
temporary file in the target's folder, is flushed to disk, and is renamed over the target: the
rename is atomic on POSIX file systems, so the target is either the old file or the new one.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

#: The lab home and what it holds are the owner's alone (docs/security.md, item 14).
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
#: What ends the name of an atomic write's temporary file (``.<target name>.<random>.partial``).
TEMPORARY_SUFFIX = ".partial"
#: The random part :func:`tempfile.mkstemp` puts between prefix and suffix.
_RANDOM_PART = re.compile(r"[A-Za-z0-9_]{1,64}")


def temporary_affixes(target: str | os.PathLike[str]) -> tuple[str, str]:
    """(prefix, suffix) of the temporary files an atomic write to ``target`` creates beside it.

    The one place that names them: :func:`atomic_output` creates them, and crash recovery
    (:func:`is_temporary_of`, :func:`temporaries_of`) finds what a killed writer left behind.
    """
    return f".{Path(target).name}.", TEMPORARY_SUFFIX


def is_temporary_of(candidate: str | os.PathLike[str], target: str | os.PathLike[str]) -> bool:
    """Whether ``candidate`` is a temporary file of an atomic write to ``target`` (same folder)."""
    candidate, target = Path(candidate), Path(target)
    prefix, suffix = temporary_affixes(target)
    name = candidate.name
    return (
        candidate.parent == target.parent
        and name.startswith(prefix)
        and name.endswith(suffix)
        and _RANDOM_PART.fullmatch(name[len(prefix) : len(name) - len(suffix)]) is not None
    )


def temporaries_of(target: str | os.PathLike[str]) -> list[Path]:
    """The temporary files of atomic writes to ``target`` that exist now (e.g. left by a crash)."""
    target = Path(target)
    if not target.parent.is_dir():
        return []
    return sorted(p for p in target.parent.iterdir() if is_temporary_of(p, target))


def ensure_private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` and any missing parents owner-only (0700), and make ``path`` itself 0700.

    Parents that exist already are left as they are; new ones are 0700 whatever the umask, so a
    lab home created on the way to one of its folders is private too.
    """
    path = Path(path)
    for folder in [*reversed(path.parents), path]:
        if not folder.exists():
            with suppress(FileExistsError):
                folder.mkdir(mode=PRIVATE_DIR_MODE)
            os.chmod(folder, PRIVATE_DIR_MODE)  # mkdir's mode passes through the umask
    os.chmod(path, PRIVATE_DIR_MODE)
    return path


def _umask_mode() -> int:
    """The mode ``open()`` would give a new file under the current umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_output(path: str | os.PathLike[str], mode: int | None = None) -> Iterator[BinaryIO]:
    """Yield a temporary file beside ``path``; rename it into place only if the block succeeds.

    ``mode`` defaults to what a plain ``open()`` would create; key material passes 0o600.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix, suffix = temporary_affixes(target)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=target.parent)
    try:
        os.fchmod(fd, _umask_mode() if mode is None else mode)
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: str | os.PathLike[str], data: bytes, mode: int | None = None) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_output(path, mode) as handle:
        handle.write(data)
    return Path(path)


def open_regular(path: str | os.PathLike[str], *, follow: bool = True) -> BinaryIO:
    """Open a regular file for reading; anything else is an ``OSError`` (``EINVAL``), raised without blocking.

    A FIFO would block the open (or the first read) until a writer comes; a device node can be
    read forever (``/dev/zero``) or change state when opened. The path is looked at first and not
    opened unless it is a regular file; the open itself does not block (``O_NONBLOCK``) and the
    opened file is checked again, so a file swapped in between is refused too. With
    ``follow=False`` a symbolic link is refused as well (``O_NOFOLLOW``).
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | (0 if follow else os.O_NOFOLLOW)
    if not stat.S_ISREG((os.stat if follow else os.lstat)(path).st_mode):
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    fd = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bounded(path: str | os.PathLike[str], limit: int, *, follow: bool = True) -> bytes:
    """At most ``limit + 1`` bytes of a regular file (:func:`open_regular`): a caller refuses more than ``limit``."""
    with open_regular(path, follow=follow) as handle:
        return handle.read(limit + 1)


def copy_atomic(source: str | os.PathLike[str], target: str | os.PathLike[str], mode: int | None = None, *, follow: bool = True) -> Path:
    """Copy a regular file atomically, streaming it in 1 MiB blocks (anything else: :func:`open_regular`)."""
    with open_regular(source, follow=follow) as src, atomic_output(target, mode) as handle:
        shutil.copyfileobj(src, handle, 1 << 20)
    return Path(target)
