"""The conformance vectors of tests/vectors/ (index.json) through the project's own reader.

Every vector's outcome must be the one the index states: accepted with exactly the listed files
(and ``extract_to`` writing those bytes), or refused with the listed error class and exit code.
The vectors are also regenerated into a copy of the folder, which must come out byte for byte
identical (tests/vectors/make_vectors.py reuses the committed HPKE and ML-DSA randomness).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from ballistics.errors import BallisticsError
from ballistics.records import MAX_RECORD_BYTES, record_bytes
from exchange.canonical import parse_time
from exchange.card import KeyCard, Revocation
from exchange.errors import MalformedBundleError
from exchange.keys import Identity, load_identity
from exchange.manifest import DOMAIN_MANIFEST
from exchange.reader import open_bundle
from exchange.sent import record_sent
from exchange.trust import TrustStore

VECTORS = Path(__file__).parent / "vectors"
INDEX = json.loads((VECTORS / "index.json").read_text(encoding="utf-8"))


def _card(lab: str) -> KeyCard:
    return KeyCard.from_dict(json.loads((VECTORS / INDEX["keys"][lab]["card"]).read_bytes()), where=lab)


@cache
def _identity(lab: str, root: Path) -> Identity:
    home = root / f"home-{lab}"
    (home / "keys").mkdir(parents=True)
    shutil.copyfile(VECTORS / INDEX["keys"][lab]["identity"], home / "keys" / "identity.json")
    (home / "keys" / "identity.json").chmod(0o600)  # a private-key file others may read is refused
    return load_identity(home, INDEX["keys"][lab]["passphrase"].encode("utf-8"))


def _trust(vector: dict[str, Any], home: Path) -> TrustStore:
    trust = TrustStore.open(home)
    for lab in vector["trust"] + [lab for lab in vector["revoked"] if lab not in vector["trust"]]:
        card = _card(lab)
        trust.trust(card, card.fingerprint, where=lab, now=parse_time(vector["now"], where="index"))
    for lab in vector["revoked"]:
        revocation = Revocation.from_dict(json.loads((VECTORS / INDEX["keys"][lab]["revocation"]).read_bytes()), where=lab)
        trust.revoke(revocation, where=lab)
    return trust


def _record_sent(vector: dict[str, Any], identity: Identity, root: Path) -> None:
    """What the reader sent (``sent``): each bundle's manifest, as its record of exports holds it.

    The manifest is read by the bundle's first recipient; the reader, its sender, signs it as it
    did when sending (the hybrid signature is randomised, so it is signed again, not copied).
    """
    for name in vector.get("sent", []):
        sent = next(v for v in INDEX["vectors"] if v["file"] == name and v["expect"] == "accept")
        home = root / f"trust-{sent['reader']}"
        verified = open_bundle(
            VECTORS / name, _identity(sent["reader"], root), _trust(sent, home), now=parse_time(sent["now"], where="index")
        )
        record_sent(identity.home, verified.manifest, identity.signing.sign(DOMAIN_MANIFEST, verified.manifest.encoded))


@pytest.fixture(scope="module")
def key_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("vector-keys")


@pytest.mark.parametrize("vector", INDEX["vectors"], ids=[v["name"] for v in INDEX["vectors"]])
def test_the_project_reader_agrees_with_the_index(vector: dict[str, Any], key_root: Path, tmp_path: Path) -> None:
    path = VECTORS / vector["file"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == vector["sha256"]
    identity = _identity(vector["reader"], key_root)
    _record_sent(vector, identity, key_root)
    trust = _trust(vector, tmp_path / "home")
    now = parse_time(vector["now"], where="index")
    if vector["expect"] == "accept":
        verified = open_bundle(path, identity, trust, now=now)
        got = [{"name": f.name, "kind": f.kind, "size": f.size, "sha256": f.sha256} for f in verified.files]
        assert got == vector["files"]
        out = verified.extract_to(tmp_path / "out")
        for expected in vector["files"]:
            data = (out / expected["name"]).read_bytes()
            assert (len(data), hashlib.sha256(data).hexdigest()) == (expected["size"], expected["sha256"])
        return
    with pytest.raises(BallisticsError) as caught:
        open_bundle(path, identity, trust, now=now)
    names = [cls.__name__ for cls in type(caught.value).__mro__]
    assert vector["error"] in names, f"{vector['name']}: {type(caught.value).__name__}: {caught.value}"
    assert caught.value.exit_code == vector["exit"]


def test_every_rule_of_section_5_has_a_vector_or_is_said_not_to() -> None:
    steps = {v["step"] for v in INDEX["vectors"] if v["expect"] == "refuse"}
    not_covered = {int(key.split()[0]) for key in INDEX["not_covered"]}
    assert set(range(1, 15)) <= steps | not_covered
    assert {v["exit"] for v in INDEX["vectors"] if v["expect"] == "refuse"} == {3, 4}
    assert len({v["name"] for v in INDEX["vectors"]}) == len(INDEX["vectors"])


def test_regenerating_the_vectors_gives_the_same_bytes(tmp_path: Path) -> None:
    from vectors.make_vectors import main

    out = tmp_path / "vectors"
    shutil.copytree(VECTORS, out, ignore=shutil.ignore_patterns("__pycache__", "*.py", "*.md"))
    main(out)
    committed = sorted(p.relative_to(VECTORS) for p in VECTORS.rglob("*") if p.is_file() and p.suffix in {".bfx", ".json"})
    made = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file() and p.suffix in {".bfx", ".json"})
    assert made == committed
    for name in committed:
        assert (out / name).read_bytes() == (VECTORS / name).read_bytes(), name


@pytest.mark.parametrize("size", [MAX_RECORD_BYTES, MAX_RECORD_BYTES + 1], ids=["at-the-cap", "one-over"])
def test_a_record_of_exactly_4_mib_is_accepted_and_one_byte_more_refused_by_both_readers(size: int, key_root: Path, tmp_path: Path) -> None:
    """The 4 MiB record cap with the bytes carried, built here rather than committed (section 8).

    The committed vectors pin the cap from the declared size (record-size-at-limit passes step 7,
    record-size-over-limit is refused there); this builds the bundles those vectors stand for,
    with a record of exactly 4 MiB (valid, of the signing lab) and one byte more, and requires
    the project's reader and the minimal reader to accept the first with its bytes and to refuse
    the second at step 7.
    """
    from minimal_reader import Reader, Refused, load_card, load_private, read_bundle
    from vectors import make_vectors

    doc = make_vectors.record_document()
    doc["comparison"]["method"]["parameters"]["padding"] = ""
    doc["comparison"]["method"]["parameters"]["padding"] = "x" * (size - len(record_bytes(doc)))
    data = record_bytes(doc)
    assert len(data) == size
    record = make_vectors.entry("records/VECTOR-4MIB.json", "record", data)
    idents = {role: make_vectors.identity(role) for role in make_vectors.LABS}
    path = tmp_path / "record.bfx"
    path.write_bytes(make_vectors.build(path, make_vectors.Spec([record]), idents))
    circumstances = {"trust": ["UK-VECTOR"], "revoked": [], "now": INDEX["vectors"][0]["now"]}
    now = parse_time(circumstances["now"], where="index")
    keys = INDEX["keys"]["FR-VECTOR"]
    minimal = Reader(
        [load_private(json.loads((VECTORS / keys["identity"]).read_bytes()), keys["passphrase"])],
        {card.key_id: card for card in [load_card(json.loads((VECTORS / INDEX["keys"]["UK-VECTOR"]["card"]).read_bytes()))]},
    )

    def opened() -> Any:
        return open_bundle(path, _identity("FR-VECTOR", key_root), _trust(circumstances, tmp_path / "home"), now=now)

    if size == MAX_RECORD_BYTES:
        verified = opened()
        assert [(f.name, f.size) for f in verified.files] == [("records/VECTOR-4MIB.json", size)]
        assert verified.records[0]["record_id"] == doc["record_id"]
        assert read_bundle(path.read_bytes(), minimal, now) == [(record[0], data)]
        return
    with pytest.raises(MalformedBundleError, match=f"exceeds {MAX_RECORD_BYTES}"):
        opened()
    with pytest.raises(Refused) as caught:
        read_bundle(path.read_bytes(), minimal, now)
    assert (caught.value.exit, caught.value.step, caught.value.rule) == (3, 7, "manifest-form")
