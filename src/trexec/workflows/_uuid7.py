"""Time-ordered run keys (spec §6.2.3).

A run's default key is ``run:<workflow>:<uuid>``. The uuid is a version 7 UUID
(RFC 9562): 48 bits of Unix time in milliseconds, then 74 random bits. Keys made
later sort later, so a new run's key (and its steps', which extend it) lands at
the end of the store's key indexes, and the run's end removes it from a page
that recent runs share. A random (version 4) uuid put every run's index entries
on a random page: about one more page written per run, which measured as 35
against 22 µs of SQLite time per run of the workflow bench (bench/optimisations.md).
"""

from __future__ import annotations

import os
import time
import uuid


def uuid7() -> uuid.UUID:
    """A version 7 UUID: the time now in milliseconds, then random bits."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")  # 80 bits, 74 of them used
    rand_a = (rand >> 68) & 0xFFF  # 12 bits after the version
    rand_b = rand & ((1 << 62) - 1)  # 62 bits after the variant
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return uuid.UUID(int=value)
