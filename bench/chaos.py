"""Chaos at scale on PostgreSQL (issue 20): ``nox -s chaos`` (not a default session).

``--instances`` (10,000) instances of mixed machines and workflows
(bench/chaos_machines.py: four-step machines; parents with two children and a
"go" signal sent twice under one dedup key; a three-step saga with
compensations, one run in six failing on purpose) are run by ``--workers`` (4)
worker processes while the harness SIGKILLs a random worker every
``--kill-every`` seconds (and starts a new one), cuts random worker connections
with ``pg_terminate_backend`` every ``--cut-every`` seconds and restarts the
PostgreSQL server once (``--restart-at`` seconds in). Then it lets the workers
drain and checks every instance against what it must be:

* lost: an instance that never ended (or was never stored);
* committed twice: a ``chaos_ledger`` row repeated. A trigger writes one row
  per outcome commit, in the commit's own transaction, keyed (instance, seq):
  each step's state is its committed input's ``seq + 1`` (chaos_machines.py);
  plus workflow step instances done twice under one key;
* wrong results: a result, error, ledger or compensation not as expected.

It prints the figures and exits 1 on any violation. ``--soak SECONDS`` instead
feeds a steady trickle of instances (no kills, no restart) and prints each
worker's RSS and open connections every ``--report-every`` seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

import psycopg
import trio

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from chaos_machines import FINAL_SEQ, MACHINES, SAGA, ChaosParent, ChaosSteps, Ledgered, expected

from trexec import durable

URL = os.environ.get("TREXEC_CHAOS_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
ROOTS = ("chaos_steps", "chaos_parent", "workflow:chaos_saga")
TERMINAL = ("done", "stopped", "cancelled")

LEDGER = """
CREATE TABLE chaos_ledger (instance_id bigint NOT NULL, seq int, step text);
CREATE FUNCTION chaos_ledger_write() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE s int;
BEGIN
  IF NEW.result IS NOT NULL AND NEW.result IS DISTINCT FROM OLD.result THEN
    s := (NEW.result::jsonb ->> 'seq')::int;
  ELSIF NEW.state IS DISTINCT FROM OLD.state THEN
    s := (NEW.state::jsonb ->> 'seq')::int;
  ELSE
    RETURN NEW;
  END IF;
  INSERT INTO chaos_ledger VALUES (NEW.id, s, OLD.step);
  RETURN NEW;
END $$;
CREATE TRIGGER chaos_ledger AFTER UPDATE ON trexec_instances FOR EACH ROW
  WHEN (NEW.machine LIKE 'chaos%') EXECUTE FUNCTION chaos_ledger_write();
