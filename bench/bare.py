"""The ceiling of the stack: an ASGI endpoint that answers a constant JSON body (same server, same client)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BODY = (
    b'{"jsonrpc":"2.0","id":1,"error":null,'
    b'"result":{"success":true,"timestamp":1.0,"params":{"update":0,"software-jobs":[]}}}'
)


async def constant(request: Request) -> Response:
    await request.body()
    return Response(BODY, media_type="application/json")


app = Starlette(routes=[Route("/api-agent.php", constant, methods=["POST"])])
