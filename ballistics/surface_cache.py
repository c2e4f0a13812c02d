"""The cached working surfaces of the collection: one ``.npz`` per scan and preprocessing.

Plain arrays and JSON (no pickles, so a cache file cannot run code), written atomically. Kept
apart from :mod:`ballistics.store` so that the collection's bookkeeping (listing, showing,
removing exhibits) does not load NumPy.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, cast

import numpy as np

from ballistics.errors import StoreError
from ballistics.files import PRIVATE_FILE_MODE, write_atomic
from ballistics.firing_pin import FiringPinImpression
from ballistics.method import PreprocessParams
from ballistics.preprocess import BreechFace


def save_prepared(face: BreechFace, path: Path) -> None:
    """The working surface as an ``.npz`` of plain arrays and JSON (no pickles), atomically."""
    meta: dict[str, Any] = {
        "spacing_m": face.spacing_m,
        "mode": face.mode,
        "primer_center_px": face.primer_center_px,
        "primer_radius_px": face.primer_radius_px,
        "firing_pin": None,
        "kind": face.kind,
    }
    arrays: dict[str, np.ndarray] = {"surface": np.asarray(face.surface, np.float32)}
    if face.firing_pin is not None:
        fp = face.firing_pin
        meta["firing_pin"] = {
            "center_px": list(fp.center_px),
            "radius_px": fp.radius_px,
            "extent_px": fp.extent_px,
            "shape": fp.shape,
            "axis_ratio": fp.axis_ratio,
            "rectangularity": fp.rectangularity,
            "spacing_m": fp.spacing_m,
        }
        arrays["firing_pin_patch"] = np.asarray(fp.patch)
    buffer = io.BytesIO()
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez_compressed(buffer, **cast(dict[str, Any], arrays))
    write_atomic(path, buffer.getvalue(), PRIVATE_FILE_MODE)


def load_prepared(path: Path, params: PreprocessParams) -> BreechFace:
    """The working surface saved by :func:`save_prepared`, with the parameters it was prepared with."""
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        surface = data["surface"].astype(np.float64)
        patch = data["firing_pin_patch"] if "firing_pin_patch" in data.files else None
    fp = meta["firing_pin"]
    if fp is not None and patch is None:
        raise StoreError(path, "cached surface names a firing pin but holds no patch; delete the cache file")
    firing_pin = (
        None
        if fp is None or patch is None
        else FiringPinImpression(
            center_px=tuple(fp["center_px"]),
            radius_px=fp["radius_px"],
            extent_px=fp["extent_px"],
            shape=fp["shape"],
            axis_ratio=fp["axis_ratio"],
            rectangularity=fp["rectangularity"],
            patch=patch,
            spacing_m=fp["spacing_m"],
        )
    )
    centre = meta["primer_center_px"]
    return BreechFace(
        surface=surface,
        spacing_m=meta["spacing_m"],
        mode=meta["mode"],
        primer_center_px=tuple(centre) if centre else None,
        primer_radius_px=meta["primer_radius_px"],
        firing_pin=firing_pin,
        params=params,
        kind=meta.get("kind", "topography"),  # caches written before the kind was kept hold topographies
    )
