"""Start-up time of the bookkeeping commands against a bare interpreter, in the same run.

Each command is started as a fresh process (as an examiner types it) ``--runs`` times; the
median wall time is reported beside the median of ``python -c pass`` measured in the same
loop, and the ratio. The cumulative import time of the CLI module (``python -X importtime``)
says where the rest goes.

    python benchmarks/bench_startup.py --runs 15
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = (("--version",), ("--help",), ("keys", "list"), ("db", "list"), ("audit", "show"))


def wall(args: list[str], home: str) -> float:
    started = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True, env={"BALLISTICS_HOME": home, "PATH": "/usr/bin:/bin", "COLUMNS": "80"})
    return time.perf_counter() - started


def import_time_ms(module: str) -> float:
    """Cumulative import time of ``module`` (milliseconds), from ``python -X importtime``."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], check=True, capture_output=True, text=True)
    line = next(line for line in done.stderr.splitlines() if line.rstrip().endswith(f"| {module}"))
    return int(line.split("|")[1]) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    cli = str(Path(__file__).resolve().parents[1] / "cli.py")
    with tempfile.TemporaryDirectory() as home:
        sample = Path(cli).parent / "sample_data" / "F01-01.x3p"  # one exhibit and one logged event to list
        subprocess.run(
            [sys.executable, cli, "--home", home, "db", "add", str(sample), "--case", "C1", "--exhibit", "K1"],
            check=True,
            capture_output=True,
        )
        times: dict[str, list[float]] = {"python -c pass": []} | {" ".join(c): [] for c in COMMANDS}
        for _ in range(runs):
            times["python -c pass"].append(wall([sys.executable, "-c", "pass"], home))
            for command in COMMANDS:
                times[" ".join(command)].append(wall([sys.executable, cli, *command], home))
    baseline = statistics.median(times["python -c pass"])
    print(f"{'command':<16} {'median s':>9} {'max s':>7} {'x bare python':>14}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<16} {median:9.3f} {max(values):7.3f} {median / baseline:14.1f}")
    print(f"import cli: {import_time_ms('cli'):.0f} ms cumulative (python -X importtime)")


if __name__ == "__main__":
    main()