"""


def sql(schema: str, query: str, params: Any = (), *, tries: int = 240) -> list[Any]:
    """One statement in ``schema``, retried across a server restart."""
    for attempt in range(tries):
        try:
            with psycopg.connect(URL, autocommit=True, application_name="chaos-check") as conn:
                conn.execute(f'SET search_path TO "{schema}"')
                cur = conn.execute(query, params or None)
                return cur.fetchall() if cur.description else []
        except psycopg.OperationalError:
            if attempt == tries - 1:
                raise
            time.sleep(0.5)
    return []


class Fleet:
    """The worker processes: started, SIGKILLed, replaced."""

    def __init__(self, schema: str, size: int) -> None:
        self.schema, self.procs = schema, [None] * size  # type: list[Any]
        self.log = pathlib.Path(os.environ.get("TMPDIR", "/tmp")) / f"{schema}-workers.log"

    def start(self, index: int) -> None:
        cmd = [sys.executable, __file__, "--worker", str(index), "--schema", self.schema]
        with open(self.log, "a") as log:  # the workers' warnings stay off the report
            self.procs[index] = subprocess.Popen(cmd, stdout=log, stderr=log)

    def ensure_alive(self) -> None:
        for index, proc in enumerate(self.procs):
            if proc is None or proc.poll() is not None:
                self.start(index)

    def kill(self, index: int) -> None:
        proc = self.procs[index]
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()

    def stop(self) -> None:
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for index, proc in enumerate(self.procs):
            try:
                if proc is not None:
                    proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill(index)


async def worker(index: int, schema: str) -> None:
    url = f"{URL}?application_name=chaos-w{index}"
    async with (
        durable.open_store(url, schema=schema) as store,
        durable.open_engine(
            store, MACHINES, workflows=[SAGA], workers=16, lease=3.0,
            poll_interval=0.5, shutdown_grace=1.0,
        ),
    ):  # fmt: skip
        await trio.sleep_forever()


async def retrying(fn: Any, *args: Any, **kwargs: Any) -> Any:
    for attempt in range(600):
        try:
            return await fn(*args, **kwargs)
        except durable.StoreError:
            if attempt == 599:
                raise
            await trio.sleep(0.2)
    return None


async def produce(engine: durable.Engine, numbers: range, stats: dict[str, int]) -> None:
    """Insert ``numbers`` instances, 100 per batch; a retried insert whose first try
    committed meets its own keys (DuplicateKey): done already."""
    for first in range(numbers.start, numbers.stop, 100):
        batch = range(first, min(first + 100, numbers.stop))
        specs = [
            durable.InsertSpec(ChaosSteps if n % 3 == 0 else ChaosParent, Ledgered(n),
                               key=f"chaos:{n}")
            for n in batch if n % 3 != 2
        ]  # fmt: skip
        try:
            await retrying(engine.insert_many, specs)
        except durable.DuplicateKey:
            stats["insert_retries"] += 1
        for n in batch:
            if n % 3 == 1:
                await retrying(engine.signal, f"chaos:{n}", "go", None, dedup_key=f"go:{n}")
                try:  # the same again: dropped by its dedup key
                    await retrying(engine.signal, f"chaos:{n}", "go", None, dedup_key=f"go:{n}")
                except durable.NoTarget:
                    stats["late_duplicates"] += 1  # the parent had ended already
            elif n % 3 == 2:
                await retrying(engine.start_workflow, SAGA, {"n": n, "fail": n % 6 == 5})
        stats["inserted"] = batch.stop - numbers.start


def progress(schema: str) -> tuple[int, int]:
    query = (
        "SELECT status IN ('done','stopped','cancelled'), count(*)"
        " FROM trexec_instances WHERE machine = ANY(%s) GROUP BY 1"
    )
    rows = sql(schema, query, (list(ROOTS),))
    counts = dict(rows)
    return counts.get(True, 0), counts.get(True, 0) + counts.get(False, 0)


async def killer(fleet: Fleet, every: float, stats: dict[str, int]) -> None:
    while True:
        await trio.sleep(every)
        index = random.randrange(len(fleet.procs))
        await trio.to_thread.run_sync(fleet.kill, index)
        fleet.start(index)
        stats["kills"] += 1


async def cutter(schema: str, every: float, stats: dict[str, int]) -> None:
    while True:
        await trio.sleep(every)
        rows = await trio.to_thread.run_sync(lambda: sql(schema, (
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE"
            " application_name LIKE 'chaos-w%' ORDER BY random() LIMIT 2")))  # fmt: skip
        stats["cuts"] += sum(1 for (ok,) in rows if ok)


async def restarter(at: float, stats: dict[str, int]) -> None:
    await trio.sleep(at)
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    cmd = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"]
    await trio.run_process(cmd, check=False)
    stats["restarts"] += 1


def verify(schema: str, count: int, stats: dict[str, int]) -> dict[str, int]:
    """The violations, as counts (0 everywhere is a pass)."""
    rows = sql(schema, "SELECT id, machine, key, status, result, error, state"
               " FROM trexec_instances WHERE machine = ANY(%s)", (list(ROOTS),))  # fmt: skip
    found: dict[int, list[Any]] = {}
    for id_, machine, key, status, result, error, state in rows:
        n = int(key.split(":")[1]) if machine != ROOTS[2] else json.loads(state)["input"]["n"]
        found.setdefault(n, []).append((id_, status, result, error, json.loads(state)))
    lost = wrong = starts = 0
    for n in range(count):
        kind, want = expected(n)
        mine = found.get(n, [])
        starts += max(0, len(mine) - 1)
        if not mine or all(status not in TERMINAL for _, status, *_ in mine):
            lost += 1
            continue
        _, status, result, error, state = mine[0]
        if kind != "saga":
            wrong += status != "done" or json.loads(result) != want
        elif want[0] == "done":
            wrong += status != "done" or json.loads(result) != want[1]
        else:
            undone = [state["steps"][s]["compensation"] for s in ("a", "b")]
            wrong += status != "stopped" or error != want[1] or undone != ["done", "done"]
    twice = sql(schema, "SELECT count(*) FROM (SELECT instance_id, seq FROM chaos_ledger"
                " GROUP BY 1, 2 HAVING count(*) > 1) d")[0][0]  # fmt: skip
    twice += sql(schema, "SELECT count(*) FROM (SELECT key FROM trexec_instances WHERE"
                 " machine LIKE 'workflow:chaos_saga:step' AND status = 'done'"
                 " GROUP BY key HAVING count(*) > 1) d")[0][0]  # fmt: skip
    # Every done ledgered instance committed seq 1..final exactly once.
    gaps = sql(schema, "SELECT count(*) FROM (SELECT i.id FROM trexec_instances i"
               " JOIN jsonb_each_text(%s::jsonb) AS f(machine, final) ON f.machine = i.machine"
               " LEFT JOIN chaos_ledger l ON l.instance_id = i.id WHERE i.status = 'done'"
               " GROUP BY i.id, f.final HAVING count(l.seq) <> f.final::int"
               " OR count(DISTINCT l.seq) <> f.final::int OR max(l.seq) <> f.final::int) d",
               (json.dumps(FINAL_SEQ),))[0][0]  # fmt: skip
    stats["ledger_rows"] = sql(schema, "SELECT count(*) FROM chaos_ledger")[0][0]
    kids = sql(schema, "SELECT count(*) FROM (SELECT parent_id FROM trexec_instances WHERE"
               " machine = 'chaos_child' GROUP BY parent_id HAVING count(*) <> 2"
               " OR bool_or(status <> 'done')) d")[0][0]  # fmt: skip
    stats["extra_starts"] = starts
    return {"lost": lost, "committed twice": twice, "wrong results": wrong + gaps + kids}


def worker_usage(schema: str, fleet: Fleet) -> list[str]:
    conns = dict(sql(schema, "SELECT application_name, count(*) FROM pg_stat_activity"
                     " WHERE application_name LIKE 'chaos-w%' GROUP BY 1"))  # fmt: skip
    lines = []
    for index, proc in enumerate(fleet.procs):
        rss = "?"
        with open(f"/proc/{proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    rss = f"{int(line.split()[1]) / 1024:.0f} MB"
        lines.append(f"w{index} pid {proc.pid}: RSS {rss}, {conns.get(f'chaos-w{index}', 0)} conns")
    return lines


async def harness(args: argparse.Namespace) -> int:
    schema = f"chaos_{uuid.uuid4().hex[:10]}"
    stats = dict.fromkeys(
        ("inserted", "kills", "cuts", "restarts", "insert_retries", "late_duplicates"), 0
    )
    started = time.monotonic()
    fleet = Fleet(schema, args.workers)
    try:
        async with durable.open_store(URL, schema=schema) as store:
            await store.migrate()
            sql(schema, LEDGER)
            fleet.ensure_alive()
            async with durable.open_engine(store, workers=0) as producer:
                count = args.instances
                async with trio.open_nursery() as chaos:
                    if args.soak:
                        count = await soak(args, schema, fleet, producer, stats)
                    else:
                        chaos.start_soon(killer, fleet, args.kill_every, stats)
                        chaos.start_soon(cutter, schema, args.cut_every, stats)
                        if args.restart_at >= 0:
                            chaos.start_soon(restarter, args.restart_at, stats)
                        await produce(producer, range(count), stats)
                        await until_done(schema, count, started, args.chaos_for)
                    chaos.cancel_scope.cancel()
        fleet.ensure_alive()  # drain without chaos: whatever is left must finish
        await until_done(schema, count, started, args.drain)
        violations = verify(schema, count, stats)
    finally:
        fleet.stop()
        if not args.keep:
            sql(schema, f'DROP SCHEMA "{schema}" CASCADE')
    wall = time.monotonic() - started
    print(f"instances: {count} (+ children and workflow steps), workers: {args.workers}"
          f" (their log: {fleet.log})")  # fmt: skip
    print(f"ledger rows: {stats['ledger_rows']}, extra workflow starts (harness"
          f" retries): {stats['extra_starts']}, duplicate go signals sent after their"
          f" parent ended: {stats['late_duplicates']}")  # fmt: skip
    print(f"kills: {stats['kills']}, restarts: {stats['restarts']},"
          f" connection cuts: {stats['cuts']}")  # fmt: skip
    for name, value in violations.items():
        print(f"{name}: {value}")
    print(f"wall time: {wall:.1f} s ({count / wall:.0f} instances/s)")
    return 1 if any(violations.values()) else 0


async def until_done(schema: str, count: int, started: float, limit: float) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        done, total = await trio.to_thread.run_sync(progress, schema)
        print(f"[{time.monotonic() - started:6.1f} s] {done}/{count} ended", flush=True)
        if done >= count and total >= count:
            return
        await trio.sleep(5)


async def soak(args: argparse.Namespace, schema: str, fleet: Fleet, producer: Any,
               stats: dict[str, int]) -> int:  # fmt: skip
    """A steady trickle for ``args.soak`` seconds; usage every ``report_every``."""
    end, n, next_report = time.monotonic() + args.soak, 0, time.monotonic()
    while time.monotonic() < end:
        await produce(producer, range(n, n + args.rate), stats)
        n += args.rate
        if time.monotonic() >= next_report:
            for line in await trio.to_thread.run_sync(worker_usage, schema, fleet):
                print(f"[soak {args.soak - (end - time.monotonic()):6.0f} s] {line}", flush=True)
            next_report += args.report_every
        await trio.sleep(1.0)
    return n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--kill-every", type=float, default=1.0)
    parser.add_argument("--cut-every", type=float, default=2.0)
    parser.add_argument("--restart-at", type=float, default=15.0, help="< 0: no restart")
    parser.add_argument("--chaos-for", type=float, default=1800.0)
    parser.add_argument("--drain", type=float, default=300.0)
    parser.add_argument("--soak", type=float, default=0.0, help="seconds of soak instead")
    parser.add_argument("--rate", type=int, default=20, help="soak: instances per second")
    parser.add_argument("--report-every", type=float, default=60.0)
    parser.add_argument("--keep", action="store_true", help="keep the schema")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--schema", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        with contextlib.suppress(KeyboardInterrupt):
            trio.run(worker, args.worker, args.schema)
        return 0
    return trio.run(harness, args)


if __name__ == "__main__":
    sys.exit(main())
