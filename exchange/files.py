"""Owner-only folders and atomic, owner-only file writes: a reader never sees half a key, card or bundle."""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO

from ballistics import files
from ballistics.files import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, ensure_private_dir
from exchange.errors import InsecureKeyFileError

__all__ = ["PRIVATE_DIR_MODE", "PRIVATE_FILE_MODE", "atomic_output", "check_owner_only", "ensure_private_dir", "write_atomic"]


def check_owner_only(path: Path) -> None:
    """Refuse a private-key file that another user owns or that others may read or write, as ssh does.

    Raises :class:`InsecureKeyFileError` (exit 4) naming the ``chmod`` that fixes it. A missing
    file is left to the caller's own error.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return
    if info.st_uid != os.geteuid():
        raise InsecureKeyFileError(
            path, f"owned by uid {info.st_uid}, not by this user (uid {os.geteuid()}): a private key must be its owner's alone"
        )
    if info.st_mode & 0o077:
        raise InsecureKeyFileError(
            path,
            f"permissions {info.st_mode & 0o777:04o} are too open: others could read this private key; it is refused "
            f"until only its owner can (run: chmod 600 {path}), and should be replaced if others did read it",
        )


def atomic_output(path: Path, mode: int = PRIVATE_FILE_MODE) -> AbstractContextManager[BinaryIO]:
    """:func:`ballistics.files.atomic_output`, owner-only unless told otherwise."""
    return files.atomic_output(path, mode)


def write_atomic(path: Path, data: bytes, mode: int = PRIVATE_FILE_MODE) -> Path:
    """:func:`ballistics.files.write_atomic`, owner-only unless told otherwise."""
    return files.write_atomic(path, data, mode)
