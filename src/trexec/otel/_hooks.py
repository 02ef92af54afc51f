"""The OpenTelemetry implementation of ``trexec._instrument.Hooks`` (spec §14)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import metrics, propagate, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import SpanKind, Status, StatusCode

__all__ = ["OtelHooks"]

SCOPE = "trexec"


class _Outcome:
    """What ``StepSpan.outcome`` recorded."""

    def __init__(self, span: trace.Span) -> None:
        self.span = span
        self.kind: str | None = None

    def outcome(self, kind: str, error: BaseException | None = None) -> None:
        self.kind = kind
        self.span.set_attribute("trexec.outcome", kind)
        if error is not None:
            self.span.record_exception(error)
            self.span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        elif kind == "stop":  # the instance stopped: a failure
            self.span.set_status(Status(StatusCode.ERROR, "the step stopped its instance"))


def _extract(trace_text: str | None) -> Any:
    """The context stored with an instance (spec §14.2), or None (a root span)."""
    if not trace_text:
        return None
    try:
        carrier = json.loads(trace_text)
    except ValueError:
        return None
    if not isinstance(carrier, dict):
        return None
    return propagate.extract({str(k): str(v) for k, v in carrier.items()})


class OtelHooks:
    """Spans and metrics through the given (or global) providers."""

    def __init__(self, tracer_provider: Any, meter_provider: Any) -> None:
        from .. import __version__

        self.closed = False
        self._tracer = trace.get_tracer(SCOPE, __version__, tracer_provider=tracer_provider)
        meter = metrics.get_meter(SCOPE, __version__, meter_provider=meter_provider)
        self._steps = meter.create_counter(
            "trexec.durable.steps", unit="{step}", description="Durable steps run, by outcome"
        )
        self._duration = meter.create_histogram(
            "trexec.durable.step.duration", unit="s", description="Durable step duration"
        )
        self._backlogs: dict[str, Mapping[str, int]] = {}
        meter.create_observable_gauge(
            "trexec.durable.backlog",
            callbacks=[self._observe_backlog],
            unit="{instance}",
            description="Runnable instances per machine, as engines last counted them",
        )

    # --- spans ---------------------------------------------------------------------

    @contextmanager
    def action(self, name: str) -> Iterator[_Outcome]:
        with self._tracer.start_as_current_span(
            f"trexec.action {name}", attributes={"trexec.action": name},
            record_exception=False, set_status_on_exception=False,
        ) as span:  # fmt: skip
            yield _Outcome(span)

    @contextmanager
    def step(
        self, *, instance_id: int, machine: str, step: str, attempt: int, trace: str | None
    ) -> Iterator[_Outcome]:
        attributes: dict[str, str | int] = {
            "trexec.instance_id": instance_id, "trexec.machine": machine,
            "trexec.step": step, "trexec.attempt": attempt,
        }  # fmt: skip
        started = time.perf_counter()
        with self._tracer.start_as_current_span(
            f"trexec.durable.step {machine}.{step}", context=_extract(trace),
            kind=SpanKind.CONSUMER, attributes=attributes,
            record_exception=False, set_status_on_exception=False,
        ) as span:  # fmt: skip
            handle = _Outcome(span)
            try:
                yield handle
            finally:
                kind = handle.kind
                if kind is None:  # cancelled (shutdown) or interrupted: no outcome
                    kind = "interrupted"
                    span.set_attribute("trexec.outcome", kind)
                labels = {"trexec.machine": machine, "trexec.outcome": kind}
                self._steps.add(1, labels)
                self._duration.record(
                    time.perf_counter() - started, {**labels, "trexec.step": step}
                )

    @contextmanager
    def workflow_step(
        self, *, workflow: str, step: str, run_id: int, attempt: int
    ) -> Iterator[trace.Span]:
        attributes: dict[str, str | int] = {
            "trexec.workflow": workflow, "trexec.step": step,
            "trexec.run_id": run_id, "trexec.attempt": attempt,
        }  # fmt: skip
        with self._tracer.start_as_current_span(
            f"trexec.workflow.step {workflow}.{step}", attributes=attributes
        ) as span:
            yield span

    def carrier(self) -> str | None:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return json.dumps(carrier, sort_keys=True) if "traceparent" in carrier else None

    # --- metrics -------------------------------------------------------------------

    def backlog(self, engine: str, counts: Mapping[str, int]) -> None:
        self._backlogs[engine] = dict(counts)

    def engine_stopped(self, engine: str) -> None:
        self._backlogs.pop(engine, None)

    def _observe_backlog(self, options: CallbackOptions) -> Iterable[Observation]:
        if self.closed:
            return []
        # Engines in one process on one store count the same rows: the latest wins.
        merged: dict[str, int] = {}
        for counts in list(self._backlogs.values()):
            merged.update(counts)
        return [Observation(n, {"trexec.machine": m}) for m, n in sorted(merged.items())]
