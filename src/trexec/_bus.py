"""In-process publish/subscribe for runs: :class:`RunBus` (spec §4.1).

A topic is a string; a subscriber is a bounded memory channel. ``publish``
hands an event to every subscriber of its topic, in subscription order, and
waits while a subscriber's buffer is full: a slow subscriber slows the
publisher down (backpressure) instead of losing events or growing memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from . import _validate

__all__ = ["RunBus", "run_topic"]

DEFAULT_BUFFER = 128


def run_topic(run_id: str | int) -> str:
    """The topic a run's events are published on: ``f"run:{run_id}"`` (spec §4.1.5).

    :func:`~trexec.start_run` publishes there, and :func:`~trexec.follow_run`
    listens there, so anything that runs work (a durable workflow, say) can feed
    recorders by publishing its events, then a terminal outcome, on this topic.
    Raises :class:`~trexec.InvalidArgument` unless ``run_id`` is a non-empty
    ``str`` or an ``int``.
    """
    check_run_id(run_id)
    return f"run:{run_id}"


def check_run_id(run_id: object) -> str | int:
    if isinstance(run_id, bool) or not isinstance(run_id, str | int) or run_id == "":
        _validate.fail("run_id", run_id, "a non-empty str or an int")
    return run_id


def check_buffer(buffer: object) -> int:
    # spec §4.1.3: bounded, so a slow subscriber costs at most `buffer` events of memory.
    return _validate.count("buffer", buffer, minimum=0)


class _Topic:
    """The subscribers of one topic and the lock that keeps deliveries in order."""

    __slots__ = ("lock", "subscribers")

    def __init__(self) -> None:
        self.subscribers: list[trio.MemorySendChannel[Any]] = []
        # Held by a publisher that had to wait for a full buffer: later publishers
        # queue behind it, so every subscriber sees the same order (spec §4.1.2).
        self.lock = trio.StrictFIFOLock()


class RunBus:
    """Topic-based publish/subscribe between tasks of one process.

    ``await bus.publish(topic, event)`` delivers ``event`` to every current
    subscriber of ``topic``; ``async with bus.subscribe(topic) as events:``
    yields a ``trio.MemoryReceiveChannel`` of what is published from then on,
    until the block is left. A run's events travel on :func:`run_topic`.

    The bus holds no task and no thread; it can be shared by any number of runs.
    """

    def __init__(self) -> None:
        self._topics: dict[str, _Topic] = {}
        self._running: set[str] = set()  # topics of runs started on this bus

    def subscribers(self, topic: str) -> int:
        """How many subscribers ``topic`` has now; :class:`~trexec.InvalidArgument`
        if ``topic`` is not a ``str``."""
        if not isinstance(topic, str):
            _validate.fail("topic", topic, "a str")
        entry = self._topics.get(topic)
        return len(entry.subscribers) if entry else 0

    @asynccontextmanager
    async def subscribe(
        self, topic: str, *, buffer: int = DEFAULT_BUFFER
    ) -> AsyncIterator[trio.MemoryReceiveChannel[Any]]:
        """Receive what is published on ``topic`` while the block runs (spec §4.1.1).

        Yields a receive channel holding up to ``buffer`` undelivered events (an
        ``int`` >= 0; 0 makes each publish wait for the receiver). Subscribing
        happens before the block starts, so an event published afterwards is
        never missed. Leaving the block unsubscribes and closes the channel.
        Raises :class:`~trexec.InvalidArgument` for a bad ``topic`` or ``buffer``.
        """
        send, receive = self._open(topic, buffer)
        try:
            await trio.lowlevel.checkpoint()
            yield receive
        finally:
            self._close(topic, send)
            receive.close()

    async def publish(self, topic: str, event: object) -> None:
        """Deliver ``event`` to every subscriber of ``topic``, in subscription order.

        Returns once every subscriber's channel has accepted it; while one is full
        this waits (backpressure). With no subscriber the event is dropped at once.
        Concurrent publishers are delivered in one order to all subscribers (spec
        §4.1.2). A subscriber that closed its channel is dropped silently.

        Cancellation: if cancelled while waiting, the event may have reached some
        subscribers and not the others. Raises :class:`~trexec.InvalidArgument`
        if ``topic`` is not a ``str``.
        """
        try:
            entry = self._topics.get(topic)
        except TypeError:  # an unhashable topic: not a str either
            entry = None
        if entry is None:
            if not isinstance(topic, str):
                _validate.fail("topic", topic, "a str")
            await trio.lowlevel.checkpoint()
            return
        # Like trio's channels: raise Cancelled before delivering anything, never after.
        await trio.lowlevel.checkpoint_if_cancelled()
        if entry.lock.locked():
            await entry.lock.acquire()
            waiting = list(entry.subscribers)
        else:
            subscribers = list(entry.subscribers)
            # Fast path: hand the event over without a task switch per subscriber.
            delivered = 0
            for send in subscribers:
                try:
                    send.send_nowait(event)
                except trio.WouldBlock:
                    break
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self._close(topic, send)
                delivered += 1
            else:
                await trio.lowlevel.cancel_shielded_checkpoint()
                return
            # Taken without a schedule point, so no publisher can overtake us.
            entry.lock.acquire_nowait()
            waiting = subscribers[delivered:]
        try:
            for send in waiting:
                try:
                    await send.send(event)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self._close(topic, send)
        finally:
            entry.lock.release()
            if not entry.subscribers and self._topics.get(topic) is entry:
                del self._topics[topic]

    # --- used by runs: subscribe without a block ---------------------------------

    def _open(
        self, topic: str, buffer: int
    ) -> tuple[trio.MemorySendChannel[Any], trio.MemoryReceiveChannel[Any]]:
        if not isinstance(topic, str):
            _validate.fail("topic", topic, "a str")
        send, receive = trio.open_memory_channel[Any](check_buffer(buffer))
        self._topics.setdefault(topic, _Topic()).subscribers.append(send)
        return send, receive

    def _close(self, topic: str, send: trio.MemorySendChannel[Any]) -> None:
        """Unsubscribe ``send`` (idempotent) and close it: the receiver drains what is
        buffered, then gets ``EndOfChannel``."""
        send.close()
        entry = self._topics.get(topic)
        if entry is not None and send in entry.subscribers:
            entry.subscribers.remove(send)
            if not entry.subscribers and not entry.lock.locked():
                del self._topics[topic]

    def __repr__(self) -> str:
        return f"<RunBus topics={len(self._topics)} running={len(self._running)}>"
