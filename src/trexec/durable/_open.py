"""``durable.open_store(url)`` (spec §5.2): pick the store for a URL.

* ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``: the embedded
  store (``_sqlite.py``); options ``synchronous="NORMAL"|"FULL"`` (also as the URL
  query ``?synchronous=FULL``) and ``clock``.
* ``postgresql://...`` / ``postgres://...``: ``_postgres.open_postgres_store(url,
  **options)`` (imported only then; needs the ``trexec[postgres]`` extra).
"""

from __future__ import annotations

import contextlib
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

from .. import _validate
from ._store import Store

__all__ = ["open_store"]


@contextlib.asynccontextmanager
async def open_store(url: str, **options: Any) -> AsyncIterator[Store]:
    """Open the store at ``url`` for the duration of the block; closes it on exit.

    The schema is not created here: call ``await store.migrate()`` (``open_engine``
    and the CLI do). Raises :class:`~trexec.InvalidArgument` for a URL that names no
    supported store, :class:`~trexec.durable.StoreError` if it cannot be opened.
    """
    if not isinstance(url, str):
        _validate.fail("url", url, 'a store URL such as "sqlite:///trexec.db"')
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite" and url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        from ._sqlite import open_sqlite_store

        parsed = urllib.parse.urlsplit(url)
        path = urllib.parse.unquote(url[len("sqlite:///") :].split("?", 1)[0])
        query = dict(urllib.parse.parse_qsl(parsed.query))
        for name, value in query.items():
            if name != "synchronous":
                _validate.fail("url", url, "sqlite:///path with only ?synchronous=NORMAL|FULL")
            options.setdefault(name, value)
        sync = str(options.get("synchronous", "NORMAL")).upper()
        if sync not in ("NORMAL", "FULL", "EXTRA", "OFF"):
            _validate.fail("synchronous", sync, '"NORMAL" or "FULL"')
        options["synchronous"] = sync
        async with open_sqlite_store(path, **options) as store:
            yield store
    elif scheme in ("postgresql", "postgres"):
        from ._postgres import open_postgres_store  # type: ignore[import-not-found,unused-ignore]

        async with open_postgres_store(url, **options) as store:
            yield store
    else:
        _validate.fail("url", url, 'a store URL: "sqlite:///path" or "postgresql://..."')
