"""Serving the dashboard on Trio with hypercorn (spec §12.1).

``serve`` opens the store, checks that it holds a trexec schema (it never
creates a database or a schema: a viewer changes nothing it was not asked to),
and serves :func:`create_app` until cancelled or ``shutdown_trigger`` returns.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Awaitable, Callable

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

from .. import _validate
from ..durable._exceptions import StoreError
from ..durable._open import open_store
from ._app import LOOPBACK, create_app

__all__ = ["serve"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8484


def sqlite_path(url: str) -> str | None:
    """The file a ``sqlite:///`` URL names, or None for another kind of store."""
    if not url.startswith("sqlite:///"):
        return None
    return urllib.parse.unquote(url[len("sqlite:///") :].split("?", 1)[0])


def allowed_hosts(host: str) -> frozenset[str] | None:
    """The host names a dashboard bound to ``host`` answers to: loopback names
    (and ``host``) unless it listens on every interface (None: any name)."""
    try:
        if ipaddress.ip_address(host.strip("[]")).is_unspecified:
            return None
    except ValueError:  # a host name
        pass
    literal = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return LOOPBACK | {literal.lower()}


async def serve(
    store_url: str,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    allow_write: bool = False,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the dashboard of the store at ``store_url`` on ``host``:``port``
    (0: any free port) until cancelled, or until ``shutdown_trigger()`` returns
    (then open requests finish first). ``task_status.started`` gets the bound
    URLs (``nursery.start(serve, ...)`` returns them).

    Raises :class:`~trexec.InvalidArgument` for a bad argument, a ``sqlite:///``
    file that does not exist included (spec §12.1: never created here), and
    :class:`~trexec.durable.StoreError` if the store cannot be opened or holds
    no trexec schema (``trexec migrate`` creates it)."""
    if not isinstance(store_url, str):
        _validate.fail("store_url", store_url, 'a store URL such as "sqlite:///trexec.db"')
    if not isinstance(host, str) or not host:
        _validate.fail("host", host, "a host name or IP address to bind, such as '127.0.0.1'")
    _validate.count("port", port)
    if port > 65535:
        _validate.fail("port", port, "a TCP port from 0 to 65535")
    path = sqlite_path(store_url)
    if path is not None and not await trio.Path(path).is_file():
        _validate.fail(
            "store", store_url, f"an existing SQLite database: {path!r} does not exist"
            " (the dashboard never creates one; `trexec migrate --store URL` does)"
        )  # fmt: skip
    async with open_store(store_url) as store:
        try:
            await store.list(limit=1)
        except StoreError as exc:
            reason = str(exc).strip().split("\n", 1)[0]  # the driver's first line says it
            raise StoreError(
                f"cannot read instances: {reason} (is the schema created?"
                " `trexec migrate --store URL` creates it)"
            ) from exc
        app = create_app(store, allow_write=allow_write, hosts=allowed_hosts(host))
        config = Config()
        config.bind = [f"[{host}]:{port}" if ":" in host.strip("[]") else f"{host}:{port}"]
        config.accesslog = None
        config.errorlog = "-"  # a failing request's traceback; not the startup chatter:
        config.loglevel = "WARNING"  # the command prints the URL itself
        try:
            await hypercorn_serve(
                app,  # type: ignore[arg-type]
                config,
                shutdown_trigger=shutdown_trigger or trio.sleep_forever,
                task_status=task_status,
            )
        except BaseExceptionGroup as group:
            # spec §0: hypercorn's nurseries wrap a lone error (a port in use); the
            # caller gets that error, not a group.
            error = sole_error(group)
            if isinstance(error, OSError):
                _validate.fail("port", port, f"a port free to listen on at {host} ({error})")
            if error is group or not isinstance(error, Exception):
                raise
            raise error from None


def sole_error(error: BaseException) -> BaseException:
    """The one exception inside nested single-member groups (else ``error``)."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error
