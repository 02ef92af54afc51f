"""Recorder base, MemoryRecorder, JsonlRecorder (spec §4.3, §4.6)."""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import pathlib
import re

import attrs
import pytest
import trio

import trexec


def read_lines(path):
    return [json.loads(line) for line in pathlib.Path(path).read_text().splitlines()]


async def record(run_fn, *recorders, run_id="r"):
    async with trio.open_nursery() as nursery:
        handle = await trexec.start_run(nursery, run_fn, run_id=run_id, recorders=recorders)
    return handle


async def test_base_recorder_does_nothing_and_is_not_required():
    recorder = trexec.Recorder()
    assert trexec.Recorder.required is False
    await recorder.start("r")
    await recorder.event("e")
    await recorder.flush()
    await recorder.finalize(trexec.RunCancelled())


async def test_memory_recorder_keeps_run_id_events_and_outcome_and_resets_on_start():
    recorder = trexec.MemoryRecorder()

    async def run_fn(run):
        await run.emit("a")
        await run.emit({"b": 2})
        return run.id

    await record(run_fn, recorder, run_id="one")
    assert (recorder.run_id, recorder.events, recorder.outcome) == (
        "one",
        ["a", {"b": 2}],
        trexec.RunCompleted("one"),
    )
    await record(run_fn, recorder, run_id="two")
    assert recorder.run_id == "two"
    assert recorder.events == ["a", {"b": 2}]


# --- JsonlRecorder ---------------------------------------------------------------------


async def test_jsonl_writes_start_events_and_outcome_lines(tmp_path):
    path = tmp_path / "run.jsonl"

    async def run_fn(run):
        for i in range(3):
            await run.emit({"i": i})
        return "ok"

    await record(run_fn, trexec.JsonlRecorder(path), run_id="r1")
    lines = read_lines(path)
    assert [(line["run_id"], line["seq"], line["kind"]) for line in lines] == [
        ("r1", 0, "started"),
        ("r1", 1, "event"),
        ("r1", 2, "event"),
        ("r1", 3, "event"),
        ("r1", 4, "outcome"),
    ]
    assert [line["event"] for line in lines[1:4]] == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert lines[-1]["outcome"] == {"kind": "completed", "result": "ok"}
    assert all(isinstance(line["ts"], float) for line in lines)
    assert [line["ts"] for line in lines] == sorted(line["ts"] for line in lines)


@pytest.mark.parametrize(
    ("run_fn_result", "expected"),
    [
        (trexec.RunError(["no stock"]), {"kind": "failed", "errors": ["no stock"]}),
        (
            ValueError("boom"),
            {"kind": "crashed", "exception": {"type": "ValueError", "message": "boom"}},
        ),
        (trexec.RunError([trexec.ActionCancelled("c")]), {"kind": "cancelled"}),
    ],
    ids=["failed", "crashed", "cancelled"],
)
async def test_jsonl_outcome_line_for_each_ending(tmp_path, run_fn_result, expected):
    path = tmp_path / "run.jsonl"

    async def run_fn(run):
        raise run_fn_result

    await record(run_fn, trexec.JsonlRecorder(path))
    assert read_lines(path)[-1]["outcome"] == expected


@attrs.frozen
class Charged:
    amount: int
    when: datetime.date


@dataclasses.dataclass
class Shipped:
    parcel: str


class Opaque:
    def __repr__(self):
        return "<Opaque>"


async def test_jsonl_writes_values_json_cannot_with_the_documented_fallback(tmp_path):
    path = tmp_path / "run.jsonl"
    circular: list[object] = []
    circular.append(circular)
    events = [
        Charged(5, datetime.date(2026, 1, 2)),
        Shipped("p1"),
        KeyError("k"),
        {1, 2},
        pathlib.PurePosixPath("/x"),
        Opaque(),
        circular,
        float("nan"),
    ]

    async def run_fn(run):
        for event in events:
            await run.emit(event)

    handle = await record(run_fn, trexec.JsonlRecorder(path))
    assert handle.recorder_errors == []
    written = [line["event"] for line in read_lines(path) if line["kind"] == "event"]
    assert written == [
        {"amount": 5, "when": "2026-01-02"},
        {"parcel": "p1"},
        {"type": "KeyError", "message": "'k'"},
        [1, 2],
        "/x",
        "<Opaque>",
        "[[...]]",
        "nan",
    ]


