"""Recipe: record a run to a JSON-lines file and print its timeline.

Runs a small checkout (reserve, charge, ship) with ``start_run``, recorded by a
:class:`trexec.JsonlRecorder`: one JSON object per line, written off the event
loop and fsynced when the run ends. Then reads the file back and prints a
timeline, one line per event, with the time since the run started:

    run 7f3a...  (run.jsonl)
      +0.000s  started
      +0.021s  reserved        {'sku': 'tea', 'quantity': 2}
      +0.042s  charged         {'amount': 1250}
      +0.063s  shipped         {'parcel': 'P-7f3a'}
      +0.063s  completed       {'order': 'ok'}

Events are attrs classes: the recorder writes them as dicts, with their type
name added by the ``default=`` hook so the timeline can show what happened.
Pass ``--fail`` to see a failed run (``RunError``) recorded the same way.

Run it: ``python record_run_jsonl.py [path] [--fail]``.
"""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Any

import attrs
import trio

import trexec


@attrs.frozen
class Reserved:
    sku: str
    quantity: int


@attrs.frozen
class Charged:
    amount: int


@attrs.frozen
class Shipped:
    parcel: str


def typed(value: Any) -> Any:
    """``default=`` hook: attrs events as dicts that say which event they are."""
    if attrs.has(type(value)):
        return {"type": type(value).__name__, **attrs.asdict(value)}
    raise TypeError  # anything else: the recorder's own fallback


async def checkout(run: trexec.Run, *, fail: bool = False, step: float = 0.02) -> dict[str, str]:
    await trio.sleep(step)  # stands in for real work
    await run.emit(Reserved("tea", 2))
    await trio.sleep(step)
    if fail:
        raise trexec.RunError(["card declined"])
    await run.emit(Charged(1250))
    await trio.sleep(step)
    await run.emit(Shipped(f"P-{str(run.id)[:4]}"))
    return {"order": "ok"}


async def record(
    path: pathlib.Path, *, fail: bool = False, step: float = 0.02
) -> trexec.RunOutcome:
    """Run the checkout, recorded to ``path``; return its outcome."""
    recorder = trexec.JsonlRecorder(path, default=typed)
    async with trio.open_nursery() as nursery:
        handle = await trexec.start_run(
            nursery, lambda run: checkout(run, fail=fail, step=step), recorders=[recorder]
        )
        result = await handle.wait()  # the file is complete and fsynced here
    if handle.recorder_errors:
        raise RuntimeError(f"recording failed: {handle.recorder_errors}")
    return result


def timeline(path: pathlib.Path, run_id: str | int) -> list[str]:
    """The run's lines from ``path`` (other runs may share the file), as text."""
    records = [json.loads(line) for line in path.read_text().splitlines()]
    mine = sorted((r for r in records if r["run_id"] == run_id), key=lambda r: r["seq"])
    start = mine[0]["ts"]
    lines = [f"run {run_id}  ({path.name})"]
    for r in mine:
        if r["kind"] == "event":
            event = dict(r["event"])
            label = event.pop("type", "event").lower()
            detail: object = event
        elif r["kind"] == "outcome":
            outcome = dict(r["outcome"])
            label = outcome.pop("kind")
            detail = next(iter(outcome.values()), "")
        else:
            label, detail = r["kind"], ""
        lines.append(f"  +{r['ts'] - start:.3f}s  {label:<15} {detail}".rstrip())
    return lines


async def main(path: pathlib.Path, *, fail: bool = False, step: float = 0.02) -> list[str]:
    result = await record(path, fail=fail, step=step)
    run_id = json.loads(path.read_text().splitlines()[-1])["run_id"]
    lines = timeline(path, run_id)
    assert lines[-1].split()[1] == result.kind
    return lines


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--fail"]
    target = pathlib.Path(args[0] if args else "run.jsonl")
    print("\n".join(trio.run(lambda: main(target, fail="--fail" in sys.argv))))
