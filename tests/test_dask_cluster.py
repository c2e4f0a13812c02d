"""A real distributed search: `dask scheduler` and two `dask worker` processes on localhost.

The search runs through the CLI (``ballistics search --dask tcp://127.0.0.1:PORT``) on a small
collection of the committed sample data and must rank exactly as the local process pool does.
A worker killed (SIGKILL) while it compares a candidate must not lose the search: the scheduler
gives its task to the surviving worker. A cluster that does not retry (``allowed-failures`` 0)
must make the search fail with one clean line and the documented exit code. Every process
started here is torn down, and checked gone with psutil.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from conftest import REPO, SAMPLE_DATA

from ballistics.errors import EXIT_INVALID_INPUT
from cli import main

DASK = Path(sys.executable).with_name("dask")
COLLECTION = ["F01-01", "F01-02", "F02-01", "F02-02", "F03-01"]
QUERY = SAMPLE_DATA / "F01-03.x3p"  # a generated case not in the collection; F01-01 and F01-02 are its mates
SHORTLIST = 3
STARTUP_S = 30.0


@dataclass
class Cluster:
    address: str
    scheduler: subprocess.Popen[bytes]
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)


@contextlib.contextmanager
def start_cluster(folder: Path, env_extra: dict[str, str] | None = None) -> Iterator[Cluster]:
    """A scheduler on a free port of 127.0.0.1 and two single-threaded workers (no nanny: one process each)."""
    from distributed import Client

    env = {**os.environ, "PYTHONPATH": str(REPO), **(env_extra or {})}  # workers import this ballistics
    scheduler_file = folder / "scheduler.json"
    log = open(folder / "cluster.log", "wb")  # noqa: SIM115 (closed in the finaliser)
    common: dict = {"env": env, "stdout": log, "stderr": subprocess.STDOUT, "cwd": folder}
    started: list[subprocess.Popen[bytes]] = []
    try:
        scheduler = subprocess.Popen(
            [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(scheduler_file)],
            **common,
        )
        started.append(scheduler)
        deadline = time.monotonic() + STARTUP_S
        address: str | None = None
        while address is None:
            assert scheduler.poll() is None and time.monotonic() < deadline, (folder / "cluster.log").read_text()
            time.sleep(0.1)
            with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):  # not written yet, or half written
                address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        cluster = Cluster(address, scheduler)
        for name in ("w1", "w2"):
            worker = subprocess.Popen(
                [str(DASK), "worker", address, "--name", name, "--nthreads", "1", "--no-nanny", "--no-dashboard"], **common
            )
            started.append(worker)
            cluster.workers[name] = worker
        with Client(address, timeout="10s") as client:
            client.wait_for_workers(2, timeout=STARTUP_S)
        yield cluster
    finally:
        for process in reversed(started):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
        log.close()
        alive = [p.pid for p in started if psutil.pid_exists(p.pid) and psutil.Process(p.pid).status() != psutil.STATUS_ZOMBIE]
        assert not alive, f"cluster processes left running: {alive}"


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("collection")
    for name in COLLECTION:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            args = ["--home", str(home), "db", "add", str(SAMPLE_DATA / f"{name}.x3p"), "--case", name, "--exhibit", "1"]
            assert main([*args, "--calibre", "9mm Luger", "--json"]) == 0
    return home


@pytest.fixture(scope="module")
def local_ranking(collection: Path) -> list[tuple]:
    done = run_search(collection, "--workers", "2")
    assert done.returncode == 0, done.stderr
    return ranking(done.stdout)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with start_cluster(tmp_path_factory.mktemp("cluster")) as started:
        yield started


def search_command(home: Path, *extra: str) -> list[str]:
    args = ["--home", str(home), "search", str(QUERY), "--json", "--shortlist", str(SHORTLIST), "--top", str(SHORTLIST)]
    return [sys.executable, "-m", "cli", *args, *extra]


def run_search(home: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(search_command(home, *extra), env=env, cwd=REPO, capture_output=True, text=True, timeout=300)


def ranking(stdout: str) -> list[tuple]:
    """Candidates, in order, with everything that ranks them: identity, CMC, decision, score, pose."""
    doc = json.loads(stdout)
    return [(c["rank"], c["case"], c["sha256"], c["cmc"], c["decision"], c["score"], c["rotation_deg"]) for c in doc["candidates"]]


def kill_a_busy_worker(cluster: Cluster, search: subprocess.Popen[str]) -> str:
    """SIGKILL the first worker seen computing one of the search's comparisons; its name."""
    from distributed import Client

    with Client(cluster.address, timeout="10s") as client:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and search.poll() is None:
            names = {address: info["name"] for address, info in client.scheduler_info()["workers"].items()}
            busy = [names[address] for address, keys in client.processing().items() if keys and address in names]
            if busy:
                victim = cluster.workers[busy[0]]
                victim.send_signal(signal.SIGKILL)
                victim.wait(timeout=10)
                return busy[0]
            time.sleep(0.05)
    raise AssertionError("no worker was seen computing a comparison of the search")


def test_the_cluster_ranks_as_the_local_pool(collection: Path, local_ranking: list[tuple], cluster: Cluster) -> None:
    assert {r[1] for r in local_ranking[:2]} == {"F01-01", "F01-02"} and len(local_ranking) == SHORTLIST  # the query's mates first
    done = run_search(collection, "--dask", cluster.address)
    assert done.returncode == 0, done.stderr
    assert ranking(done.stdout) == local_ranking


def test_a_worker_killed_mid_search_does_not_lose_it(collection: Path, local_ranking: list[tuple], cluster: Cluster) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with subprocess.Popen(
        search_command(collection, "--dask", cluster.address), env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as search:
        try:
            killed = kill_a_busy_worker(cluster, search)
            out, err = search.communicate(timeout=300)
        finally:
            if search.poll() is None:
                search.kill()
    assert cluster.workers[killed].returncode == -signal.SIGKILL
    assert search.returncode == 0, err
    assert ranking(out) == local_ranking  # the killed worker's comparison was run again by the other one


def test_a_cluster_that_does_not_retry_fails_in_one_line(collection: Path, tmp_path: Path) -> None:
    with start_cluster(tmp_path, {"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"}) as cluster:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        command = search_command(collection, "--dask", cluster.address)
        with subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as search:
            try:
                kill_a_busy_worker(cluster, search)
                out, err = search.communicate(timeout=300)
            finally:
                if search.poll() is None:
                    search.kill()
        assert search.returncode == EXIT_INVALID_INPUT, err
        assert err.startswith(f"error: {cluster.address}: a Dask worker died") and err.count("\n") == 1, err
        assert json.loads(out)["error"]["exit_code"] == EXIT_INVALID_INPUT
