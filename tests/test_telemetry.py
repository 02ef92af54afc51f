from __future__ import annotations

import logging

import pytest

import trexec
from trexec import telemetry


def test_attach_receives_events_and_detach_stops_them():
    seen = []
    detach = telemetry.attach(lambda *args: seen.append(args))
    telemetry.execute(("trexec", "x"), {"n": 1}, {"id": 7})
    detach()
    detach()  # idempotent
    telemetry.execute(("trexec", "x"), {"n": 2}, {})
    assert seen == [(("trexec", "x"), {"n": 1}, {"id": 7})]


def test_prefix_filters_events():
    seen = []
    detach = telemetry.attach(lambda name, m, md: seen.append(name), prefix=("trexec", "a"))
    telemetry.execute(("trexec", "a", "b"), {}, {})
    telemetry.execute(("trexec", "b"), {}, {})
    detach()
    assert seen == [("trexec", "a", "b")]


def test_raising_handler_is_logged_and_detached(caplog):
    calls = []

    def bad(name, m, md):
        calls.append(name)
        raise RuntimeError("boom")

    telemetry.attach(bad)
    with caplog.at_level(logging.ERROR, logger="trexec.telemetry"):
        telemetry.execute(("e",), {}, {})
        telemetry.execute(("e",), {}, {})
    assert calls == [("e",)]
    assert "detached" in caplog.text


def test_attach_validates():
    with pytest.raises(trexec.InvalidArgument, match="handler=3"):
        telemetry.attach(3)  # type: ignore[arg-type]
    with pytest.raises(trexec.InvalidArgument, match="prefix="):
        telemetry.attach(print, prefix="trexec")  # type: ignore[arg-type]


def test_listening_says_whether_a_handler_is_attached():
    was = telemetry.listening()
    detach = telemetry.attach(lambda *event: None, prefix=("nobody",))
    assert telemetry.listening()
    detach()
    assert telemetry.listening() is was


def test_listening_to_a_name_matches_prefixes():
    detach = telemetry.attach(lambda *event: None, prefix=("nobody", "here"))
    try:
        assert telemetry.listening(("nobody", "here", "now"))
        assert telemetry.listening(("nobody", "here"))
        assert not telemetry.listening(("nobody",))
        assert not telemetry.listening(("somebody", "here"))
    finally:
        detach()
    assert not telemetry.listening(("nobody", "here", "now"))


def test_handlers_attached_or_detached_after_an_event_see_the_next_one():
    seen: list[str] = []
    first = telemetry.attach(lambda name, m, md: seen.append("first"), prefix=("cached",))
    telemetry.execute(("cached", "event"), {}, {})
    second = telemetry.attach(lambda name, m, md: seen.append("second"), prefix=("cached",))
    telemetry.execute(("cached", "event"), {}, {})
    first()
    telemetry.execute(("cached", "event"), {}, {})
    second()
    telemetry.execute(("cached", "event"), {}, {})
    assert seen == ["first", "first", "second", "second"]


def test_many_event_names_do_not_grow_the_cache_forever():
    detach = telemetry.attach(lambda *event: None, prefix=("many",))
    try:
        for i in range(5000):
            telemetry.execute(("many", str(i)), {}, {})
        assert len(telemetry._matching) <= telemetry._MAX_NAMES
        assert telemetry.listening(("many", "x"))
    finally:
        detach()
