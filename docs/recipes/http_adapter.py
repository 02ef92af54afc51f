"""Recipe: a command-sequence adapter whose ``execute`` POSTs and starts a poller.

``CreateResource`` commands create a resource over HTTP; ``execute`` returns a
``Created`` event at once and leaves a poller to follow the resource, which
injects ``StatusChanged`` events until a terminal status. ``run_commands``
records everything (command events first, then poller events) and awaits the
pollers before it returns.

Run it: ``python http_adapter.py http://127.0.0.1:8000``.
"""

from __future__ import annotations

import sys

import attrs
import trio

import trexec

try:
    import httpx
except ModuleNotFoundError:  # one line naming the extra, not a traceback
    sys.exit("this recipe needs the http extra: pip install 'trexec[http]'")

TERMINAL = {"approved", "declined"}


@attrs.frozen
class CreateResource:
    steps: list[list[object]] | None = None


@attrs.frozen
class Created:
    resource_id: str


@attrs.frozen
class StatusChanged:
    resource_id: str
    status: str


@attrs.define
class ResourceAdapter:
    client: httpx.AsyncClient
    interval: float = 0.5
    timeout: float = 30.0

    async def execute(self, command: CreateResource, ctx: trexec.CommandContext) -> list[object]:
        body = {"steps": command.steps} if command.steps else {}
        response = await self.client.post("/resources", json=body)
        response.raise_for_status()  # an HTTP error is a failure of this command
        resource_id = response.json()["id"]
        seen: set[str] = set()

        def handler(reply: httpx.Response) -> object:
            if reply.is_server_error:
                return trexec.CONTINUE
            if reply.status_code != 200:
                return trexec.Fail(f"resource {resource_id}: HTTP {reply.status_code}")
            status = reply.json()["status"]
            if status in seen or status == "processing":
                return trexec.CONTINUE
            seen.add(status)
            event = StatusChanged(resource_id, status)
            return trexec.Done(event) if status in TERMINAL else trexec.Inject(event)

        ctx.start_poller(
            poll_fn=lambda: self.client.get(f"/resources/{resource_id}"),
            handler=handler,
            interval=self.interval,
            timeout=self.timeout,
        )
        return [Created(resource_id)]


async def main(
    base_url: str,
    commands: list[CreateResource] | None = None,
    *,
    interval: float = 0.5,
    assertion_mode: str = "halt",
) -> trexec.SequenceReport:
    """Run a few ``CreateResource`` commands against ``base_url``; return the report."""
    if commands is None:
        commands = [CreateResource(), CreateResource([["processing", 1], ["declined", None]])]
    async with httpx.AsyncClient(base_url=base_url, timeout=5.0) as client:
        adapter = ResourceAdapter(client, interval=interval)
        return await trexec.run_commands(
            adapter,
            commands,
            assertion_mode=assertion_mode,  # type: ignore[arg-type]
        )


if __name__ == "__main__":
    report = trio.run(main, sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000")
    for recorded in report.events:
        print(recorded.command_index, recorded.source, recorded.event)
    print("failures:", report.failures)
