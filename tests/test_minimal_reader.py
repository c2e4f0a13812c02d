"""The minimal reader of tests/minimal_reader.py (written from the docs alone) over every conformance vector.

It must give the outcome, exit class and step that tests/vectors/index.json states on every
vector. Like the reader, this test uses no module of the project.
"""

from __future__ import annotations

import ast
import hashlib
import json
import sys
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from minimal_reader import Reader, Refused, load_card, load_private, read_bundle, revoked_key_id

VECTORS = Path(__file__).parent / "vectors"
INDEX = json.loads((VECTORS / "index.json").read_text(encoding="utf-8"))


def _json(relative: str) -> Any:
    return json.loads((VECTORS / relative).read_bytes())


@cache
def _private(lab: str):
    keys = INDEX["keys"][lab]
    return load_private(_json(keys["identity"]), keys["passphrase"])


def _reader(vector: dict[str, Any]) -> Reader:
    cards = {lab: load_card(_json(INDEX["keys"][lab]["card"])) for lab in {*vector["trust"], *vector["revoked"]}}
    revoked = {revoked_key_id(_json(INDEX["keys"][lab]["revocation"]), cards[lab]) for lab in vector["revoked"]}
    return Reader([_private(vector["reader"])], {card.key_id: card for card in cards.values()}, revoked, _sent(vector))


def _sent(vector: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What the reader sent (``sent``): each bundle's manifest, as its recipient reads it."""
    manifests: list[dict[str, Any]] = []
    for name in vector.get("sent", []):
        sent = next(v for v in INDEX["vectors"] if v["file"] == name and v["expect"] == "accept")
        now = datetime.strptime(sent["now"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        read_bundle((VECTORS / name).read_bytes(), _reader(sent), now, manifests)
    return {m["bundle_id"]: m for m in manifests}


@pytest.mark.parametrize("vector", INDEX["vectors"], ids=[v["name"] for v in INDEX["vectors"]])
def test_the_minimal_reader_agrees_with_the_index(vector: dict[str, Any]) -> None:
    data = (VECTORS / vector["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == vector["sha256"]
    now = datetime.strptime(vector["now"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    if vector["expect"] == "accept":
        files = read_bundle(data, _reader(vector), now)
        got = [{"name": e["name"], "kind": e["kind"], "size": len(c), "sha256": hashlib.sha256(c).hexdigest()} for e, c in files]
        assert got == vector["files"]
        return
    with pytest.raises(Refused) as caught:
        read_bundle(data, _reader(vector), now)
    assert (caught.value.exit, caught.value.step, caught.value.rule) == (vector["exit"], vector["step"], vector["rule"]), str(caught.value)


def test_the_private_key_files_open_to_the_seeds_of_the_index() -> None:
    for lab, keys in INDEX["keys"].items():
        assert _private(lab).card.key_id.hex() == keys["key_id"]


def test_the_minimal_reader_imports_only_cryptography_and_the_standard_library() -> None:
    tree = ast.parse((Path(__file__).parent / "minimal_reader.py").read_text())
    roots = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    roots |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert roots - {"cryptography", "__future__"} <= set(sys.stdlib_module_names), roots