async def test_jsonl_records_values_whose_str_and_repr_raise(tmp_path):
    class Unprintable(Exception):
        def __str__(self):
            raise RuntimeError("no str")

    class Unrepresentable:
        def __repr__(self):
            raise RuntimeError("no repr")

    path = tmp_path / "run.jsonl"
    recorder = trexec.JsonlRecorder(path)

    async def run_fn(run):
        await run.emit(Unrepresentable())
        raise Unprintable("boom")

    # spec §4.6.3: an event (or outcome) never fails the recording.
    handle = await record(run_fn, recorder)
    assert handle.recorder_errors == []
    lines = read_lines(path)
    assert [line["kind"] for line in lines] == ["started", "event", "outcome"]
    assert re.fullmatch(r"<unrepresentable .*Unrepresentable>", lines[1]["event"])
    assert lines[2]["outcome"]["kind"] == "crashed"
    assert lines[2]["outcome"]["exception"]["message"] == "Unprintable('boom')"
    assert recorder._fd is None  # closed: reusable for the next run


async def test_jsonl_default_hook_comes_before_the_fallback(tmp_path):
    path = tmp_path / "run.jsonl"

    def default(value):
        if isinstance(value, Opaque):
            return "custom"
        raise TypeError

    async def run_fn(run):
        await run.emit(Opaque())
        await run.emit({1, 2})

    await record(run_fn, trexec.JsonlRecorder(path, default=default))
    assert [line["event"] for line in read_lines(path)[1:3]] == ["custom", [1, 2]]


async def test_jsonl_several_runs_share_one_file(tmp_path):
    path = tmp_path / "shared.jsonl"

    async def run_fn(run):
        for i in range(200):
            await run.emit({"i": i, "pad": "x" * 100})
            if i % 7 == 0:
                await trio.sleep(0)

    async with trio.open_nursery() as nursery:
        for k in range(5):
            await trexec.start_run(
                nursery, run_fn, run_id=f"r{k}", recorders=[trexec.JsonlRecorder(path, batch=16)]
            )
    lines = read_lines(path)  # every line is whole JSON
    assert len(lines) == 5 * 202
    for k in range(5):
        mine = [line for line in lines if line["run_id"] == f"r{k}"]
        assert [line["seq"] for line in mine] == list(range(202))
        assert mine[-1]["kind"] == "outcome"


async def test_jsonl_appends_to_an_existing_file(tmp_path):
    path = tmp_path / "run.jsonl"
    path.write_text('{"earlier": true}\n')

    async def run_fn(run):
        await run.emit(1)

    await record(run_fn, trexec.JsonlRecorder(str(path)))
    lines = read_lines(path)
    assert lines[0] == {"earlier": True}
    assert len(lines) == 4


async def test_jsonl_writes_when_it_catches_up_not_only_on_finalize(tmp_path):
    path = tmp_path / "run.jsonl"
    recorder = trexec.JsonlRecorder(path)

    async def run_fn(run):
        await run.emit("a")
        with trio.fail_after(10):  # guards against a hang only
            while len(read_lines(path)) < 2:  # started + "a", while the run still runs
                await trio.sleep(0.001)

    handle = await record(run_fn, recorder)
    assert handle.check() == trexec.RunCompleted(None)
    assert recorder._fd is None  # closed (after fsync) by finalize
    assert len(read_lines(path)) == 3


async def test_jsonl_that_cannot_open_its_file_is_left_out(tmp_path):
    recorder = trexec.JsonlRecorder(tmp_path / "missing-dir" / "run.jsonl")
    memory = trexec.MemoryRecorder()

    async def run_fn(run):
        await run.emit(1)

    handle = await record(run_fn, recorder, memory)
    assert memory.events == [1]
    [failure] = handle.recorder_failures
    assert (failure.stage, type(failure.error)) == ("start", FileNotFoundError)


