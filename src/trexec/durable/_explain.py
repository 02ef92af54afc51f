"""``Engine.explain``: why an instance is not moving, in plain words (spec §5.16).

It reads the instance, its inbox or children, its lease and the live engines'
announcements (``trexec_engines``, refreshed by every engine's heartbeat), and
asks the layers above (``explainers``: a workflow run's step table) for what
only they know. Read-only: it never changes the store.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._machine import Instance
from ._records import EngineRecord

if TYPE_CHECKING:
    from ._store import Store

__all__ = ["Explainer", "explain_for", "explain_instance"]

#: A layer above durable that can say more about an instance (or None).
Explainer = Callable[[Instance], "str | None"]


def when(at: float, now: float) -> str:
    """A store time, absolute and relative to the store's ``now``."""
    if at > 1e9:  # an epoch timestamp (the real stores); the test store counts Trio time
        text = datetime.datetime.fromtimestamp(at, datetime.UTC).isoformat(timespec="seconds")
    else:
        text = f"t={at:.3f}s"
    delta = at - now
    return f"{text} (in {delta:.1f}s)" if delta >= 0 else f"{text} ({-delta:.1f}s ago)"


def _engine(e: EngineRecord) -> str:
    return f"engine {e.id} (host {e.host}, pid {e.pid})"


def _value(value: Any) -> str:
    try:
        text = json.dumps(value, default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


async def explain_for(store: Store, instance: Instance, extensions: Sequence[object]) -> str:
    """``Engine.explain``: :func:`explain_instance` with the ``explain_instance``
    hook of each extension that has one (a Workflow, spec §5.16.2)."""
    explainers: list[Explainer] = []
    for ext in extensions:
        hook = getattr(ext, "explain_instance", None)
        if callable(hook):
            explainers.append(hook)
    return await explain_instance(store, instance, explainers)


async def explain_instance(
    store: Store, instance: Instance, explainers: Sequence[Explainer] = ()
) -> str:
    """The explanation of ``instance`` (spec §5.16), one sentence per line."""
    key = "" if instance.key is None else f", key {instance.key!r}"
    lines = [
        f"instance {instance.id} ({instance.machine} v{instance.version}{key}) is"
        f" {instance.status} at step {instance.step!r}, attempt {instance.attempt}"
    ]
    status = instance.status
    record = await store.get(instance.id)
    if status == "done":
        lines.append(f"it finished: result {_value(instance.result)}")
    elif status == "stopped":
        lines.append(f"it stopped: {instance.error}")
    elif status == "cancelled":
        lines.append("it was cancelled")
    elif status == "awaiting":
        lines += await _awaiting(store, instance, record)
    elif status == "waiting_children":
        lines += await _children(store, instance)
    elif status == "scheduled":
        lines += await _scheduled(store, instance, record)
    elif status == "running":
        lines += await _running(store, instance)
    for explainer in explainers:
        more = explainer(instance)
        if more:
            lines.append(more)
    return "\n".join(lines)


async def _awaiting(store: Store, instance: Instance, record: Any) -> list[str]:
    awaits = tuple(record.awaits) if record is not None else ()
    inbox = await store.inbox(instance.id)
    names = ", ".join(repr(n) for n in awaits) or "(none)"
    matching = [s for s in inbox if s.name in awaits]
    if matching:  # §5.6.4 makes this a moment's state: the signal's commit wakes it
        text = f"it awaits signal(s) {names}; {len(matching)} matching are in its inbox"
    else:
        text = f"it is waiting for signal(s) {names}; none in its inbox"
    others = sorted({s.name for s in inbox if s.name not in awaits})
    if others:
        text += f" (its inbox holds other signals: {', '.join(map(repr, others))})"
    lines = [text]
    if record is not None and record.run_at is not None:
        _, now = await store.lease_expiry(instance.id)
        lines.append(f"its await times out at {when(record.run_at, now)}")
    return lines


async def _children(store: Store, instance: Instance) -> list[str]:
    children = await store.children(instance.id)
    pending = [c for c in children if c.status not in ("done", "stopped", "cancelled")]
    listed = ", ".join(
        f"#{c.id} ({c.machine}{'' if c.key is None else ' ' + repr(c.key)}, {c.status} at"
        f" {c.step!r})"
        for c in pending[:20]
    )
    more = f" and {len(pending) - 20} more" if len(pending) > 20 else ""
    return [
        f"it is waiting for {len(pending)} of its {len(children)} children to finish:"
        f" {listed or '(none: it is about to be scheduled)'}{more}"
    ]


async def _scheduled(store: Store, instance: Instance, record: Any) -> list[str]:
    _, now = await store.lease_expiry(instance.id)
    run_at = None if record is None else record.run_at
    if run_at is not None and run_at > now:
        return [f"it is parked until {when(run_at, now)}"]
    mine = f"{instance.machine}@{instance.version}"
    engines = await store.engines()
    running = [e for e in engines if mine in e.machines]
    if running:
        names = "; ".join(_engine(e) for e in running)
        return [f"it is runnable now; live engines that run {mine} will claim it: {names}"]
    if not engines:
        return [
            f"it is runnable, but no running engine has claimed machine {instance.machine}"
            f" v{instance.version}: no live engine announced itself in the store"
        ]
    announced = "; ".join(
        f"{_engine(e)} runs {', '.join(e.machines) or 'no machines'}" for e in engines
    )
    return [
        f"it is runnable, but no running engine has claimed machine {instance.machine}"
        f" v{instance.version}: the live engines announce {announced}"
    ]


async def _running(store: Store, instance: Instance) -> list[str]:
    expires, now = await store.lease_expiry(instance.id)
    holders = [e for e in await store.engines() if instance.id in e.holding]
    holder = _engine(holders[0]) if holders else "an engine that has not announced it yet"
    if expires is None:
        return [f"it is running under a lease held by {holder}"]
    if expires < now:
        return [
            f"it is running under a lease held by {holder} that expired at"
            f" {when(expires, now)}: any engine's reaper returns it to scheduled"
        ]
    return [f"it is running under a lease held by {holder} that expires at {when(expires, now)}"]
