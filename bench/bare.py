"""The ceiling of the stack: an ASGI endpoint that answers a constant JSON body (same server, same client)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BODY = (  # the size and shape of a real answer with one job
    b'{"jsonrpc":"2.0","id":1,"error":null,"result":{"success":true,"timestamp":1764000000.123456,'
    b'"params":{"update":0,"software-jobs":[{"id":1,"container-id":2,"package-id":1,"download":false,'
    b'"procedure":"true","sequence-mode":0,"restart":null,"shutdown":null,"exit":null}],'
    b'"logins-since":"2026-11-24 06:00:00","events":[]}}}'
)


async def constant(request: Request) -> Response:
    await request.body()
    return Response(BODY, media_type="application/json")


app = Starlette(routes=[Route("/api-agent.php", constant, methods=["POST"])])
