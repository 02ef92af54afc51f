"""The durable CLI commands (spec §5.13) and worker processes: Ctrl-C, SIGKILL."""

from __future__ import annotations

import collections
import json
import logging
import os
import pathlib
import signal
import subprocess
import sys

import pytest
import trio
from click.testing import CliRunner
from machines import Counter, CountTo3, LoggedSteps, SlowOnce

from trexec import durable
from trexec._cli import cli
from trexec.durable import _sqlite_sql as sqlite_sql

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
    assert code == 0 and f"schema version {max(sqlite_sql.MIGRATIONS)}" in out
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
    assert run_cli(url, "migrate")[0] == 0
    code, out = run_cli(url, "show", "404")
    assert code == 1 and out.strip() == "Error: NoTarget: '404': no such instance"
    code, out = run_cli(url, "signal", "404", "go")
    assert code == 1 and out.startswith("Error: NoTarget") and "Traceback" not in out
    code, out = run_cli(url, "signal", "1", "go", "--payload", "{nope")
    assert code == 2 and "--payload" in out
    code, out = run_cli("mysql://x", "ls")
    assert code == 1 and "url='mysql://x'" in out


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["worker", "--import", "machines", "--workers", "0"], "--workers"),
        (["worker", "--import", "machines", "--lease", "0"], "--lease"),
        (["worker", "--import", "machines", "--grace", "-1"], "--grace"),
        (["worker", "--import", "machines", "--poll-interval", "0"], "--poll-interval"),
        (["worker", "--import", "machines", "--batch-size", "0"], "--batch-size"),
        (["worker", "--import", "machines", "--chain-steps", "0"], "--chain-steps"),
        (["ls", "--limit", "0"], "--limit"),  # was every row on SQLite, a driver error on PG
        (["prune", "--older-than", "-1"], "--older-than"),
        (["prune", "--older-than", "1", "--limit", "0"], "--limit"),
    ],
)
def test_a_bad_option_value_is_a_usage_error_naming_the_option(url, args, option):
    code, out = run_cli(url, *args)
    assert code == 2 and f"Invalid value for '{option}'" in out and "Traceback" not in out


def test_a_module_that_fails_to_import_is_one_line(url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cli_syntax_error.py").write_text("def broken(:\n")
    (tmp_path / "cli_raises.py").write_text("raise RuntimeError('boom at import')\n")
    code, out = run_cli(url, "worker", "--import", "cli_syntax_error")
    assert code == 1 and out.startswith("Error: ImportError: cannot import cli_syntax_error: ")
    assert "SyntaxError" in out and out.count("\n") == 1
    code, out = run_cli(url, "worker", "--import", "cli_raises")
    assert code == 1 and out == (
        "Error: ImportError: cannot import cli_raises: RuntimeError: boom at import\n"
    )
    (tmp_path / "cli_fine.py").write_text("")
    code, out = run_cli(url, "worker", "--import", "cli_fine.py")
    assert code == 1 and "(--import takes a module name: cli_fine)" in out
    code, out = run_cli(url, "worker", "--import", "json")
    assert code == 1 and out == (
        "Error: ValueError: no durable.Machine subclass (with a name) or workflow in json\n"
    )


def test_the_driver_log_stays_off_the_screen_and_names_the_last_connection_error(caplog):
    from trexec.durable._cli import driver_log

    error = durable.StoreError("cannot open postgresql://x: pool initialization incomplete")
    pool = logging.getLogger("psycopg.pool")
    with driver_log(debug=False) as log:
        pool.warning("error connecting in %r: %s", "trexec", OSError("refused\n\tIs it up?"))
        pool.warning("discarding closed connection")
    assert [r.getMessage() for r in caplog.records] == ["discarding closed connection"]
    assert log.explain(error, f"StoreError: {error}") == (
        f"StoreError: {error} (last connection error: refused)"
    )
    assert log.explain(ValueError("x"), "ValueError: x") == "ValueError: x"  # not a store error


@pytest.mark.slow  # the connection pool gives up after 10 s
@pytest.mark.postgres
def test_an_unreachable_server_is_one_line_naming_why(url):
    code, out = run_cli("postgresql://postgres@127.0.0.1:1/test", "ls")
    assert code == 1 and out.count("\n") == 1, out  # no pool warnings before it
    assert out.startswith("Error: StoreError: cannot open postgresql://postgres@127.0.0.1:1/test")
    assert "Connection refused" in out  # the server's reason, at once (spec §8.4.4)


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


@pytest.mark.slow
async def test_worker_processes_share_one_file_and_run_every_step_once(url, tmp_path, monkeypatch):
    """Three worker processes and this one, each with the default calls (spec
    §5.11.7): their short writes meet each other's locks, wait on the store's
    thread, and every step runs exactly once."""
    log, gate = tmp_path / "steps.log", tmp_path / "gate"
    log.touch()
    monkeypatch.setenv("TREXEC_TEST_LOG", str(log))
    monkeypatch.setenv("TREXEC_TEST_GATE", str(gate))

    def pids() -> set[int]:
        return {int(line.split()[2]) for line in log.read_text().splitlines()}

    processes = []
    try:
        async with (
            durable.open_store(url) as store,
            durable.open_engine(store, [LoggedSteps], batch_size=8) as engine,
        ):
            ids = []
            for _ in range(10):
                ids += await engine.insert_many([durable.InsertSpec(LoggedSteps, Counter())] * 40)
            processes = [worker_process(url, "--batch-size", "8") for _ in range(3)]
            with trio.fail_after(60):
                # Every process holds steps of its own before any step may end.
                await wait_for(lambda: len(pids()) == 4)
                gate.touch()
                results = [await engine.wait(id_) for id_ in ids]
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT)
        for process in processes:
            await trio.to_thread.run_sync(process.communicate)
    assert all(r.status == "done" for r in results)
    assert all(r.result["log"] == ["start", "middle", "finish"] for r in results)
    runs = collections.Counter(tuple(line.split()[:2]) for line in log.read_text().splitlines())
    assert len(runs) == 3 * len(ids) and set(runs.values()) == {1}
    assert all(p.returncode == 0 for p in processes)


async def seed_scheduled(url):
    async with durable.open_store(url) as store, durable.open_engine(store, workers=0) as e:
        await e.insert(CountTo3, Counter(1), priority=7, concurrency_key="tenant-42")


def test_ls_shows_priority_and_concurrency_key(url):
    """spec §11, §5.13: `trexec ls` has "prio" and "ckey" columns."""
    assert run_cli(url, "migrate")[0] == 0
    trio.run(seed_scheduled, url)
    code, out = run_cli(url, "ls")
    header = next(line for line in out.splitlines() if "machine" in line)
    assert code == 0 and "prio" in header and "ckey" in header
    row = next(line for line in out.splitlines() if "tenant-42" in line)
    assert " 7 " in row