async def test_required_jsonl_subclass_refuses_the_run(tmp_path):
    class AuditLog(trexec.JsonlRecorder):
        required = True

    async with trio.open_nursery() as nursery:
        with pytest.raises(trexec.RecorderStartError) as info:
            await trexec.start_run(
                nursery, lambda run: trio.sleep(0), recorders=[AuditLog(tmp_path / "no" / "x")]
            )
    assert isinstance(info.value.__cause__, FileNotFoundError)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"path": 3}, "path"),
        ({"path": ""}, "path"),
        ({"path": "x", "default": "repr"}, "default"),
        ({"path": "x", "batch": 0}, "batch"),
    ],
)
def test_jsonl_validates_its_arguments(kwargs, name):
    with pytest.raises(trexec.InvalidArgument, match=name):
        trexec.JsonlRecorder(**kwargs)


def test_jsonl_repr_names_the_path():
    assert repr(trexec.JsonlRecorder(os.path.join("a", "b.jsonl"))) == (
        f"<trexec.JsonlRecorder path={os.path.join('a', 'b.jsonl')!r}>"
    )


async def test_jsonl_instance_records_one_run_at_a_time(tmp_path):
    recorder = trexec.JsonlRecorder(tmp_path / "run.jsonl")

    async def run_fn(run):
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        first = await trexec.start_run(nursery, run_fn, recorders=[recorder])
        second = await trexec.start_run(nursery, run_fn, recorders=[recorder])
        [failure] = second.recorder_failures
        assert failure.stage == "start"
        assert "already recording" in str(failure.error)
        first.cancel()
        second.cancel()
    third = await record(lambda run: run.emit(1), recorder)  # free again
    assert third.recorder_errors == []


async def test_flush_runs_each_time_the_recorder_catches_up(autojump_clock):
    class Batching(trexec.Recorder):
        def __init__(self):
            self.calls = []

        async def event(self, event):
            self.calls.append(event)

        async def flush(self):
            self.calls.append("flush")

        async def finalize(self, outcome):
            self.calls.append("finalize")

    recorder = Batching()

    async def run_fn(run):
        await run.emit(1)
        await trio.sleep(1)  # the recorder catches up: flush
        await run.emit(2)
        await run.emit(3)

    await record(run_fn, recorder)
    assert recorder.calls[:2] == [1, "flush"]
    assert recorder.calls[-1] == "finalize"  # no flush of its own: finalize writes the rest
    assert [c for c in recorder.calls if c != "flush"] == [1, 2, 3, "finalize"]
    pairs = zip(recorder.calls, recorder.calls[1:], strict=False)
    assert ("flush", "flush") not in pairs  # only after new events


async def test_flush_errors_are_reported_like_event_errors(autojump_clock):
    class BadFlush(trexec.MemoryRecorder):
        async def flush(self):
            raise OSError("disk full")

    async def run_fn(run):
        await run.emit("x")
        await trio.sleep(1)  # the recorder catches up: flush

    recorder = BadFlush()
    handle = await record(run_fn, recorder)
    assert recorder.outcome == trexec.RunCompleted(None)
    assert {f.stage for f in handle.recorder_failures} == {"flush"}


async def test_jsonl_under_an_autojumping_mock_clock_records_everything(tmp_path, autojump_clock):
    # The clock jumps whenever every task waits, also on the writer thread: the
    # end of the run must not depend on a checkpoint after such a wait (spec §4.4.5).
    path = tmp_path / "run.jsonl"

    async def run_fn(run):
        for i in range(5):
            await run.emit(i)
            await trio.sleep(1)
        await run.emit("last")

    handle = await record(run_fn, trexec.JsonlRecorder(path))
    assert handle.recorder_errors == []
    assert [line.get("event") for line in read_lines(path)[1:-1]] == [0, 1, 2, 3, 4, "last"]
