"""The search signature: rotation invariance, same-source above different-source, vectorised scoring."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from conftest import FADUL, WELLER, require_real_scans

from ballistics.cmc import transform
from ballistics.errors import SignatureError
from ballistics.method import SignatureParams
from ballistics.preprocess import BreechFace, prepare
from ballistics.scan import load_scan
from ballistics.signature import signature, signature_bytes, signature_from_bytes, similarity


def face(name: str) -> BreechFace:
    require_real_scans()
    return prepare(load_scan(FADUL / f"Fadul {name}.x3p"))


def turned(f: BreechFace, angle: float) -> BreechFace:
    """The surface rotated about its primer centre by ``angle`` degrees (cmc convention)."""
    side = int(np.ceil(np.hypot(*f.surface.shape))) + 2
    surface = transform(np.asarray(f.surface, np.float32), angle, (0.0, 0.0), (side, side)).astype(np.float64)
    h, w = f.surface.shape
    cx, cy = f.primer_center_px
    dx, dy = cx - (w - 1) / 2, cy - (h - 1) / 2
    a = np.deg2rad(angle)
    centre = ((side - 1) / 2 + np.cos(a) * dx + np.sin(a) * dy, (side - 1) / 2 - np.sin(a) * dx + np.cos(a) * dy)
    return replace(f, surface=surface, primer_center_px=centre)


def test_rotation_is_found_and_leaves_the_score_high() -> None:
    original = face("1-1")
    sig = signature(original)
    for angle in (37.0, 151.5, 290.0):
        score, found = similarity(signature(turned(original, angle)), sig[None])
        assert score[0] > 0.9
        assert min(abs(found[0] - angle) % 360, 360 - abs(found[0] - angle) % 360) < 3.0


def test_same_slide_scores_above_other_slides() -> None:
    query = signature(face("1-1"))
    names = ["1-2", "2-1", "3-1", "4-1", "5-1"]
    scores, _ = similarity(query, np.stack([signature(face(n)) for n in names]))
    assert scores.argmax() == 0 and scores[0] > scores[1:].max() + 0.1


def test_similarity_is_vectorised_and_bounded() -> None:
    sigs = np.stack([signature(face(n)) for n in ("1-1", "1-2", "2-1")])
    together, _ = similarity(sigs[0], sigs)
    one_by_one = [similarity(sigs[0], s[None])[0][0] for s in sigs]
    assert np.allclose(together, one_by_one)
    assert together[0] == pytest.approx(1.0, abs=1e-5) and np.all(np.abs(together) <= 1 + 1e-6)
    assert similarity(sigs[0], sigs[:0])[0].shape == (0,)


def test_signature_bytes_round_trip_and_cache_key() -> None:
    sig = signature(face("2-1"))
    assert np.array_equal(signature_from_bytes(signature_bytes(sig)), sig)
    params = SignatureParams()
    assert params.key({"a": 1}) != params.key({"a": 2}) != replace(params, rings=16).key({"a": 2})


def test_a_surface_off_the_rings_has_no_signature() -> None:
    require_real_scans()
    f = prepare(load_scan(WELLER / "TW01-01.x3p"))
    with pytest.raises(SignatureError, match="too little of the breech face"):
        signature(replace(f, primer_center_px=(-5000.0, -5000.0)))
