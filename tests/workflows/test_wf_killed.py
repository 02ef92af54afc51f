"""A worker process killed (SIGKILL) mid-step: another engine finishes the run (spec §6.3.3)."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest
import trio

from trexec import durable

sys.path.insert(0, str(pathlib.Path(__file__).parent))

import wf_killed_app

APP = pathlib.Path(wf_killed_app.__file__)


@pytest.mark.slow
async def test_a_run_survives_its_worker_process_being_killed_mid_step(tmp_path):
    url = f"sqlite:///{tmp_path}/killed.db"
    process = subprocess.Popen([sys.executable, str(APP), url, str(tmp_path)])
    try:
        with trio.fail_after(30):
            while not (list(tmp_path.glob("started-*")) and (tmp_path / "run_id").exists()):
                await trio.sleep(0.05)
    finally:
        process.kill()  # SIGKILL: no cleanup, the claim stays held until its lease expires
        process.wait()
    run_id = int((tmp_path / "run_id").read_text())
    (tmp_path / "recover").touch()
    wf = wf_killed_app.make(tmp_path)
    async with (
        durable.open_store(url) as store,
        durable.open_engine(
            store, workflows=[wf], lease=wf_killed_app.LEASE, poll_interval=0.02
        ) as engine,
    ):
        run = await engine.wait(run_id, timeout=30)
    assert run.status == "done"
    assert run.result == {"slow": "recovered", "after": "recovered!"}
    started = sorted(p.name for p in tmp_path.glob("started-*"))
    assert len(started) == 2  # the killed attempt, then the reaped re-run here
    assert started[0].split("-")[1] != started[1].split("-")[1]  # two processes
