"""A worker process for the cross-process trace test (spec §14.2): runs the
store's steps until instance ``argv[2]`` is done, instrumented, then prints
every span as JSON (name, trace id, span id, parent span id)."""

from __future__ import annotations

import json
import pathlib
import sys

import trio

sys.path.insert(0, str(pathlib.Path(__file__).parent.parent / "durable"))

from machines import CountTo3
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import trexec.otel
from trexec import durable


async def main(url: str, instance_id: int) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    uninstrument = trexec.otel.instrument(provider)
    options = {"schema": sys.argv[3]} if len(sys.argv) > 3 else {}
    async with (
        durable.open_store(url, **options) as store,
        durable.open_engine(store, [CountTo3], poll_interval=0.02) as engine,
    ):
        await engine.wait(instance_id, timeout=60)
    uninstrument()
    spans = [
        {
            "name": s.name,
            "trace_id": s.context.trace_id,
            "span_id": s.context.span_id,
            "parent": None if s.parent is None else s.parent.span_id,
            "attributes": dict(s.attributes or {}),
        }
        for s in exporter.get_finished_spans()
    ]
    print(json.dumps(spans))


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]))
