"""One firing-pin vocabulary: the collection, the command line, the record schema, the classifier and the simulator agree."""

from __future__ import annotations

import json
from pathlib import Path

from ballistics import synth
from ballistics.characteristics import MEASURED_SHAPES, ClassCharacteristics, FiringPinShape
from ballistics.firing_pin import classify_shape
from cli import main

REPO = Path(__file__).resolve().parents[1]


def test_the_record_schema_uses_the_same_vocabulary() -> None:
    schema = json.loads((REPO / "docs" / "match-record.schema.json").read_text())
    enum = schema["properties"]["class_characteristics"]["properties"]["firing_pin_shape"]["enum"]
    assert enum == [shape.value for shape in FiringPinShape]


def test_the_classifier_and_the_simulator_speak_the_measured_shapes() -> None:
    import numpy as np

    disc = np.hypot(*np.meshgrid(np.arange(-40, 41), np.arange(-40, 41))) < 30
    assert classify_shape(disc)[0] is FiringPinShape.HEMISPHERICAL
    assert {gun.firing_pin_shape for gun in synth.generate_firearms(6, 2026)} == set(MEASURED_SHAPES)


def test_characteristics_state_only_what_is_recorded() -> None:
    assert ClassCharacteristics("9mm Luger", FiringPinShape.ELLIPTICAL).to_dict() == {
        "calibre": "9mm Luger",
        "firing_pin_shape": "elliptical",
    }
    assert ClassCharacteristics().to_dict() == {}


def test_the_command_line_refuses_a_shape_outside_the_vocabulary(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["db", "list", "--firing-pin-shape", "triangular"]) == 2
    assert "triangular" in capsys.readouterr().err
