"""OpenTelemetry for trexec (extra ``trexec[otel]``, spec §14).

    uninstrument = trexec.otel.instrument()   # global providers, or pass your own

Spans: ``trexec.action <name>``, ``trexec.durable.step <machine>.<step>``,
``trexec.workflow.step <workflow>.<step>``. The trace active when an instance is
inserted (``insert``, ``start_workflow``, a step's children) or first signalled
is stored with it (W3C ``traceparent``/``tracestate``, through the propagator
API), so its steps' spans join that trace in whatever process runs them.
Metrics: ``trexec.durable.steps`` (counter, by outcome),
``trexec.durable.step.duration`` (histogram, seconds), ``trexec.durable.backlog``
(observable gauge: runnable instances per machine, counted at each heartbeat).

This module imports OpenTelemetry only when ``instrument`` is called.
"""

from __future__ import annotations

from ._setup import instrument as instrument

__all__ = ["instrument"]
