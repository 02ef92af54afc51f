"""Hypothesis strategies for hostile values: odd Unicode, huge and deeply nested
payloads, NaN/inf, wrong types, empty and very long names."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

#: Unicode with the awkward parts kept: NUL, lone surrogates, controls, RTL marks.
odd_text = st.one_of(
    st.text(st.characters(codec=None, blacklist_categories=()), max_size=30),
    st.sampled_from(["", "\x00", "a\x00b", "\ud800", "\u202e", "é", "🦀", " ", "/", ":", "%00"]),
    st.integers(1, 3).map(lambda n: "k" * (10_000 * n)),
)

floats = st.floats(allow_nan=True, allow_infinity=True)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(2**70), 2**70),
    floats,
    odd_text,
)
json_like = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(odd_text, inner, max_size=4),
    ),
    max_leaves=20,
)
wrong_types = st.one_of(
    st.binary(max_size=8),
    st.sets(st.integers(), max_size=3),
    st.tuples(st.integers()),
    st.builds(object),
    st.dictionaries(st.integers(), st.integers(), min_size=1, max_size=2),
    st.just(math.nan),
    st.just(b"\x00"),
)


class Deep:
    """Stands for a value nested ``depth`` levels deep (built by :func:`real`):
    Hypothesis prints this, not a value too deep to print."""

    def __init__(self, depth: int) -> None:
        self.depth = depth

    def __repr__(self) -> str:
        return f"Deep({self.depth})"


def real(value: Any) -> Any:
    """``value``, with a :class:`Deep` built into the nested value it stands for."""
    if not isinstance(value, Deep):
        return value
    nested: Any = "bottom"
    for i in range(value.depth):
        nested = [nested] if i % 2 else {"k": nested}
    return nested


payloads = st.one_of(
    json_like,
    wrong_types,
    st.sampled_from([10, 100, 900, 5_000, 100_000]).map(Deep),
    st.integers(1, 3).map(lambda n: ["x" * 1000] * (300 * n)),
)
names = st.one_of(odd_text, st.integers(), st.none(), st.binary(max_size=4))
