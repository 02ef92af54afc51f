"""Every error the durable engine and its stores raise (spec §5.10).

All derive from :class:`DurableError`, itself a :class:`~trexec.TrexecError`.
Bad arguments to a public call raise :class:`~trexec.InvalidArgument` instead.
"""

from __future__ import annotations

from .._exceptions import TrexecError

__all__ = [
    "DuplicateKey",
    "DurableError",
    "EngineCrashed",
    "NoTarget",
    "StoreError",
    "StoreRejected",
]


class DurableError(TrexecError):
    """Base of every durable error."""


class DuplicateKey(DurableError):
    """An insert named a business ``key`` that a live instance already holds
    (nothing of that insert was stored)."""


class NoTarget(DurableError):
    """A ``signal``/``get``/``cancel`` named an unknown instance or key, or (for
    ``signal``/``cancel``) one that has already finished."""


class StoreError(DurableError):
    """The store failed (database unreachable, schema too new, corrupt row...);
    ``__cause__`` holds the driver's exception."""


class StoreRejected(StoreError):
    """The database refused the operation itself (a constraint or trigger of
    its own, a value it cannot hold): retried unchanged it would fail again
    (spec §5.5.9)."""


class EngineCrashed(DurableError):
    """Several internal engine tasks failed at once; ``exceptions`` lists them."""

    def __init__(self, message: str, exceptions: list[BaseException]) -> None:
        super().__init__(message)
        self.exceptions = exceptions
