"""The engine's JSON (``durable/_json.py``) is ``json``'s, call for call: the
same text, the same values, the same errors (spec §5.1.4)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, strategies as st

from trexec.durable import _json

_plain = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)  # fmt: skip


@given(values)
def test_dumps_and_loads_are_jsons(value):
    text = _json.dumps(value)
    assert text == _plain(value)
    assert _json.loads(text) == json.loads(text)


def _outcome(fn, arg):
    try:
        return ("value", fn(arg))
    except Exception as exc:
        return (type(exc).__name__, str(exc))


@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), {"a": float("-inf")}, {1, 2}, {(1,): 2}, object(), b"x"]
)
def test_dumps_refuses_what_json_refuses(value):
    assert _outcome(_json.dumps, value) == _outcome(_plain, value)
    assert _outcome(_json.dumps, value)[0] in ("ValueError", "TypeError")


@pytest.mark.parametrize(
    "text", ["", " ", " 1", "1 ", "[1] x", "{", '{"a":}', "nul", "NaN", '"\\ud800"', "1e999", "[]"]
)
def test_loads_reads_and_refuses_as_json_does(text):
    assert repr(_outcome(_json.loads, text)) == repr(_outcome(json.loads, text))


def test_a_cycle_is_a_recursion_error():
    cycle: list = []
    cycle.append(cycle)
    with pytest.raises(RecursionError):
        _json.dumps(cycle)
