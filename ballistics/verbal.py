"""Verbal equivalents of likelihood ratios on a published scale.

The ENFSI Guideline for Evaluative Reporting in Forensic Science (European Network of Forensic
Science Institutes, 2015, section 2.4 and its table of verbal equivalents) ties each verbal
expression to a range of LR values: 2-10 weak support, 10-100 moderate, 100-1,000 moderately
strong, 1,000-10,000 strong, 10,000-1,000,000 very strong, 1,000,000 and above extremely strong,
and an LR of 1 supports neither proposition. An LR below 1 is read on the same scale for the
alternative proposition (1/LR). Values between 1 and 2 (and 1/2 and 1), which the table does not
list, are read as supporting neither proposition here: the guideline's first step starts at 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

SCALE_NAME = "ENFSI Guideline for Evaluative Reporting in Forensic Science (2015), verbal equivalents"
Category = Literal["neutral", "weak", "moderate", "moderately strong", "strong", "very strong", "extremely strong"]
#: Lower edges of each category, as log10 of LR (or of 1/LR for the alternative proposition).
_EDGES: tuple[tuple[float, Category], ...] = (
    (6.0, "extremely strong"),
    (4.0, "very strong"),
    (3.0, "strong"),
    (2.0, "moderately strong"),
    (1.0, "moderate"),
    (math.log10(2.0), "weak"),
)
CATEGORIES: tuple[Category, ...] = ("neutral", *(name for _, name in reversed(_EDGES)))


@dataclass(frozen=True)
class VerbalEquivalent:
    """One LR in words: the category, which proposition it supports, and the sentence."""

    category: Category
    supports: Literal["same source", "different sources", "neither"]
    statement: str

    def to_dict(self) -> dict[str, str]:
        return {"scale": SCALE_NAME, "category": self.category, "supports": self.supports, "statement": self.statement}


def verbal_equivalent(log10_lr: float) -> VerbalEquivalent:
    """The ENFSI 2015 verbal equivalent of ``log10_lr`` (base-10 logarithm of the LR)."""
    strength = abs(log10_lr)
    category: Category = next((name for edge, name in _EDGES if strength >= edge), "neutral")
    if category == "neutral":
        return VerbalEquivalent("neutral", "neither", "The findings support neither proposition over the other (the LR is close to 1).")
    if log10_lr > 0:
        return VerbalEquivalent(
            category,
            "same source",
            f"The findings provide {category} support for the proposition that the cartridge cases were fired by the same "
            "firearm, relative to the proposition that they were fired by different firearms.",
        )
    return VerbalEquivalent(
        category,
        "different sources",
        f"The findings provide {category} support for the proposition that the cartridge cases were fired by different "
        "firearms, relative to the proposition that they were fired by the same firearm.",
    )
