"""The error family every layer raises, each carrying the exit code the CLI maps it to.

The CLI prints ``error: <path>: <reason>`` and exits with :attr:`BallisticsError.exit_code`,
so an error must know which file it is about and say why in one line.
"""

from __future__ import annotations

from os import PathLike

#: Exit codes, documented in the README and shared by every command.
EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_USAGE = 2
EXIT_INVALID_INPUT = 3
EXIT_SECURITY = 4


class BallisticsError(Exception):
    """Base of every expected failure: a bad input, a refusal, a missing resource."""

    exit_code: int = EXIT_UNEXPECTED

    def __init__(self, path: str | PathLike[str] | None, reason: str) -> None:
        self.path = str(path) if path is not None else "-"
        self.reason = " ".join(str(reason).split())  # always one line
        super().__init__(f"{self.path}: {self.reason}")


class InvalidInputError(BallisticsError):
    """Malformed or unreadable input: a scan, a record, a bundle, a CSV (exit 3)."""

    exit_code = EXIT_INVALID_INPUT


class SecurityError(BallisticsError):
    """A security refusal: bad signature, untrusted sender, replay, tampering (exit 4)."""

    exit_code = EXIT_SECURITY


class UsageError(BallisticsError):
    """Options that cannot work together, found after parsing (exit 2)."""

    exit_code = EXIT_USAGE
