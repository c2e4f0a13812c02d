"""Owner-only folders and atomic, owner-only file writes: a reader never sees half a key, card or bundle."""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO

from ballistics import files

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and make sure only the owner can enter it."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    os.chmod(path, PRIVATE_DIR_MODE)
    return path


def atomic_output(path: Path, mode: int = PRIVATE_FILE_MODE) -> AbstractContextManager[BinaryIO]:
    """:func:`ballistics.files.atomic_output`, owner-only unless told otherwise."""
    return files.atomic_output(path, mode)


def write_atomic(path: Path, data: bytes, mode: int = PRIVATE_FILE_MODE) -> Path:
    """:func:`ballistics.files.write_atomic`, owner-only unless told otherwise."""
    return files.write_atomic(path, data, mode)
