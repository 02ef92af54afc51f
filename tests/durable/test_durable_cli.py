"""The durable CLI commands (spec §5.13) and worker processes: Ctrl-C, SIGKILL."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys

import pytest
import trio
from click.testing import CliRunner
from machines import Counter, CountTo3, SlowOnce

from trexec import durable
from trexec._cli import cli

HERE = pathlib.Path(__file__).parent


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path}/cli.db"


def run_cli(url, *args):
    result = CliRunner().invoke(cli, list(args), env={"TREXEC_STORE": url, "COLUMNS": "200"})
    return result.exit_code, result.output


async def seed(url):
    async with durable.open_store(url) as store, durable.open_engine(store, workers=0) as e:
        parked = await e.insert(CountTo3, Counter(5), key="order-1")
        await e.signal(parked, "paid", {"amount": 3}, dedup_key="d1")
        return parked


def test_migrate_ls_show_signal_cancel(url):
    code, out = run_cli(url, "migrate")
    assert code == 0 and "schema version 1" in out
    id_ = trio.run(seed, url)
    code, out = run_cli(url, "ls", "--status", "scheduled")
    assert code == 0 and "count_to_3@1" in out and "order-1" in out
    code, out = run_cli(url, "ls", "--status", "done")
    assert code == 0 and "count_to_3" not in out
    code, out = run_cli(url, "show", "order-1")
    assert code == 0 and '"n": 5' in out and "paid" in out and '{"amount":3}' in out
    code, out = run_cli(url, "signal", str(id_), "shipped", "--payload", '{"via": "ups"}')
    assert code == 0 and "delivered" in out
    code, out = run_cli(url, "cancel", "order-1")
    assert code == 0 and "cancelled" in out
    code, out = run_cli(url, "ls", "--status", "cancelled")
    assert code == 0 and "order-1" in out


def test_errors_are_one_line_without_traceback(url):
    code, out = run_cli(url, "show", "404")
    assert code == 1 and out.strip() == "Error: NoTarget: '404': no such instance"
    code, out = run_cli(url, "signal", "404", "go")
    assert code == 1 and out.startswith("Error: NoTarget") and "Traceback" not in out
    code, out = run_cli(url, "signal", "1", "go", "--payload", "{nope")
    assert code == 2 and "--payload" in out
    code, out = run_cli("mysql://x", "ls")
    assert code == 1 and "url='mysql://x'" in out


def worker_process(url, *extra, marker=None):
    env = {**os.environ, "PYTHONPATH": str(HERE), "TREXEC_STORE": url}
    if marker is not None:
        env["TREXEC_TEST_MARKER"] = str(marker)
    command = [sys.executable, "-c", "from trexec._cli import main; main()", "worker",
               "--import", "machines", "--poll-interval", "0.05", *extra]  # fmt: skip
    return subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)


async def wait_for(predicate):
    while not predicate():
        await trio.sleep(0.02)


@pytest.mark.slow
async def test_a_worker_process_runs_machines_and_stops_cleanly_on_ctrl_c(url, tmp_path):
    async with durable.open_store(url) as store, durable.open_engine(store, workers=0) as e:
        ids = [await e.insert(CountTo3, Counter(i)) for i in range(5)]
        process = worker_process(url)
        try:
            results = [await e.wait(i, timeout=30) for i in ids]
        finally:
            process.send_signal(signal.SIGINT)
            _, err = await trio.to_thread.run_sync(process.communicate)
    assert [r.result["n"] for r in results] == [3, 4, 5, 6, 7]
    assert process.returncode == 0 and "worker stopped" in err


@pytest.mark.slow
async def test_a_worker_killed_mid_step_is_recovered_after_its_lease_expires(
    url, tmp_path, monkeypatch
):
    marker = tmp_path / "marker"
    async with durable.open_store(url) as store:
        async with durable.open_engine(store, workers=0) as producer:
            id_ = await producer.insert(SlowOnce, Counter(1))
        process = worker_process(url, "--lease", "0.3", marker=marker)
        try:
            await wait_for(marker.exists)  # attempt 1 is mid-step
            running = await store.get(id_)
            assert running.status == "running" and running.attempt == 1
        finally:
            process.kill()  # SIGKILL: no cleanup, no release
            await trio.to_thread.run_sync(process.wait)
        monkeypatch.setenv("TREXEC_TEST_MARKER", str(marker))
        async with durable.open_engine(store, [SlowOnce], reap_interval=0.05) as engine:
            instance = await engine.wait(id_, timeout=30)
    assert json.loads(marker.read_text()) == process.pid
    # Attempt 2 ran from the last committed state: the killed attempt left nothing.
    assert instance.result == {"attempt": 2, "n": 1, "step": "start"}
