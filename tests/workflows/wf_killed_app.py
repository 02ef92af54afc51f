"""A worker process for test_wf_killed.py: starts a run whose first step blocks
until the process is killed (``python wf_killed_app.py URL DIR``)."""

from __future__ import annotations

import os
import pathlib
import sys

import trio

from trexec import durable, workflows

LEASE = 0.5


def make(marker_dir: pathlib.Path) -> workflows.Workflow:
    async def slow(ctx):
        (marker_dir / f"started-{os.getpid()}-{ctx.attempt}").touch()
        if not (marker_dir / "recover").exists():
            await trio.sleep_forever()  # killed here
        return "recovered"

    async def after(ctx):
        return ctx.results["slow"] + "!"

    return workflows.Workflow(
        "killed", [workflows.Step("slow", slow), workflows.Step("after", after, after=["slow"])]
    )


async def worker(url: str, marker_dir: pathlib.Path) -> None:
    wf = make(marker_dir)
    async with (
        durable.open_store(url) as store,
        durable.open_engine(store, workflows=[wf], lease=LEASE, poll_interval=0.02) as engine,
    ):
        run_id = await engine.start_workflow(wf, None)
        (marker_dir / "run_id").write_text(str(run_id))
        await trio.sleep_forever()


if __name__ == "__main__":
    trio.run(worker, sys.argv[1], pathlib.Path(sys.argv[2]))
