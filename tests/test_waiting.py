from __future__ import annotations

import outcome
import pytest
import trio
import trio.testing

import trexec
from trexec._waiting import Completion


class Box(Completion):
    """A minimal handle: finishes with a value after ``delay`` seconds."""

    def __init__(self, value: object) -> None:
        super().__init__()
        self.value = value

    def _outcome(self) -> outcome.Outcome[object]:
        return outcome.Value(self.value)

    async def run(self, delay: float) -> None:
        await trio.sleep(delay)
        self._finish()


async def test_wait_all_returns_outcomes_in_input_order(autojump_clock):
    boxes = [Box("slow"), Box("fast")]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(boxes[0].run, 2)
        nursery.start_soon(boxes[1].run, 1)
        results = await trexec.wait_all(boxes)
    assert [r.unwrap() for r in results] == ["slow", "fast"]


async def test_wait_all_hands_out_fresh_outcomes(autojump_clock):
    box = Box(1)
    box._finish()
    first = await trexec.wait_all([box])
    second = await trexec.wait_all([box])
    assert first[0].unwrap() == second[0].unwrap() == 1


async def test_wait_all_timeout_raises_too_slow_and_leaves_work_running(autojump_clock):
    box = Box("x")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(box.run, 5)
        with pytest.raises(trio.TooSlowError):
            await trexec.wait_all([box], timeout=1)
        assert not box.done
    assert box.done


async def test_as_completed_yields_in_completion_order(autojump_clock):
    boxes = [Box(d) for d in (3, 1, 2)]
    seen = []
    async with trio.open_nursery() as nursery:
        for box in boxes:
            nursery.start_soon(box.run, box.value)
        async for box in trexec.as_completed(boxes):
            seen.append(box.value)
    assert seen == [1, 2, 3]


async def test_as_completed_yields_finished_handles_first():
    done, pending = Box("done"), Box("pending")
    done._finish()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pending.run, 0)
        seen = [b.value async for b in trexec.as_completed([pending, done])]
    assert seen == ["done", "pending"]


async def test_wait_all_is_a_checkpoint_even_when_all_are_done():
    # spec §0.2: a full checkpoint (cancel point and schedule point).
    box = Box(1)
    box._finish()
    for handles in ([box], []):
        with trio.testing.assert_checkpoints():
            await trexec.wait_all(handles)


@pytest.mark.parametrize("bad", [None, 3, "ab", [object()]])
async def test_bad_handles_raise_invalid_argument(bad):
    with pytest.raises(trexec.InvalidArgument, match="handles="):
        await trexec.wait_all(bad)
    with pytest.raises(trexec.InvalidArgument, match="handles="):
        trexec.as_completed(bad)  # spec §0.3: at the call, not at the first iteration


async def test_negative_timeout_is_invalid():
    with pytest.raises(trexec.InvalidArgument, match=r"timeout=-1: expected"):
        await trexec.wait_all([], timeout=-1)
