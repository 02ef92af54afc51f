"""The dashboard's ASGI app (Starlette, on AnyIO, so it runs on Trio): pages,
JSON API and writes (spec §12.2-§12.6).

Reads never change the store; writes are POSTs that answer 403 unless the app
was made with ``allow_write`` and carry the ``X-Trexec-Write`` header from a
same-origin page (spec §12.4). A failing store answers 503 on that request only.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from typing import Any

import trio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from .._exceptions import InvalidArgument
from ..durable._exceptions import NoTarget, StoreError
from ..durable._store import Store
from ._queries import MAX_ID, instance_detail, instance_page, parse_filters
from ._render import render

__all__ = ["create_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The header a write must carry (spec §12.4): a cross-origin page cannot set it
#: without a CORS preflight, which this app never approves.
WRITE_HEADER = "x-trexec-write"
MAX_BODY = 1_000_000
MAX_NAME = 200
#: Loopback names a dashboard bound to loopback answers to (spec §12.4).
LOOPBACK = frozenset({"127.0.0.1", "localhost", "[::1]"})
HEADERS = [
    # spec §12.4: no inline script or style can run, even if escaping failed.
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        b" connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]
STATIC = {"dashboard.css": "text/css", "dashboard.js": "text/javascript"}


def _hostname(host: str) -> str:
    host = host.lower()
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.split(":", 1)[0]


class _Guard:
    """Refuses a request whose Host is not one the dashboard answers to (DNS
    rebinding, spec §12.4) and adds the security headers to every response."""

    def __init__(self, app: ASGIApp, hosts: Collection[str] | None) -> None:
        self.app, self.hosts = app, hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        host = headers.get(b"host", b"").decode("latin-1")
        if self.hosts is not None and _hostname(host) not in self.hosts:
            response = Response(f"unknown host {host!r}", 421, media_type="text/plain")
            await response(scope, receive, send)
            return

        async def guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await self.app(scope, receive, guarded)


@functools.cache
def _static_text(name: str) -> str:
    return importlib.resources.files(__package__).joinpath("static", name).read_text("utf-8")


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def create_app(
    store: Store,
    *,
    allow_write: bool = False,
    hosts: Collection[str] | None = LOOPBACK,
) -> ASGIApp:
    """The dashboard of ``store`` as an ASGI app, to serve in the Trio run that
    opened the store. ``allow_write`` enables cancel and signal (else they answer
    403); ``hosts`` are the host names it answers to (None: any, for a
    dashboard bound to every interface on purpose). Raises
    :class:`~trexec.InvalidArgument` for a bad argument."""
    if not isinstance(store, Store):
        raise InvalidArgument(f"store={store!r}: expected a durable store (durable.open_store)")
    if not isinstance(allow_write, bool):
        raise InvalidArgument(f"allow_write={allow_write!r}: expected True or False")
    if hosts is not None and (isinstance(hosts, str) or not all(isinstance(h, str) for h in hosts)):
        raise InvalidArgument(f"hosts={hosts!r}: expected a collection of host names or None")
    common = {"store_url": store.url, "allow_write": allow_write}

    def page(request: Request, name: str, code: int = 200, **context: Any) -> HTMLResponse:
        if request.query_params.get("fragment") == "1" and not name.startswith("error"):
            name = "_" + name  # spec §12.7: only the live region, for the script
        return HTMLResponse(render(name, **common, **context), code)

    def error(request: Request, code: int, title: str, message: str) -> Response:
        if _is_api(request):
            return JSONResponse({"error": message}, code)
        return HTMLResponse(
            render("error", code=code, title=title, message=message, **common), code
        )

    async def list_page(request: Request) -> Response:
        filters = parse_filters(request.query_params, extra=("fragment",))
        return page(request, "instances", page=await instance_page(store, filters), filters=filters)

    async def detail_page(request: Request) -> Response:
        id_ = request.path_params["id"]
        detail = await instance_detail(store, id_)
        if detail is None:
            return error(request, 404, "Not found", f"There is no instance {id_}.")
        return page(request, "instance", i=detail)

    async def list_api(request: Request) -> Response:
        filters = parse_filters(request.query_params)
        return JSONResponse(await instance_page(store, filters))

    async def detail_api(request: Request) -> Response:
        id_ = request.path_params["id"]
        detail = await instance_detail(store, id_)
        if detail is None:
            return error(request, 404, "Not found", f"there is no instance {id_}")
        return JSONResponse(detail)

    def refused(request: Request) -> Response | None:
        """Why this write is refused (403), or None (spec §12.4)."""
        if not allow_write:
            return error(request, 403, "Forbidden", "writes are disabled: start the"
                         " dashboard with --allow-write")  # fmt: skip
        if request.headers.get(WRITE_HEADER) != "1":
            return error(request, 403, "Forbidden", "a write needs the header"
                         " 'X-Trexec-Write: 1' (CSRF protection)")  # fmt: skip
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.headers['host']}":
            return error(request, 403, "Forbidden", f"origin {origin!r} is not this dashboard")
        site = request.headers.get("sec-fetch-site")
        if site not in (None, "same-origin", "none"):
            return error(request, 403, "Forbidden", f"a {site} request cannot write")
        return None

    async def not_live(request: Request, id_: int) -> Response:
        record = None if id_ > MAX_ID else await store.get(id_)
        if record is None:
            return error(request, 404, "Not found", f"there is no instance {id_}")
        return error(request, 409, "Conflict", f"instance {id_} is already {record.status}")

    async def cancel_api(request: Request) -> Response:
        if (refusal := refused(request)) is not None:
            return refusal
        id_ = request.path_params["id"]
        try:
            _, previous = await store.cancel(id_)
        except NoTarget:
            return await not_live(request, id_)
        return JSONResponse({"id": id_, "status": "cancelled", "previous_status": previous})

    async def signal_api(request: Request) -> Response:
        if (refusal := refused(request)) is not None:
            return refusal
        id_ = request.path_params["id"]
        kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if kind != "application/json":
            return error(request, 415, "Unsupported", "send the signal as application/json")
        body = await request.body()
        if len(body) > MAX_BODY:
            return error(request, 413, "Too large", f"the body is over {MAX_BODY} bytes")
        try:
            data = json.loads(body)
        except ValueError as exc:
            return error(request, 400, "Bad request", f"the body is not JSON: {exc}")
        if not isinstance(data, dict) or set(data) - {"name", "payload", "dedup_key"}:
            return error(request, 400, "Bad request", 'expected {"name": ..., "payload": ...}'
                         ' (and optionally "dedup_key")')  # fmt: skip
        name, dedup_key = data.get("name"), data.get("dedup_key")
        if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
            return error(request, 400, "Bad request", f"name={name!r}: expected a non-empty"
                         f" string of at most {MAX_NAME} characters")  # fmt: skip
        if dedup_key is not None and not isinstance(dedup_key, str):
            return error(request, 400, "Bad request", f"dedup_key={dedup_key!r}: expected a string")
        payload = json.dumps(data.get("payload"))
        try:
            delivery = await store.deliver_signal(id_, name, payload, dedup_key)
        except NoTarget:
            return await not_live(request, id_)
        return JSONResponse(
            {"id": id_, "signal_id": delivery.signal_id, "duplicate": delivery.duplicate}
        )

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return error(request, 404, "Not found", f"no file {name!r}")
        return Response(_static_text(name), media_type=STATIC[name])

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error(request, exc.status_code, "Error", str(exc.detail))

    async def on_invalid(request: Request, exc: Exception) -> Response:
        return error(request, 400, "Bad request", str(exc))

    async def on_store(request: Request, exc: Exception) -> Response:
        # spec §12.6: this request fails; the server, and the next request, go on.
        reason = "did not answer in time" if isinstance(exc, trio.TooSlowError) else str(exc)
        return error(request, 503, "Store unavailable", f"The store is unavailable: {reason}")

    routes = [
        Route("/", list_page),
        Route("/instances/{id:int}", detail_page),
        Route("/api/instances", list_api),
        Route("/api/instances/{id:int}", detail_api),
        Route("/api/instances/{id:int}/cancel", cancel_api, methods=["POST"]),
        Route("/api/instances/{id:int}/signal", signal_api, methods=["POST"]),
        Route("/static/{name}", static),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            HTTPException: on_http,
            InvalidArgument: on_invalid,
            StoreError: on_store,
            trio.TooSlowError: on_store,
        },
    )
    return _Guard(app, None if hosts is None else frozenset(_hostname(h) for h in hosts))
