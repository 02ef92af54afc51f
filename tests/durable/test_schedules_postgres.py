"""Exactly-once ticks across real processes on PostgreSQL (spec §11.4): three
``trexec worker`` processes run the same per-second schedule; one is killed
with SIGKILL; every tick has exactly one instance (counted by business key)."""

from __future__ import annotations

import calendar
import collections
import os
import pathlib
import signal
import subprocess
import sys
import time
import uuid

import pytest
import trio
from stores import PG_URL, drop_schema

from trexec import durable

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

HERE = pathlib.Path(__file__).parent
TREXEC = str(pathlib.Path(sys.executable).with_name("trexec"))


def start(url: str, err: pathlib.Path) -> subprocess.Popen[bytes]:
    path = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    with open(err, "wb") as stderr:
        return subprocess.Popen(
            [TREXEC, "worker", "--store", url, "--import", "schedule_worker",
             "--workers", "2", "--poll-interval", "0.2"],
            env={**os.environ, "PYTHONPATH": path}, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip


async def started(proc: subprocess.Popen[bytes], err: pathlib.Path) -> None:
    """Wait until the worker says its engine runs (its first stderr line)."""
    with trio.fail_after(30):
        while "worker on" not in err.read_text():
            assert proc.poll() is None, err.read_text()
            await trio.sleep(0.05)


async def test_three_processes_fire_each_tick_once_despite_a_kill(tmp_path: pathlib.Path) -> None:
    schema = f"test_sched_{uuid.uuid4().hex[:10]}"
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        async with durable.open_store(PG_URL, schema=schema) as store:
            await store.migrate()
            errs = [tmp_path / f"w{n}.err" for n in range(3)]
            procs = [start(url, err) for err in errs]
            for proc, err in zip(procs, errs, strict=True):
                await started(proc, err)
            await trio.sleep(3)
            procs[0].send_signal(signal.SIGKILL)
            await trio.sleep(3)
            for proc in procs[1:]:
                proc.terminate()
            for proc in procs:
                await trio.to_thread.run_sync(proc.wait, 20)
            rows = []
            while page := await store.list(limit=1000, after_id=rows[-1].id if rows else None):
                rows += page
            _, (schedule,) = await store.schedule_rows()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        await trio.to_thread.run_sync(drop_schema, schema)
    counts = collections.Counter(r.key for r in rows)
    assert counts and set(counts.values()) == {1}, counts.most_common(3)
    # Every second from the first tick to the cursor fired, none skipped (catch_up="all").
    ticks = sorted(calendar.timegm(time.strptime(k[-20:], "%Y-%m-%dT%H:%M:%SZ")) for k in counts)
    assert len(ticks) == int(ticks[-1] - ticks[0]) + 1 >= 5
    assert schedule.name == "tick"
