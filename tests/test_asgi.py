"""`authd.control.asgi.acknowledge_lifespan`: the one lifespan handshake both ASGI apps use."""

from __future__ import annotations

from typing import Any

from authd.control.asgi import acknowledge_lifespan


def _peer(incoming: list[dict[str, Any]]) -> tuple[Any, Any, list[dict[str, Any]]]:
    """A receive that hands out `incoming` in order, and a send that records what it is sent."""
    queue, sent = list(incoming), []

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    return receive, send, sent


async def test_lifespan_startup_and_shutdown_are_acknowledged_in_order() -> None:
    receive, send, sent = _peer([{"type": "lifespan.startup"}, {"type": "lifespan.unknown"},
                                 {"type": "lifespan.shutdown"}, {"type": "never.read"}])
    await acknowledge_lifespan({"type": "lifespan"}, receive, send)
    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]


async def test_other_scopes_are_not_served() -> None:
    receive, send, sent = _peer([])  # a receive would raise IndexError
    await acknowledge_lifespan({"type": "websocket"}, receive, send)
    assert sent == []
