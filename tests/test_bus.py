"""RunBus: publish/subscribe with backpressure (spec §4.1)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

import trexec


async def test_publish_with_no_subscriber_is_fine():
    bus = trexec.RunBus()
    await bus.publish("nobody", {"x": 1})
    assert bus.subscribers("nobody") == 0


async def test_subscriber_receives_what_is_published_after_subscribing():
    bus = trexec.RunBus()
    await bus.publish("t", "before")
    async with bus.subscribe("t") as events:
        await bus.publish("t", 1)
        await bus.publish("other", "elsewhere")
        await bus.publish("t", 2)
        assert [events.receive_nowait(), events.receive_nowait()] == [1, 2]
        with pytest.raises(trio.WouldBlock):
            events.receive_nowait()


async def test_leaving_subscribe_unsubscribes_and_closes_the_channel():
    bus = trexec.RunBus()
    async with bus.subscribe("t") as events:
        assert bus.subscribers("t") == 1
    assert bus.subscribers("t") == 0
    with pytest.raises(trio.ClosedResourceError):
        events.receive_nowait()
    await bus.publish("t", "after")  # nobody listens: fine


async def test_every_subscriber_gets_every_event_in_order():
    bus = trexec.RunBus()
    async with bus.subscribe("t") as a, bus.subscribe("t") as b:
        for i in range(5):
            await bus.publish("t", i)
        assert [a.receive_nowait() for _ in range(5)] == list(range(5))
        assert [b.receive_nowait() for _ in range(5)] == list(range(5))


async def test_full_subscriber_applies_backpressure_instead_of_dropping(autojump_clock):
    bus = trexec.RunBus()
    async with bus.subscribe("t", buffer=2) as events:
        await bus.publish("t", 0)
        await bus.publish("t", 1)
        with trio.move_on_after(10) as scope:
            await bus.publish("t", 2)
        assert scope.cancelled_caught  # blocked: buffer full
        assert [events.receive_nowait(), events.receive_nowait()] == [0, 1]


async def test_blocked_publish_resumes_when_the_subscriber_reads(autojump_clock):
    bus = trexec.RunBus()
    received = []
    async with bus.subscribe("t", buffer=1) as events, trio.open_nursery() as nursery:

        async def slow_reader():
            for _ in range(4):
                await trio.sleep(1)
                received.append(await events.receive())

        nursery.start_soon(slow_reader)
        for i in range(4):
            await bus.publish("t", i)
    assert received == [0, 1, 2, 3]


async def test_concurrent_publishers_reach_all_subscribers_in_one_order(autojump_clock):
    bus = trexec.RunBus()
    seen: dict[str, list[object]] = {"fast": [], "slow": []}
    async with (
        bus.subscribe("t", buffer=0) as fast,
        bus.subscribe("t", buffer=1) as slow,
        trio.open_nursery() as nursery,
    ):

        async def read(name, channel, delay):
            async for event in channel:
                seen[name].append(event)
                await trio.sleep(delay)

        nursery.start_soon(read, "fast", fast, 0)
        nursery.start_soon(read, "slow", slow, 1)
        async with trio.open_nursery() as publishers:
            for p in range(3):

                async def publish(p=p):
                    for i in range(4):
                        await bus.publish("t", (p, i))

                publishers.start_soon(publish)
        await trio.sleep(20)
        nursery.cancel_scope.cancel()
    assert len(seen["fast"]) == 12
    assert seen["fast"] == seen["slow"]


async def test_closed_receiver_is_dropped_on_publish():
    bus = trexec.RunBus()
    async with bus.subscribe("t", buffer=0) as events:
        events.close()
        await bus.publish("t", 1)  # does not block, does not raise
        assert bus.subscribers("t") == 0


@pytest.mark.parametrize("buffer", [-1, 1.5, "8", True])
async def test_subscribe_rejects_a_bad_buffer(buffer):
    bus = trexec.RunBus()
    with pytest.raises(trexec.InvalidArgument, match="buffer"):
        async with bus.subscribe("t", buffer=buffer):
            pass


async def test_topic_must_be_a_string():
    bus = trexec.RunBus()
    with pytest.raises(trexec.InvalidArgument, match="topic"):
        await bus.publish(1, "x")
    with pytest.raises(trexec.InvalidArgument, match=r"topic=\[\]: expected a str"):
        await bus.publish([], "x")  # unhashable: was a bare TypeError
    for bad in [[], None]:
        with pytest.raises(trexec.InvalidArgument, match="topic="):
            bus.subscribers(bad)
    with pytest.raises(trexec.InvalidArgument, match="topic"):
        async with bus.subscribe(("t",)):
            pass


def test_run_topic_names_the_run():
    assert trexec.run_topic("abc") == "run:abc"
    assert trexec.run_topic(7) == "run:7"
    for bad in ["", None, 1.0, True]:
        with pytest.raises(trexec.InvalidArgument, match="run_id"):
            trexec.run_topic(bad)
