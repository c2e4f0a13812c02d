"""Correlation requests of 1, 10 and 100 scans against a partner collection of 1,000 cases, end to end.

What it does, exactly:

1. Two lab homes with real keys (UK requester, FR responder; scrypt at its floor so that key
   loading does not dominate), each trusting the other.
2. Simulates ``--firearms`` firearms (``ballistics.synth``). Shot 1 of each is filed in the
   French collection with the store's API (file copied, surface prepared and cached, signature
   stored). The collection is then filled up to ``--collection`` exhibits with the *filler*
   cases of ``benchmarks/bench_search.py``, made at the signature level (random mixtures, turned
   by random angles, of the signatures of shot 1 of ``--filler-firearms`` other simulated
   firearms, never requested; inserted directly into the database, so the vector index takes
   them in on the first search); a filler's prepared surface, for the full comparison, is that
   of its main simulated firearm. Fillers are simulated, not scanned cases.
3. The requests' scans are further shots (2, 3, ...) of the same firearms, written as x3p files,
   so every requested scan has one true match in the collection.
4. For each request size: the UK writes a ``correlation-request`` bundle (``send_request``), the
   French lab imports it (``import_bundles``: verify, prepare and store the partner scans, search
   each against the 1,000 own exhibits, prefilter then full CMC comparison of the
   search's default shortlist of 20 candidates on ``--workers`` processes, LRs, leads, the signed response). Reported: seconds to
   write the request, to import it, of which searching, per request and per scan, and the leads
   found (true matches among them).

    python benchmarks/bench_correlate.py [--sizes 1 10 100] [--collection 1000] [--firearms 10] [--filler-firearms 5] [--workers 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_search import LAB, BenchStore, add_fillers  # noqa: E402

from ballistics import synth  # noqa: E402
from ballistics.clock import now_utc  # noqa: E402
from ballistics.labs import Lab  # noqa: E402
from ballistics.preprocess import prepare  # noqa: E402
from ballistics.scan import save_x3p  # noqa: E402
from ballistics.search import LocalExecutor  # noqa: E402
from ballistics.signature import signature  # noqa: E402
from ballistics.store import Store  # noqa: E402
from exchange import correlate  # noqa: E402
from exchange.correlate import send_request  # noqa: E402
from exchange.importer import import_bundles  # noqa: E402
from exchange.keys import IdentityParameters, KeyProtection, init_identity  # noqa: E402
from exchange.trust import TrustStore  # noqa: E402

PASSPHRASE = b"benchmark passphrase"
FAST = IdentityParameters(protection=KeyProtection(n=2**14, r=8, p=1))


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--collection", type=int, default=1000)
    parser.add_argument("--firearms", type=int, default=10)
    parser.add_argument("--filler-firearms", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    searching = [0.0]
    timed_search = correlate.search

    def search(*a, **kw):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            return timed_search(*a, **kw)
        finally:
            searching[0] += time.perf_counter() - started

    correlate.search = search  # type: ignore[assignment]
    with tempfile.TemporaryDirectory(prefix="bench-correlate-") as tmp:
        root = Path(tmp)
        now = now_utc() - timedelta(minutes=1)
        uk = init_identity(root / "uk", Lab("UK-FSL", "UK lab", "GB"), PASSPHRASE, now=now, parameters=FAST)
        fr = init_identity(root / "fr", Lab("FR-IRCGN", "FR lab", "FR"), PASSPHRASE, now=now, parameters=FAST)
        uk_trust, fr_trust = TrustStore.open(root / "uk"), TrustStore.open(root / "fr")
        uk_trust.trust(fr.card, fr.card.fingerprint, where="bench")
        fr_trust.trust(uk.card, uk.card.fingerprint, where="bench")
        uk_store, fr_store = Store.open(root / "uk"), BenchStore.open(root / "fr")

        started = time.perf_counter()
        everything = synth.generate_firearms(args.firearms + args.filler_firearms, args.seed)
        firearms, others = everything[: args.firearms], everything[args.firearms :]
        for gun in firearms:
            path = save_x3p(synth.fire(gun, 1, args.seed).scan, root / f"{gun.id}-1.x3p")
            fr_store.add_exhibit_scan(path, case_id=f"FR-{gun.id}", exhibit_id="E1", lab=fr.card.lab)
        fr_store.simulated = [prepare(synth.fire(gun, 1, args.seed).scan) for gun in others]
        fr_store.ensure_lab(LAB)
        bases = np.stack([signature(face, fr_store.signature_params) for face in fr_store.simulated])
        held = len(fr_store.exhibits())
        add_fillers(fr_store, bases, held, args.collection - held, rng)
        print(
            f"French collection: {len(fr_store.exhibits())} exhibits ({args.firearms} simulated firearms' shot 1, the rest fillers), "
            f"made in {time.perf_counter() - started:.0f} s"
        )

        shot = 2
        for size in args.sizes:
            scans = []
            for n in range(size):
                gun = firearms[n % len(firearms)]
                case = synth.fire(gun, shot + n // len(firearms), args.seed)
                scans.append(save_x3p(case.scan, root / f"q{size}-{n}-{gun.id}.x3p"))
            shot += -(-size // len(firearms))
            started = time.perf_counter()
            send_request(
                root / "uk",
                uk_store,
                uk,
                uk_trust,
                root / f"request-{size}.bfx",
                recipients=["FR-IRCGN"],
                scans=scans,
                case_id=f"UK-{size}",
            )
            written = time.perf_counter() - started
            searching[0] = 0.0
            started = time.perf_counter()
            report = import_bundles(
                root / "fr",
                fr_store,
                fr,
                fr_trust,
                [root / f"request-{size}.bfx"],
                outbox=root / "outbox",
                executor=LocalExecutor(args.workers),
            )
            imported = time.perf_counter() - started
            [done] = report.correlations
            true = sum(lead.our_case == f"FR-{lead.partner_exhibit.rsplit('-', 1)[-1]}" for lead in done.leads)
            print(
                f"request of {size:>3} scans: written in {written:6.1f} s; imported in {imported:7.1f} s "
                f"({imported / size:5.1f} s per scan), of which searching {searching[0]:7.1f} s ({searching[0] / size:5.1f} s per scan); "
                f"{len(done.leads)} leads, {true} true; collection searched {done.collection_size}"
            )
        uk_store.close()
        fr_store.close()


if __name__ == "__main__":
    run()
