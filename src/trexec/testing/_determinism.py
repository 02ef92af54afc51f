"""Deterministic Trio scheduling while a test engine runs (spec §10.3).

Trio runs each batch of runnable tasks in an order drawn from a module-level
``random.Random`` (``trio._core._run._r``), and tasks woken together (timers that
expire at the same virtual instant) enter a batch in an order that depends on
memory addresses. With pytest-trio's switch for Hypothesis
(``_ALLOW_DETERMINISTIC_SCHEDULING``) trio sorts each batch by task creation
order before shuffling it with ``_r``; seeding ``_r`` then fixes the order.
Both are private to trio: if a release renames them, the engine still works,
only without the guarantee (``seeded`` says whether it holds).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from trio._core import _run as trio_run


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[bool]:
    """Seed trio's scheduler for the block; restore its previous state after.
    Yields whether trio exposed what is needed."""
    rng = getattr(trio_run, "_r", None)
    if rng is None or not hasattr(trio_run, "_ALLOW_DETERMINISTIC_SCHEDULING"):
        yield False
        return
    state = rng.getstate()
    allowed = trio_run._ALLOW_DETERMINISTIC_SCHEDULING
    rng.seed(seed)
    setattr(trio_run, "_ALLOW_DETERMINISTIC_SCHEDULING", True)  # noqa: B010 (Final in trio)
    try:
        yield True
    finally:
        setattr(trio_run, "_ALLOW_DETERMINISTIC_SCHEDULING", allowed)  # noqa: B010
        rng.setstate(state)
