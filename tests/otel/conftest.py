"""OpenTelemetry tests (spec §14): the SDK's in-memory exporter and reader."""

from __future__ import annotations

import pathlib
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from trexec import durable

sys.path.insert(0, str(pathlib.Path(__file__).parent.parent / "durable"))

from stores import open_test_store, parametrize_store

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import trexec.otel


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_store(metafunc)


@pytest.fixture
async def store(
    request: pytest.FixtureRequest, tmp_path: pathlib.Path
) -> AsyncIterator[durable.Store]:
    async with open_test_store(request.param, tmp_path) as opened:
        await opened.migrate()
        yield opened


class Otel:
    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.tracer = self.tracer_provider.get_tracer("tests")

    def spans(self, prefix: str = "") -> list[Any]:
        return [s for s in self.exporter.get_finished_spans() if s.name.startswith(prefix)]

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        found = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found += list(metric.data.data_points)
        return found


@pytest.fixture
def otel() -> Iterator[Otel]:
    o = Otel()
    uninstrument = trexec.otel.instrument(o.tracer_provider, o.meter_provider)
    try:
        yield o
    finally:
        uninstrument()
