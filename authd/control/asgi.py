"""ASGI plumbing shared by authd's control API (`authd.control.app`) and enactor's live outage
page (`enactor.drills.web`): the type names of an ASGI app's arguments, and the lifespan
handshake every app served by hypercorn must answer.

No I/O of its own (it awaits only the `receive` and `send` it is given); no trio import. It lives
in authd so both may import it (enactor may import authd, never the other way round).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def acknowledge_lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer a non-HTTP scope: a `lifespan` one is acknowledged, any other is not served.

    ASGI lifespan protocol (asgiref spec "Lifespan Protocol"): the server sends
    `lifespan.startup` once and `lifespan.shutdown` once; each is acknowledged with its
    `.complete` message (nothing to set up or tear down here). Returns after the shutdown,
    or at once for a scope that is not `lifespan` (e.g. `websocket`: not offered).
    """
    if scope["type"] != "lifespan":
        return
    while True:
        msg = await receive()
        if msg["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif msg["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
