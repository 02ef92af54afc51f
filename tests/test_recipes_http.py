"""The HTTP recipes in docs/recipes/, each run against a real local HTTP server
(tests/http_server.py). Real time with short intervals: MockClock's autojump
would jump while the poller waits on a socket."""

from __future__ import annotations

import importlib.util
import pathlib
import sys
from types import ModuleType

import httpx
import pytest
import trio

import trexec
from http_server import http_server, refused_url  # tests/ is on sys.path under pytest

__all__ = ["http_server"]  # the fixture, used by name below

RECIPES = pathlib.Path(__file__).parent.parent / "docs" / "recipes"
FAST = 0.01  # seconds between polls


def recipe(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", RECIPES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # attrs classes need their module registered
    spec.loader.exec_module(module)
    return module


# --- poll until a terminal status ------------------------------------------------------


async def test_poll_until_terminal_injects_intermediate_states_then_done(http_server):
    terminal = recipe("http_poll_until_terminal")
    result, events = await terminal.main(http_server.url, interval=FAST, timeout=10)
    assert isinstance(result, trexec.PollSuccess)
    assert [e.status for e in events] == ["pending_review", "approved"]
    resource = http_server.resources["1"]
    assert resource.gets == 4  # processing, processing, pending_review, approved


async def test_poll_until_terminal_rides_out_a_few_server_errors(http_server):
    terminal = recipe("http_poll_until_terminal")
    result, events = await terminal.main(http_server.url, interval=FAST, timeout=10, errors=3)
    assert isinstance(result, trexec.PollSuccess)
    assert [e.status for e in events] == ["pending_review", "approved"]
    assert http_server.requests.count(("GET", "/resources/1")) == 7


async def test_poll_until_terminal_gives_up_after_too_many_server_errors(http_server):
    terminal = recipe("http_poll_until_terminal")
    result, events = await terminal.main(http_server.url, interval=FAST, timeout=10, errors=50)
    assert isinstance(result, trexec.PollError)
    assert "5 server errors in a row" in result.reason
    assert events == []


async def test_poll_until_terminal_fails_on_an_unexpected_answer(http_server):
    terminal = recipe("http_poll_until_terminal")
    async with httpx.AsyncClient(base_url=http_server.url) as client:
        handler = terminal.StatusHandler("404")
        response = await client.get("/resources/404")
    result = handler(response)
    assert isinstance(result, trexec.Fail)
    assert "404" in result.reason


async def test_connection_refused_is_a_poll_fn_error_with_the_httpx_cause():
    terminal = recipe("http_poll_until_terminal")
    result = await terminal.poll_once_refused(refused_url())
    assert isinstance(result, trexec.PollError)
    assert isinstance(result.reason, trexec.PollFnError)
    assert isinstance(result.reason.__cause__, httpx.ConnectError)


# --- custom on_timeout ---------------------------------------------------------------


async def test_on_timeout_recipe_reports_the_last_status(http_server):
    timeout = recipe("http_poll_on_timeout")
    result = await timeout.main(http_server.url, interval=FAST, timeout=0.5)
    assert isinstance(result, trexec.PollError)
    error = result.reason
    assert isinstance(error, timeout.ResourceTimeout)
    assert error.last_status == "processing"
    assert error.poll_count >= 1
    assert "still processing" in str(error)


async def test_on_timeout_recipe_when_no_poll_returned(http_server):
    timeout = recipe("http_poll_on_timeout")
    # Every answer takes 10 s: the first poll is still in flight at the deadline.
    result = await timeout.main(http_server.url, interval=FAST, timeout=0.2, delay=10)
    error = result.reason
    assert error.poll_count == 0
    assert error.last_status == "unknown (no poll returned)"


# --- adapter that POSTs and starts a poller --------------------------------------------


async def test_adapter_recipe_records_command_then_poller_events(http_server):
    adapter = recipe("http_adapter")
    report = await adapter.main(http_server.url, interval=FAST)
    assert report.ok
    assert [type(r.event).__name__ for r in report.events if r.command_index == 0] == [
        "Created",
        "StatusChanged",
        "StatusChanged",
    ]
    by_command = {}
    for recorded in report.events:
        by_command.setdefault(recorded.command_index, []).append(
            (recorded.source, getattr(recorded.event, "status", None))
        )
    assert by_command[0] == [
        ("command", None),
        ("poller", "pending_review"),
        ("poller", "approved"),
    ]
    assert by_command[1] == [("command", None), ("poller", "declined")]
    assert all(isinstance(r, trexec.PollSuccess) for r in report.poller_results)


async def test_adapter_recipe_halts_when_the_post_fails():
    adapter = recipe("http_adapter")
    with pytest.raises(trexec.SequenceFailed) as caught:
        await adapter.main(refused_url(), interval=FAST)
    failure = caught.value.report.failures[0]
    assert failure.command_index == 0
    assert isinstance(failure.reason, httpx.ConnectError)
    assert "ConnectError" in failure.traceback


async def test_server_fixture_serves_real_http(http_server):
    async with httpx.AsyncClient(base_url=http_server.url) as client:
        created = (await client.post("/resources")).json()
        assert created == {"id": "1", "status": "processing"}
        assert (await client.get("/resources/9")).status_code == 404
    await trio.lowlevel.checkpoint()
