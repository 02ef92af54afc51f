"""Many worker processes on one PostgreSQL database (spec §8.7-§8.9), with real
processes: ``trexec worker`` subprocesses, SIGKILL, SIGSTOP and a server restart.

Proofs: the committed ``log`` of every instance lists each of its steps exactly
once (a stale outcome applied after fencing would repeat one); the machines
(``postgres_machines.py``) log every step execution and any moment two processes
ran a step of the same instance at once (an advisory lock per instance).
"""

from __future__ import annotations

import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
import trio
from postgres_machines import Chaos, Keyed, Steps3, Trail
from stores import PG_URL, drop_schema

from trexec import durable

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

HERE = pathlib.Path(__file__).parent
TREXEC = str(pathlib.Path(sys.executable).with_name("trexec"))


class Workers:
    """``trexec worker`` subprocesses on one schema; their stderr goes to files."""

    def __init__(self, url: str, tmp: pathlib.Path, log: pathlib.Path, *args: str) -> None:
        self.url, self.tmp, self.args = url, tmp, args
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
            "TREXEC_TEST_LOG": str(log),
            "TREXEC_TEST_CHECK_URL": PG_URL,
            "TREXEC_TEST_PEAKS": f"peaks_{uuid.uuid4().hex[:10]}",
        }
        self.procs: list[subprocess.Popen[bytes]] = []
        self.started = 0

    def start(self) -> subprocess.Popen[bytes]:
        self.started += 1
        err = open(self.tmp / f"worker-{self.started}.err", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [TREXEC, "worker", "--store", self.url, "--import", "postgres_machines",
             "--poll-interval", "0.1", *self.args],
            env=self.env, stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
        err.close()
        self.procs.append(proc)
        return proc

    def live(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.procs if p.poll() is None]

    def stop_all(self) -> None:
        for p in self.live():
            p.send_signal(signal.SIGCONT)
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def stderr(self) -> str:
        return "".join(f.read_text() for f in sorted(self.tmp.glob("worker-*.err")))


@contextmanager
def workers_on(schema: str, tmp: pathlib.Path, *args: str) -> Iterator[Workers]:
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    workers = Workers(url, tmp, tmp / "steps.log", *args)
    try:
        yield workers
    finally:
        workers.stop_all()


async def all_instances(engine: durable.Engine) -> list[durable.Instance]:
    found: list[durable.Instance] = []
    while page := await engine.list(limit=1000, after_id=found[-1].id if found else None):
        found += page
    return found


async def wait_until_done(engine: durable.Engine, count: int, timeout: float) -> None:
    with trio.fail_after(timeout):
        while True:
            done = [i for i in await all_instances(engine) if i.status == "done"]
            if len(done) >= count:
                return
            await trio.sleep(0.25)


def step_runs(log: pathlib.Path) -> tuple[Counter[tuple[int, str]], list[str], set[int]]:
    runs: Counter[tuple[int, str]] = Counter()
    overlaps, pids = [], set()
    for line in log.read_text().splitlines():
        kind, id_, step, *rest = line.split()
        if kind == "run":
            runs[(int(id_), step)] += 1
            pids.add(int(rest[-1]))
        else:
            overlaps.append(line)
    return runs, overlaps, pids


@pytest.fixture
async def schema() -> object:
    name = f"test_dist_{uuid.uuid4().hex[:10]}"
    try:
        yield name
    finally:
        await trio.to_thread.run_sync(drop_schema, name)


async def test_worker_processes_run_every_step_exactly_once(schema: str, tmp_path: pathlib.Path):
    n = 300
    async with (
        durable.open_store(PG_URL, schema=schema) as store,
        durable.open_engine(store, workers=0) as engine,
    ):
        ids = [await engine.insert(Steps3, Trail()) for _ in range(n)]
        with workers_on(schema, tmp_path, "--batch-size", "8") as workers:
            for _ in range(3):
                workers.start()
            await wait_until_done(engine, n, timeout=60)
        instances = {i.id: i for i in await all_instances(engine)}
    assert all(instances[i].result == {"log": ["start", "middle", "finish"]} for i in ids)
    runs, overlaps, pids = step_runs(tmp_path / "steps.log")
    assert overlaps == []
    assert set(runs.values()) == {1} and len(runs) == 3 * n  # no step ran twice
    assert len(pids) > 1  # the work was shared


async def _mid_step(workers: Workers, log: pathlib.Path) -> subprocess.Popen[bytes]:
    """A live worker that is running a step now (a ``run`` line without its ``end``)."""
    with trio.fail_after(30):
        while True:
            open_runs: set[tuple[str, str]] = set()
            for line in log.read_text().splitlines():
                kind, id_, _key, attempt, pid = line.split()
                (open_runs.add if kind == "run" else open_runs.discard)((f"{id_}/{attempt}", pid))
            busy = {int(pid) for _, pid in open_runs}
            for proc in workers.live():
                if proc.pid in busy:
                    return proc
            await trio.sleep(0.01)


async def test_a_concurrency_limit_holds_across_processes_and_a_kill(
    schema: str, tmp_path: pathlib.Path
):
    """spec §11.2: 4 worker processes, 8 keys, limit 2: never more than 2
    instances of a key run at once (each holds one of its key's 2 advisory-lock
    slots); a worker SIGKILLed mid-step frees its slots once the reaper
    reclaims its leases, and everything finishes."""
    n, keys = 96, 8
    with workers_on(schema, tmp_path, "--batch-size", "4", "--lease", "2") as workers:
        peaks = workers.env["TREXEC_TEST_PEAKS"]
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"CREATE TABLE {peaks} (key text PRIMARY KEY, peak int NOT NULL)")
        try:
            async with (
                durable.open_store(PG_URL, schema=schema) as store,
                durable.open_engine(store, workers=0) as engine,
            ):
                specs = [
                    durable.InsertSpec(
                        Keyed, {"key": f"k{i % keys}", "seconds": 0.2},
                        concurrency_key=f"k{i % keys}",
                    )
                    for i in range(n)
                ]  # fmt: skip
                await engine.insert_many(specs)
                for _ in range(4):
                    workers.start()
                log = tmp_path / "steps.log"
                with trio.fail_after(30):
                    while not log.exists() or len(log.read_text().splitlines()) < 24:
                        await trio.sleep(0.05)
                victim = await _mid_step(workers, log)
                victim.kill()  # SIGKILL mid-step: its slots come back through the reaper
                await wait_until_done(engine, n, timeout=90)
                instances = await all_instances(engine)
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                found = dict(conn.execute(f"SELECT key, peak FROM {peaks}").fetchall())
        finally:
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f"DROP TABLE IF EXISTS {peaks}")
    lines = log.read_text().splitlines()
    assert [line for line in lines if line.startswith("over")] == []
    assert found and max(found.values()) == 2 and len(found) == keys
    assert all(i.status == "done" for i in instances) and len(instances) == n
    killed = {int(line.split()[1]) for line in lines if line.endswith(f" {victim.pid}")}
    reclaimed = [i for i in instances if i.id in killed and i.attempt > 1]
    assert all(line.split()[0] in ("run", "end") for line in lines)
    assert reclaimed  # the victim held slots when it died; the reaper returned them


