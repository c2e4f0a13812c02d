"""One examiner's workstation, as a process of its own, for tests/test_concurrent_examiners.py.

``python tests/examiner_worker.py PLAN.json`` waits for the plan's start file, then, on the
collection that the home's ``settings.toml`` names (a shared database and scan store), adds
exhibits, records comparisons, searches and imports bundles, in the plan's order. It prints
one JSON document of what each step returned; any exception fails the process.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from exchange_support import PASSPHRASE
from test_records import comparison_dict

from ballistics.labs import Lab
from ballistics.method import CmcParams
from ballistics.records import build_record
from ballistics.scan import load_scan, sha256_file
from ballistics.search import LocalExecutor, SearchParams, search
from ballistics.store import Store
from exchange.audit import AuditLog
from exchange.importer import import_bundles
from exchange.keys import load_identity
from exchange.trust import TrustStore


def main(plan_file: str) -> None:
    plan = json.loads(Path(plan_file).read_text())
    home = Path(plan["home"])
    start = Path(plan["start"])
    while not start.exists():
        time.sleep(0.01)
    store = Store.open(home)  # every worker opens the new database at once: one migration
    lab = Lab(**plan["lab"])
    done: dict[str, list] = {"exhibits": [], "records": [], "search": [], "imports": []}
    for step in plan["order"]:
        if step == "exhibits":
            for path, case, exhibit in plan["exhibits"]:
                result = store.add_exhibit_scan(Path(path), case_id=case, exhibit_id=exhibit, lab=lab)
                done["exhibits"].append({"sha256": result.exhibit.sha256, "added": result.added, "conflict": result.conflict})
        elif step == "comparisons":
            for reference, questioned, case in plan["comparisons"]:
                document = comparison_dict()
                for side, path in (("reference", reference), ("questioned", questioned)):
                    document[side] = {"path": path, "sha256": sha256_file(Path(path))}
                record = build_record(
                    document, lab=lab, case_id=case, exhibits=(Path(reference).stem, Path(questioned).stem), examiner={"name": plan["name"]}
                )
                faces = (store.prepared(document["reference"]["sha256"]), store.prepared(document["questioned"]["sha256"]))
                with store.transaction() as conn:
                    comparison_id = store.add_comparison(document, Path(reference), Path(questioned), faces=faces, conn=conn)
                    store.add_record(record, comparison_id=comparison_id, conn=conn)
                done["records"].append(record["record_id"])
        elif step == "search":
            params = SearchParams(top=3, shortlist=1, cmc=CmcParams(full_circle=False, fixed_window_deg=3.0))
            result = search(store, load_scan(Path(plan["search"])), params, LocalExecutor(workers=1))
            done["search"] = [hit.exhibit.sha256 for hit in result.candidates]
        elif step == "imports":
            identity = load_identity(home, PASSPHRASE)
            report = import_bundles(home, store, identity, TrustStore.open(home), [Path(p) for p in plan["bundles"]], audit=AuditLog(home))
            done["imports"] = [{"path": str(o.path), "status": o.status, "reason": o.reason} for o in report.outcomes]
    store.close()
    print(json.dumps(done))


if __name__ == "__main__":
    main(sys.argv[1])
