"""The real servers' shared routes, as an ASGI app (uvicorn, hypercorn) and an aiohttp.web app.

Run in a child process by tests/http/realservers.py. Routes, the same on
every server (nginx too, see realservers.NGINX_CONF):

- ``GET /cl``: ``hello`` with Content-Length (HEAD: the same head, no body);
- ``GET /chunked``: ``hello world`` in two writes, no length (chunked);
- ``GET /port``: the client's source port (same port: a reused connection);
- ``GET /nocontent``: 204;
- ``GET /gzip``: ``GZIP_TEXT`` gzip-compressed, ``Content-Encoding: gzip``.
"""

from __future__ import annotations

import gzip
import sys
from collections.abc import Awaitable, Callable
from typing import Any

GZIP_TEXT = b"hello gzip hello gzip hello gzip"
_GZIPPED = gzip.compress(GZIP_TEXT, mtime=0)
_TEXT = [(b"content-type", b"text/plain")]

Scope = dict[str, Any]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def asgi(scope: Scope, receive: Callable[[], Awaitable[Any]], send: Send) -> None:
    """The routes as an ASGI 3 app (lifespan ignored)."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/chunked":
        await send({"type": "http.response.start", "status": 200, "headers": _TEXT})
        await send({"type": "http.response.body", "body": b"hello ", "more_body": True})
        await send({"type": "http.response.body", "body": b"world"})
        return
    status, headers, body = 404, list(_TEXT), b"not found"
    if path == "/cl":
        status, body = 200, b"hello"
    elif path == "/port":
        status, body = 200, str(scope["client"][1]).encode()
    elif path == "/nocontent":
        status, headers, body = 204, [], b""
    elif path == "/gzip":
        status, body = 200, _GZIPPED
        headers.append((b"content-encoding", b"gzip"))
    if status != 204:
        headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def run_aiohttp(port: int) -> None:
    """Serve the routes with aiohttp.web on 127.0.0.1:``port`` until killed."""
    from aiohttp import web

    async def cl(request: web.Request) -> web.Response:
        return web.Response(body=b"hello", content_type="text/plain")

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b"hello ")
        await response.write(b"world")
        await response.write_eof()
        return response

    async def port_of(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        return web.Response(body=str(peer[1] if peer else 0).encode(), content_type="text/plain")

    async def nocontent(request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def gzipped(request: web.Request) -> web.Response:
        headers = {"Content-Encoding": "gzip"}
        return web.Response(body=_GZIPPED, content_type="text/plain", headers=headers)

    app = web.Application()
    app.router.add_get("/cl", cl)  # add_get adds HEAD too
    app.router.add_get("/chunked", chunked)
    app.router.add_get("/port", port_of)
    app.router.add_get("/nocontent", nocontent)
    app.router.add_get("/gzip", gzipped)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    run_aiohttp(int(sys.argv[1]))
