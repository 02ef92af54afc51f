"""An engine's task tree (spec §5.5.1), started in one place, and its shutdown
(spec §5.5.4, §5.5.5)::

    nursery
    ├── Reaper.run          every engine (spec §5.8)
    ├── Picker.run          claims -> ledger.jobs        } only when the engine
    ├── Heartbeat.run       renews held leases           } runs steps (workers > 0
    ├── Workers.run         jobs -> outcomes             } and machines to run)
    ├── Completer.run       outcomes -> one commit each batch (shielded)
    └── extension tasks     what each Extension contributes (spec §5.5.10)
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence

import attrs
import trio

from .._public import leaves
from ._completer import Completer
from ._exceptions import EngineCrashed, StoreError
from ._leases import Heartbeat, Reaper
from ._ledger import Ledger
from ._picker import Picker, Workers
from ._records import RateLimitPolicy, Release
from ._steps import StepRunner
from ._store import Store

logger = logging.getLogger("trexec.durable")


@attrs.frozen
class EngineConfig:
    """``open_engine``'s checked settings (spec §5.5.1)."""

    workers: int
    lease: float
    batch_size: int
    chain_steps: int
    poll_interval: float
    shutdown_grace: float
    heartbeat_interval: float
    reap_interval: float


@contextlib.asynccontextmanager
async def serve(
    store: Store,
    ledger: Ledger,
    runner: StepRunner,
    runs: Sequence[tuple[str, int]],
    policies: Mapping[str, RateLimitPolicy],
    config: EngineConfig,
    extra: Sequence[Callable[[], Awaitable[object]]] = (),
    engine_id: str = "",
) -> AsyncIterator[None]:
    """Run the engine's tasks for the duration of the block; on leaving it, shut
    them down (gracefully unless the block raised). Raises the block's own
    exception, else the single exception of a failed task (spec §5.5.5)."""
    body_error: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            picker = Picker(
                store, ledger, runs, policies, batch_size=config.batch_size,
                lease=config.lease, poll_interval=config.poll_interval,
            )  # fmt: skip
            # spec §5.5.3: one commit may carry every job the engine holds; one
            # of batch_size would cut them in two transactions, one of `workers`.
            completer = Completer(
                store, ledger, runner, runs, policies, batch_size=ledger.max_held,
                lease=config.lease, chain_steps=config.chain_steps, spawn=nursery.start_soon,
            )  # fmt: skip
            workers = Workers(ledger, runner, config.workers, completer.outcomes)
            heartbeat = Heartbeat(
                store, ledger, interval=config.heartbeat_interval, lease=config.lease,
                engine=engine_id, machines=runs,
            )  # fmt: skip
            nursery.start_soon(Reaper(store, ledger, interval=config.reap_interval).run)
            if config.workers and runs:
                nursery.start_soon(picker.run)
                nursery.start_soon(heartbeat.run)
                nursery.start_soon(workers.run)
                nursery.start_soon(completer.run)
            else:
                picker.done.set()
                workers.done.set()
                completer.skip()
            for task in extra:
                nursery.start_soon(task)
            shutdown = Shutdown(
                store, ledger, picker, workers, completer, config.shutdown_grace, heartbeat
            )
            try:
                yield
            except BaseException as exc:
                body_error = exc
                await shutdown.run(graceful=False, body_error=exc)
                raise
            else:
                await shutdown.run(graceful=True)
            nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise collapse(group, body_error) from None


@attrs.define
class Shutdown:
    """Stops picking; finishes in-flight steps within the grace period (none if
    the block raised); releases everything still held (spec §5.5.4)."""

    store: Store
    ledger: Ledger
    picker: Picker
    workers: Workers
    completer: Completer
    grace: float
    heartbeat: Heartbeat

    async def run(self, *, graceful: bool, body_error: BaseException | None = None) -> None:
        ledger = self.ledger
        ledger.open = False
        # spec §5.5.4: finished outcomes are committed even when the block was
        # cancelled from outside: the completer (shielded) drains its queue.
        self.picker.stop()
        ledger.jobs.clear()  # queued jobs never start: they are released below
        ledger.jobs.close()
        with trio.CancelScope(shield=True):
            await self.picker.done.wait()  # a claim in flight lands in `held`
            if graceful:
                with trio.move_on_after(self.grace):
                    await self.workers.done.wait()
            self.workers.stop()
            with trio.move_on_after(max(self.grace, 5.0)):
                await self.workers.done.wait()
                # The completer commits what finished, then ends.
                await self.completer.done.wait()
            self.completer.stop()  # past the bounded wait: stop it
            releases = [Release(lease, started) for lease, started in ledger.held.items()]
            ledger.held.clear()
            if releases:
                logger.info("releasing %d held instance(s)", len(releases))
                await self._release(releases, body_error)
            await self.heartbeat.withdraw()  # spec §5.16

    async def _release(self, releases: list[Release], body_error: BaseException | None) -> None:
        try:
            await self.store.release(releases)
        except StoreError as exc:
            if body_error is None:
                raise
            # spec §5.5.5, §5.5.8: the block's own exception wins; the rows come
            # back through any engine's reaper once their leases expire.
            logger.exception(
                "releasing %d held instance(s) failed while the engine's block raised"
                " %r; they return when their leases expire",
                len(releases), body_error,
            )  # fmt: skip
            body_error.add_note(f"trexec: releasing held instances at shutdown failed: {exc!r}")


def collapse(
    group: BaseExceptionGroup[BaseException], body: BaseException | None = None
) -> BaseException:
    """The single exception an internal nursery raised (spec §0.4). The body's own
    exception (``body``) is raised as it is, even an ExceptionGroup (spec §5.5.5):
    trio's cancel scopes re-derive groups, so its leaves are what identify it."""
    found = leaves(group)
    for exc in found:
        if isinstance(exc, KeyboardInterrupt):
            return exc
    real = [e for e in found if not isinstance(e, trio.Cancelled)]
    if isinstance(body, BaseExceptionGroup):
        mine = {id(leaf) for leaf in leaves(body)}
        others = [e for e in real if id(e) not in mine]
        if len(others) < len(real):
            real = [body, *others]
    if len(real) == 1:
        return real[0]
    if not real:
        return found[0]
    crashed = EngineCrashed(f"{len(real)} engine tasks failed: {real!r}", real)
    crashed.__cause__ = group
    return crashed
