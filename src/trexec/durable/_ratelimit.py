"""Rate limits (spec §5.9): ``RateLimit(count, per, burst=count)``, a token bucket."""

from __future__ import annotations

import attrs

from .. import _validate
from ._records import RateLimitPolicy

__all__ = ["RateLimit"]


@attrs.frozen
class RateLimit:
    """Allow ``count`` claims (of weight 1) per ``per`` seconds, up to ``burst`` at
    once (default ``count``). Pass by name in ``open_engine(rate_limits=...)``; a
    ``Next(..., rate_limit="name:partition")`` gets one bucket per partition."""

    count: int
    per: float
    burst: int | None = None

    def __attrs_post_init__(self) -> None:
        _validate.count("count", self.count, minimum=1)
        _validate.seconds("per", self.per, allow_zero=False)
        if self.burst is not None:
            _validate.count("burst", self.burst, minimum=1)

    def policy(self) -> RateLimitPolicy:
        """The bucket as stores apply it: ``count / per`` tokens a second."""
        burst = self.count if self.burst is None else self.burst
        return RateLimitPolicy(rate=self.count / self.per, burst=float(burst))
