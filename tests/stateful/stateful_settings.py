"""Settings shared by the trexec.stateful tests: few examples, no explain phase
(it traces every line), derandomized so a failure is the same every run."""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, settings

FAST = settings(
    max_examples=15,
    stateful_step_count=8,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)
