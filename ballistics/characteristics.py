"""Class characteristics of a cartridge case, as filed on an exhibit and stated in a match record.

Class characteristics (calibre, firing-pin shape, ejector position) narrow the firearms that
could have fired a case; the individual marks then decide. The firing-pin vocabulary here is
the one the collection, the command line, the match-record schema
(``schemas/match-record.schema.json``), the firing-pin classifier and the simulator share.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class FiringPinShape(StrEnum):
    """The outline of the firing-pin impression (values as written in records and the database)."""

    HEMISPHERICAL = "hemispherical"
    ELLIPTICAL = "elliptical"
    RECTANGULAR = "rectangular"
    CIRCULAR = "circular"
    OTHER = "other"
    UNKNOWN = "unknown"


#: The outlines the impression is measured as (:func:`ballistics.firing_pin.classify_shape`) and
#: that the simulator makes; the others are an examiner's words for what falls outside them.
MEASURED_SHAPES = (FiringPinShape.HEMISPHERICAL, FiringPinShape.ELLIPTICAL, FiringPinShape.RECTANGULAR)


@dataclass(frozen=True)
class ClassCharacteristics:
    """What an exhibit's cartridge case shows of its firearm's class; None where not recorded."""

    calibre: str | None = None
    firing_pin_shape: FiringPinShape | None = None
    ejector_position: str | None = None

    def to_dict(self) -> dict[str, str]:
        """The recorded ones, as the match record's ``class_characteristics`` states them."""
        recorded = (("calibre", self.calibre), ("firing_pin_shape", self.firing_pin_shape), ("ejector_position", self.ejector_position))
        return {key: str(value) for key, value in recorded if value}
