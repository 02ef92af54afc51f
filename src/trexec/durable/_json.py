"""JSON text on the engine's hot paths (spec §5.1.4): what ``json`` does with
compact separators and ``allow_nan=False``, without its per-call set-up.

``JSONEncoder.encode`` builds a C encoder (and a dict to detect cycles) on
every call, and ``json.loads`` runs a regex for whitespace around the C
scanner: microseconds per call, and every durable step encodes a state and
decodes one. Here the C encoder is built once, without the cycle check (a
cycle recurses until ``RecursionError``, which callers already turn into "too
deeply nested"); a text the C scanner does not read to its end in one call
(whitespace, extra data, an error) goes through ``json.loads``, which decides.
Without CPython's accelerators, both are the plain ``json`` calls.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json import decoder as _decoder, encoder as _encoder
from typing import Any

__all__ = ["dumps", "loads"]


def _unserializable(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _plain_dumps() -> Callable[[Any], str]:
    return json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def _fast_dumps() -> Callable[[Any], str]:
    make = getattr(_encoder, "c_make_encoder", None)
    if make is None:
        return _plain_dumps()
    encode = make(
        None,  # no cycle check: see the module's docstring
        _unserializable,
        _encoder.encode_basestring_ascii,
        None,  # indent
        ":",
        ",",
        False,  # sort_keys
        False,  # skipkeys
        False,  # allow_nan
    )
    join = "".join

    def dumps(value: Any) -> str:
        return join(encode(value, 0))

    return dumps


def _fast_loads() -> Callable[[str], Any]:
    scan = getattr(_decoder, "c_make_scanner", None)
    if scan is None:
        return json.loads
    scan_once = scan(json.JSONDecoder())
    plain = json.loads

    def loads(text: str) -> Any:
        try:
            value, end = scan_once(text, 0)
        except StopIteration:
            return plain(text)  # raises the JSONDecodeError json.loads would
        if end != len(text):
            return plain(text)
        return value

    return loads


#: JSON text of a value (compact; NaN and infinities refused with ValueError,
#: values json cannot take with TypeError).
dumps = _fast_dumps()
#: The value of a JSON text; raises ``json.JSONDecodeError`` (a ValueError).
loads = _fast_loads()
