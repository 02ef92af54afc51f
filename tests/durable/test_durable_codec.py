"""States, results and payloads as JSON text (spec §5.1.4): a plain JSON value
is encoded without the cattrs pass, to the same text cattrs would give."""

from __future__ import annotations

import enum

import attrs
import pytest

from trexec.durable._machine import Codec


class Level(enum.IntEnum):
    HIGH = 2


class Colour(enum.StrEnum):
    RED = "red"


@attrs.define
class Point:
    x: int = 1


@pytest.mark.parametrize(
    "value",
    [
        {"a": 1, "b": [1.5, "x", None, True]},
        {"level": Level.HIGH, "colour": Colour.RED},
        {"point": Point()},
        [Point(), {"t": (1, 2)}],
        {1: "int key"},
        "text",
        7,
        False,
    ],
)
def test_plain_values_encode_as_through_cattrs(value):
    codec = Codec()
    assert codec.dumps(value) == codec._encode(codec.converter.unstructure(value))


def test_what_json_refuses_is_still_refused():
    codec = Codec()
    with pytest.raises(TypeError):
        codec.dumps({"s": {1, 2}})
    with pytest.raises(ValueError):
        codec.dumps({"f": float("nan")})
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(ValueError, match="nested too deeply"):
        codec.dumps(deep)