async def test_chaos_killed_and_paused_workers_lose_nothing(schema: str, tmp_path: pathlib.Path):
    """4 workers; every half second one is SIGKILLed and restarted, or paused
    (SIGSTOP) past its lease and resumed, so that its outcomes arrive stale."""
    parents = 2000
    rng = random.Random(6)
    async with (
        durable.open_store(PG_URL, schema=schema) as store,
        durable.open_engine(store, workers=0) as engine,
    ):
        ids: list[int] = []

        async def insert(count: int) -> None:
            for _ in range(count):
                id_ = await engine.insert(Chaos, Trail())
                ids.append(id_)
                if id_ % 2 == 0:  # half the signals arrive before the instance parks
                    await engine.signal(id_, "go")

        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(insert, parents // 4)
        args = ("--lease", "2", "--workers", "8", "--batch-size", "16", "--grace", "0.5")
        with workers_on(schema, tmp_path, *args) as workers:
            for _ in range(4):
                workers.start()
            signalled: set[int] = {i for i in ids if i % 2 == 0}
            kills = pauses = 0

            async def pause(victim: subprocess.Popen[bytes]) -> None:
                victim.send_signal(signal.SIGSTOP)
                await trio.sleep(2.5)  # past its 2 s lease: others reclaim its steps
                victim.send_signal(signal.SIGCONT)

            async with trio.open_nursery() as nursery:
                with trio.fail_after(85):
                    while True:
                        # Twice a second, kills and pauses in turn: the workload
                        # finishes in ~10 s, and each kind must happen often.
                        await trio.sleep(0.5)
                        victim = rng.choice(workers.live())
                        if (kills + pauses) % 2 == 0:
                            victim.kill()
                            victim.wait()
                            workers.start()
                            kills += 1
                        else:
                            nursery.start_soon(pause, victim)
                            pauses += 1
                        instances = await all_instances(engine)
                        for i in instances:
                            if i.status == "awaiting" and i.id not in signalled:
                                await engine.signal(i.id, "go")
                                signalled.add(i.id)
                        if sum(i.status == "done" for i in instances) == 3 * parents:
                            break
        instances = {i.id: i for i in await all_instances(engine)}
    bad = [i for i in instances.values() if i.status != "done"]
    assert bad == []
    for id_ in ids:
        assert instances[id_].result == {"log": ["start", "gathered", "finish"]}
    runs, overlaps, _ = step_runs(tmp_path / "steps.log")
    # A paused worker's step overlaps the one that reclaimed it (its lease was no
    # longer live): fencing, not exclusion, keeps that outcome out.
    stale = workers.stderr().count("its lease was lost")
    print(f"chaos: {kills} kills, {pauses} pauses; {sum(runs.values())} step runs for"
          f" {len(runs)} steps; {len(overlaps)} overlaps after a pause; {stale} stale"
          " outcomes rejected by fencing")  # fmt: skip
    assert kills >= 4 and pauses >= 4  # the chaos really happened, both kinds
    assert stale > 0  # and fencing really rejected outcomes of lost leases


def _pg_restart() -> None:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip


def _pg_ready() -> bool:
    try:
        with psycopg.connect(PG_URL, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.OperationalError:
        return False


@pytest.mark.skipif(
    not shutil.which("pg_ctlcluster") or not os.path.isdir("/etc/postgresql"),
    reason="needs a local pg_ctlcluster-managed server",
)
async def test_a_server_restart_mid_run_loses_nothing(schema: str, tmp_path: pathlib.Path):
    n = 300
    async with (
        durable.open_store(PG_URL, schema=schema) as store,
        durable.open_engine(store, workers=0) as engine,
    ):
        ids = [await engine.insert(Steps3, Trail()) for _ in range(n)]
        with workers_on(schema, tmp_path, "--batch-size", "4", "--workers", "4") as workers:
            for _ in range(3):
                workers.start()
            with trio.fail_after(30):
                while sum(i.status == "done" for i in await all_instances(engine)) < n // 5:
                    await trio.sleep(0.1)
            try:
                await trio.to_thread.run_sync(_pg_restart)
            finally:
                with trio.fail_after(30):
                    while not await trio.to_thread.run_sync(_pg_ready):
                        await trio.sleep(0.5)
            await wait_until_done(engine, n, timeout=60)
            assert all(p.poll() is None for p in workers.procs)  # every worker carried on
        instances = {i.id: i for i in await all_instances(engine)}
    assert all(instances[i].result == {"log": ["start", "middle", "finish"]} for i in ids)
    assert "LISTEN connection lost" in workers.stderr() or "unavailable" in workers.stderr()
