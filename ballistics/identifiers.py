"""How figures and pages name what they show: the case and each exhibit."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ballistics.compare import Comparison


@dataclass(frozen=True)
class Identifiers:
    """The case and each exhibit (CASE/EXHIBIT or exhibit numbers; file names only where nothing else is known)."""

    reference: str
    questioned: str
    case: str | None = None

    @classmethod
    def from_comparison(cls, comparison: Comparison) -> Identifiers:
        """The file names the comparison echoes, for a comparison made without case or exhibit numbers."""
        return cls(*(Path(str(side.get("path") or "unnamed scan")).name for side in (comparison.reference, comparison.questioned)))

    def title(self) -> str:
        """``Case C: reference R and questioned Q`` (``Reference R and questioned Q`` without a case)."""
        pair = f"reference {self.reference} and questioned {self.questioned}"
        return f"Case {self.case}: {pair}" if self.case else pair[0].upper() + pair[1:]  # names keep their case
