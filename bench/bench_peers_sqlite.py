"""Peer baseline on SQLite: DBOS (its SQLite mode) running three-step no-op workflows.

DBOS is asyncio-based; that is fine for a baseline. Same machine and same run as
trexec's bench_durable.py. Figure: steps/s for N workflows of three no-op steps
started concurrently and awaited, plus signal -> next step latency (DBOS.send ->
DBOS.recv) p50/p99. Installed only in the bench session, never a trexec
dependency. Usage: python bench/bench_peers_sqlite.py [--workflows N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import pathlib
import statistics
import tempfile
import time

RESULTS = pathlib.Path(__file__).parent / "results"


async def _run(workflows: int, latency_samples: int, db_path: str) -> dict[str, float]:
    return await run_dbos(workflows, latency_samples, f"sqlite:///{db_path}")


async def run_dbos(workflows: int, latency_samples: int, system_db: str) -> dict[str, float]:
    """DBOS with its system database at ``system_db`` (SQLite or PostgreSQL URL)."""
    from dbos import DBOS

    logging.getLogger("dbos").setLevel(logging.WARNING)
    DBOS(
        config={
            "name": "bench",
            "system_database_url": system_db,
            "log_level": "WARNING",
            # DBOS polls SQLite for notifications (1 s by default): give it its best setting.
            "notification_listener_polling_interval_sec": 0.01,
        }
    )

    @DBOS.step()
    async def noop() -> None:
        return None

    @DBOS.workflow()
    async def three_steps() -> None:
        await noop()
        await noop()
        await noop()

    @DBOS.workflow()
    async def waiter() -> float:
        await DBOS.recv_async("go", timeout_seconds=30)
        return time.perf_counter()

    DBOS.launch()
    try:
        t0 = time.perf_counter()
        handles = [await DBOS.start_workflow_async(three_steps) for _ in range(workflows)]
        for h in handles:
            await h.get_result()
        elapsed = time.perf_counter() - t0

        latencies = []
        for _ in range(latency_samples):
            h = await DBOS.start_workflow_async(waiter)
            await asyncio.sleep(0.02)  # let it park on recv
            sent = time.perf_counter()
            await DBOS.send_async(h.workflow_id, "x", "go")
            woke = await h.get_result()
            latencies.append(woke - sent)
    finally:
        DBOS.destroy()
    latencies.sort() if latencies else latencies.append(0.0)
    return {
        "steps_per_s": 3 * workflows / elapsed,
        "latency_p50_ms": 1000 * statistics.median(latencies),
        "latency_p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=2000)
    parser.add_argument("--latency-samples", type=int, default=50)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        figures = asyncio.run(_run(args.workflows, args.latency_samples, f"{tmp}/dbos.sqlite"))
    print(f"DBOS on SQLite: {args.workflows} workflows x 3 no-op steps")
    print()
    print("| peer | steps/s | signal->step p50 (ms) | p99 (ms) |")
    print("|---|---:|---:|---:|")
    print(
        f"| DBOS (SQLite) | {figures['steps_per_s']:,.0f} | "
        f"{figures['latency_p50_ms']:.2f} | {figures['latency_p99_ms']:.2f} |"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "peers_sqlite.json").write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
