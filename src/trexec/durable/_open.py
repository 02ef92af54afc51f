"""``durable.open_store(url)`` (spec §5.2): pick the store for a URL.

* ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``: the embedded
  store (``_sqlite.py``); options ``synchronous="NORMAL"|"FULL"`` (also as the URL
  query ``?synchronous=FULL``) and ``clock``.
* ``postgresql://...`` / ``postgres://...``: ``_postgres.open_postgres_store(url,
  **options)`` (imported only then; needs the ``trexec[postgres]`` extra).
"""

from __future__ import annotations

import contextlib
import inspect
import urllib.parse
from collections.abc import AsyncIterator, Iterable
from typing import Any

from .. import _extras, _validate
from ._store import Store

__all__ = ["open_store"]


def _check_options(kind: str, options: dict[str, Any], allowed: Iterable[str]) -> None:
    # spec §0.3: an unknown option is InvalidArgument naming it, not a TypeError.
    names = sorted(allowed)
    for name, value in options.items():
        if name not in names:
            _validate.fail(name, value, f"an option of the {kind} store: {', '.join(names)}")


def sqlite_path(url: str) -> str | None:
    """The file a ``sqlite:///`` URL names (None for any other URL)."""
    if not url.startswith("sqlite:///") or len(url) == len("sqlite:///"):
        return None
    return urllib.parse.unquote(url[len("sqlite:///") :].split("?", 1)[0])


_FLAGS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


@contextlib.asynccontextmanager
async def open_store(url: str, **options: Any) -> AsyncIterator[Store]:
    """Open the store at ``url`` for the duration of the block; closes it on exit.

    The schema is not created here: call ``await store.migrate()`` (``open_engine``
    and the CLI do). SQLite options (URL query or keywords): ``synchronous``
    (``NORMAL`` or ``FULL``) and ``calls``: ``auto`` (the default: the engine's
    short writes on the Trio thread while uncontended, the rest on the store's
    thread; spec §5.11.7), ``thread`` (every call on the store's thread: the
    loop never pauses for the database) or ``inline`` (every call on the Trio
    thread; spec §5.11.6). ``inline=true`` is ``calls=inline``, ``inline=false``
    is ``calls=thread``.

    Raises :class:`~trexec.InvalidArgument` for a URL that names no supported
    store or a bad option, :class:`~trexec.MissingExtra` for a ``postgresql://`` URL
    without the ``postgres`` extra, :class:`~trexec.durable.StoreError` if it
    cannot be opened.
    """
    if not isinstance(url, str):
        _validate.fail("url", url, 'a store URL such as "sqlite:///trexec.db"')
    try:
        url.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: no path or connection string holds it
        _validate.fail("url", url, "a store URL in UTF-8 text")
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite" and url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        from ._sqlite import open_sqlite_store

        parsed = urllib.parse.urlsplit(url)
        path = sqlite_path(url) or ""
        query = dict(urllib.parse.parse_qsl(parsed.query))
        for name, value in query.items():
            if name == "inline":  # spec §5.11.6
                if value.lower() not in _FLAGS:
                    _validate.fail("url", url, "?inline=true or ?inline=false")
                options.setdefault(name, _FLAGS[value.lower()])
            elif name in ("synchronous", "calls"):
                options.setdefault(name, value)
            else:
                _validate.fail(
                    "url",
                    url,
                    "sqlite:///path with only ?synchronous=NORMAL|FULL, ?calls= and ?inline=",
                )
        sync = str(options.get("synchronous", "NORMAL")).upper()
        if sync not in ("NORMAL", "FULL", "EXTRA", "OFF"):
            _validate.fail("synchronous", sync, '"NORMAL" or "FULL"')
        options["synchronous"] = sync
        _check_options("sqlite", options, ("synchronous", "clock", "inline", "calls"))
        if not isinstance(options.get("inline", False), bool):
            _validate.fail("inline", options["inline"], "True or False")
        if "calls" in options and "inline" in options:
            _validate.fail("inline", options["inline"], "no inline= together with calls=")
        if "clock" in options:
            _validate.callable_("clock", options["clock"])
        async with open_sqlite_store(path, **options) as store:
            yield store
    elif scheme in ("postgresql", "postgres"):
        for module in ("psycopg", "psycopg_pool"):  # one line naming the extra, no traceback
            _extras.require(module, f"a {scheme}:// store", "postgres")
        from ._postgres import (  # type: ignore[import-not-found,unused-ignore]
            PostgresStore,
            open_postgres_store,
        )

        params = inspect.signature(PostgresStore).parameters
        _check_options("postgresql", options, [n for n in params if n != "url"])
        async with open_postgres_store(url, **options) as store:
            yield store
    else:
        _validate.fail("url", url, 'a store URL: "sqlite:///path" or "postgresql://..."')
