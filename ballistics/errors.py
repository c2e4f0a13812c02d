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


# --- scans (ballistics.scan) -------------------------------------------------------------------


class ScanError(InvalidInputError):
    """A scan cannot be read or written."""


class NotAScanError(ScanError):
    """The file is neither an x3p archive nor an image format we read."""


class MalformedX3PError(ScanError):
    """The x3p archive or its main.xml is damaged or incomplete."""


class ChecksumMismatchError(ScanError):
    """A checksum stored in the x3p file does not match its content."""


class NotASurfaceError(ScanError):
    """The file holds a profile or a point cloud where a surface is needed."""


class BadSpacingError(ScanError):
    """The pixel spacing is missing, zero, negative or not finite."""


class EmptySurfaceError(ScanError):
    """The surface has no measured point."""


class TooLargeError(ScanError):
    """The surface is larger than :data:`ballistics.scan.MAX_SIDE_PX` / :data:`ballistics.scan.MAX_POINTS`."""


class UnreadableImageError(ScanError):
    """An image file whose header looked right but whose content cannot be decoded."""


# --- preprocessing (ballistics.preprocess, ballistics.firing_pin, ballistics.signature) --------


class PreprocessError(InvalidInputError):
    """A scan cannot be turned into a breech-face surface."""


class PrimerNotFoundError(PreprocessError):
    """No primer circle could be fitted to the scan."""


class SurfaceTooSmallError(PreprocessError):
    """Too little breech face is left after cropping and outlier removal."""


class FiringPinError(InvalidInputError):
    """The firing-pin impression cannot be measured from the data given."""


class SignatureError(InvalidInputError):
    """A surface from which no signature can be taken."""


# --- comparison, validation, search (ballistics.compare, .validate, .search) -------------------


class IncomparableError(InvalidInputError):
    """Two surfaces that cannot be compared (different working spacing, no usable cell)."""


class TruthError(InvalidInputError):
    """A truth table that cannot be read or does not cover the scans."""


class SearchError(InvalidInputError):
    """A search that cannot run: an empty collection after filtering, a cluster out of reach."""


# --- records and the collection (ballistics.records, ballistics.schema, ballistics.store) ------


class RecordError(InvalidInputError):
    """A match record that is unreadable or does not satisfy the schema."""


class StoreError(InvalidInputError):
    """A request the collection cannot satisfy: unknown exhibit, conflicting ids, bad URL."""


# --- likelihood ratios (ballistics.calibration, ballistics.lr) ----------------------------------


class CalibrationError(InvalidInputError):
    """A calibration that cannot be read, built, or applied to a comparison."""


# --- reports (ballistics.report_pdf) --------------------------------------------------------------


class ReportError(InvalidInputError):
    """A report that cannot be made: the PDF engine (headless Chromium) missing or failing (exit 3)."""
