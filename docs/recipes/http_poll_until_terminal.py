"""Recipe: poll an HTTP resource until it reaches a terminal status.

Creates a resource with ``POST {base_url}/resources``, then polls
``GET {base_url}/resources/<id>`` every ``interval`` seconds:

* ``processing``: nothing new, keep polling;
* any other non-terminal status (``pending_review``...): inject a
  ``StatusChanged`` event once per change and keep polling;
* ``approved`` / ``declined``: inject the final ``StatusChanged`` and stop;
* a 5xx answer: the server is having a bad moment, keep polling, but give up
  with ``Fail`` after ``max_server_errors`` in a row;
* any other unexpected answer (404...): ``Fail`` with the status code;
* connection refused or any transport error: ``poll_fn`` raises, and the
  poller ends with ``PollError(reason=PollFnError)`` whose ``__cause__`` is the
  ``httpx`` exception.

Run it: ``python http_poll_until_terminal.py http://127.0.0.1:8000``.
"""

from __future__ import annotations

import math
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
class StatusChanged:
    resource_id: str
    status: str


@attrs.define
class StatusHandler:
    """Turns each HTTP response into a handler result; remembers what it saw."""

    resource_id: str
    max_server_errors: int = 5
    last_status: str | None = None
    server_errors: int = 0

    def __call__(self, response: httpx.Response) -> object:
        if response.is_server_error:
            self.server_errors += 1
            if self.server_errors >= self.max_server_errors:
                return trexec.Fail(f"{self.server_errors} server errors in a row, last {response}")
            return trexec.CONTINUE
        self.server_errors = 0
        if response.status_code != 200:
            return trexec.Fail(f"unexpected answer {response.status_code}: {response.text}")
        status = response.json()["status"]
        if status == self.last_status or status == "processing":
            self.last_status = status
            return trexec.CONTINUE
        self.last_status = status
        event = StatusChanged(self.resource_id, status)
        return trexec.Done(event) if status in TERMINAL else trexec.Inject(event)


async def main(
    base_url: str,
    *,
    interval: float = 0.5,
    timeout: float = 30.0,
    steps: list[list[object]] | None = None,
    errors: int = 0,
) -> tuple[trexec.PollSuccess | trexec.PollError | object, list[StatusChanged]]:
    """Create a resource, poll it to a terminal status; return (result, events)."""
    send, receive = trio.open_memory_channel[trexec.InjectedEvent](math.inf)
    async with httpx.AsyncClient(base_url=base_url, timeout=5.0) as client:
        create = {"errors": errors} | ({"steps": steps} if steps else {})
        created = (await client.post("/resources", json=create)).raise_for_status().json()
        handler = StatusHandler(created["id"])
        async with trio.open_nursery() as nursery:
            poller = trexec.start_poller(
                nursery,
                poll_fn=lambda: client.get(f"/resources/{created['id']}"),
                handler=handler,
                interval=interval,
                timeout=timeout,
                events=send,
            )
            result = await poller.wait()
    send.close()
    events = [injected.event async for injected in receive]
    return result, events


async def poll_once_refused(base_url: str) -> trexec.PollError | object:
    """Poll a URL where nothing listens: the poller ends with a PollFnError."""
    send, _ = trio.open_memory_channel[trexec.InjectedEvent](math.inf)
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=5.0) as client,
        trio.open_nursery() as nursery,
    ):
        poller = trexec.start_poller(
            nursery,
            poll_fn=lambda: client.get("/resources/1"),
            handler=StatusHandler("1"),
            interval=0.5,
            timeout=5.0,
            events=send,
        )
        return await poller.wait()


if __name__ == "__main__":
    result, events = trio.run(main, sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000")
    for event in events:
        print(event)
    print(result)
