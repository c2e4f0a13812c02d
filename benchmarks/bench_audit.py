"""What the audit log costs a command: append, head signature, and a full verify.

Run by hand: ``python benchmarks/bench_audit.py [events]`` (default 2,000; about ten seconds).
Baseline: the same line bytes appended to a plain file with ``write`` + ``fsync`` and nothing
else, so the ratio is what locking, reading back the previous line and hashing add. Heads are
signed every 10 events (a command usually appends one to a few events and one head).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from exchange_support import make_lab

from exchange.audit import AuditLog
from exchange.audit_verify import verify_log

DETAILS = {
    "reference": {"path": "K1.x3p", "sha256": "a" * 64},
    "questioned": {"path": "Q1.x3p", "sha256": "b" * 64},
    "decision": "identification",
    "cmc": 14,
    "cmc_original": 14,
    "cmc_high": 16,
    "rule": "original",
}


def main(events: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        lab = make_lab(Path(tmp), "UK-FSL")
        log = AuditLog(lab.home)
        log.certify_key(lab.identity)
        log.append("comparison", DETAILS)
        sample = log.path.read_bytes().split(b"\n")[-2] + b"\n"

        fd = os.open(Path(tmp) / "plain.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        start = time.perf_counter()
        for _ in range(events):
            os.write(fd, sample)
            os.fsync(fd)
        baseline = (time.perf_counter() - start) / events
        os.close(fd)

        append = head = 0.0
        for i in range(events):
            start = time.perf_counter()
            log.append("comparison", DETAILS)
            append += time.perf_counter() - start
            if i % 10 == 9:
                start = time.perf_counter()
                log.sign_head()
                head += time.perf_counter() - start
        append, head = append / events, head / (events // 10)

        start = time.perf_counter()
        report = verify_log(lab.home)
        verify = time.perf_counter() - start
        size = log.path.stat().st_size
    assert report.intact
    print(f"log: {report.lines} lines ({report.events} events, {report.heads} heads), {size / 1e6:.1f} MB, {len(sample)} B per event line")
    print(f"baseline write+fsync:  {baseline * 1e3:.2f} ms per line")
    print(f"append:                {append * 1e3:.2f} ms per event   ratio {append / baseline:.2f}")
    print(f"sign head:             {head * 1e3:.2f} ms per head    ratio {head / baseline:.2f}")
    print(f"verify whole log:      {verify:.2f} s ({report.lines / verify:,.0f} lines/s)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
