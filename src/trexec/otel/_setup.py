"""``instrument``: install the OpenTelemetry hooks (spec §14.1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import _extras, _instrument, _validate

__all__ = ["instrument"]


def instrument(tracer_provider: Any = None, meter_provider: Any = None) -> Callable[[], None]:
    """Trace actions, durable steps and workflow steps, and record step metrics,
    with ``tracer_provider`` and ``meter_provider`` (the global ones when None).
    Returns ``uninstrument()`` (idempotent), which removes these hooks.

    A second ``instrument`` replaces the first (one set of hooks at a time).
    Raises :class:`~trexec.MissingExtra` without the ``otel`` extra and
    :class:`~trexec.InvalidArgument` for a provider without ``get_tracer`` /
    ``get_meter``.
    """
    if tracer_provider is not None and not callable(getattr(tracer_provider, "get_tracer", None)):
        _validate.fail(
            "tracer_provider", tracer_provider, "None or an OpenTelemetry TracerProvider"
        )
    if meter_provider is not None and not callable(getattr(meter_provider, "get_meter", None)):
        _validate.fail("meter_provider", meter_provider, "None or an OpenTelemetry MeterProvider")
    _extras.require("opentelemetry.trace", "trexec.otel", "otel")
    from ._hooks import OtelHooks

    hooks = OtelHooks(tracer_provider, meter_provider)
    _instrument.install(hooks)

    def uninstrument() -> None:
        if _instrument.hooks is hooks:
            _instrument.install(None)
        hooks.closed = True

    return uninstrument
