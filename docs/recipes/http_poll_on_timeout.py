"""Recipe: poll with a custom ``on_timeout`` that reports the last status seen.

When the resource never reaches a terminal status in time, ``on_timeout``
receives a ``trexec.TimeoutInfo``: how long it polled, how many polls
returned, and the last response. This recipe turns it into a structured error
naming the last status (or saying no poll ever returned).

Run it: ``python http_poll_on_timeout.py http://127.0.0.1:8000``.
"""

from __future__ import annotations

import math
import sys

import trio

import trexec

try:
    import httpx
except ModuleNotFoundError:  # one line naming the extra, not a traceback
    sys.exit("this recipe needs the http extra: pip install 'trexec[http]'")


class ResourceTimeout(Exception):
    """The resource did not finish in time; says what it was last seen doing."""

    def __init__(self, resource_id: str, info: trexec.TimeoutInfo) -> None:
        self.resource_id = resource_id
        self.elapsed = info.elapsed
        self.poll_count = info.poll_count
        self.last_status = last_status(info.last_poll_result)
        super().__init__(
            f"resource {resource_id} still {self.last_status} after {info.elapsed:.2f}s "
            f"({info.poll_count} polls)"
        )


def last_status(response: object) -> str:
    if response is None:
        return "unknown (no poll returned)"
    assert isinstance(response, httpx.Response)
    if response.status_code != 200:
        return f"unknown (HTTP {response.status_code})"
    return str(response.json()["status"])


def handler(response: httpx.Response) -> object:
    if response.status_code == 200 and response.json()["status"] in ("approved", "declined"):
        return trexec.Done(response.json()["status"])
    return trexec.CONTINUE  # still processing, or a passing 5xx: keep polling


async def main(
    base_url: str, *, interval: float = 0.5, timeout: float = 5.0, delay: float = 0.0
) -> trexec.PollError | object:
    """Create a resource that never finishes and poll it; return the poller's result."""
    send, _ = trio.open_memory_channel[trexec.InjectedEvent](math.inf)
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
        body = {"steps": [["processing", None]], "delay": delay}
        created = (await client.post("/resources", json=body)).raise_for_status().json()
        async with trio.open_nursery() as nursery:
            poller = trexec.start_poller(
                nursery,
                poll_fn=lambda: client.get(f"/resources/{created['id']}"),
                handler=handler,
                interval=interval,
                timeout=timeout,
                events=send,
                on_timeout=lambda info: trexec.Fail(ResourceTimeout(created["id"], info)),
            )
            return await poller.wait()


if __name__ == "__main__":
    print(trio.run(main, sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"))
