"""The DNS server shells: UDP and TCP on trio, moving bytes to and from the serving index.

Trio shell. All answering happens in `ServingIndex.respond` (pure); this module only receives,
sends, times out and limits. A packet that makes the index raise is logged and dropped: a
malformed packet never takes the server down.

UDP waits with `trio.lowlevel.wait_readable` and then drains the non-blocking socket in a loop
(a budget per wakeup keeps other tasks fair): about four times the rate of awaiting
`recvfrom` per packet. TCP follows RFC 7766: two-byte length prefix (RFC 1035 §4.2.2),
several queries per connection (pipelined; we answer each as it is read, which is one of the
orders §6.2.1.1 allows), an idle timeout (§6.2.3) and a connection limit (§6.2.2).
"""

from __future__ import annotations

import bisect
import errno
import logging
import os
import socket
from typing import Any

import trio

from authd.index import ServingIndex

log = logging.getLogger("authd")

UDP_BUDGET = 256  # datagrams handled per wakeup before yielding to other tasks
DEFAULT_TCP_IDLE_TIMEOUT = 10.0  # seconds; RFC 7766 §6.2.3 suggests starting from ~10 s
DEFAULT_TCP_MAX_CONNECTIONS = 256


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _bind_pair(host: str, port: int, reuse_port: bool) -> tuple[socket.socket, socket.socket]:
    """A UDP and a TCP socket on the same port (an ephemeral one when port is 0)."""
    fam = _family(host)
    for _attempt in range(20):
        udp = socket.socket(fam, socket.SOCK_DGRAM)
        tcp = socket.socket(fam, socket.SOCK_STREAM)
        try:
            for s in (udp, tcp):
                if reuse_port:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            udp.bind((host, port))
            bound = udp.getsockname()[1]
            tcp.bind((host, bound))
            tcp.listen(128)
            udp.setblocking(False)
            tcp.setblocking(False)
            return udp, tcp
        except OSError as exc:
            udp.close()
            tcp.close()
            if port != 0 or exc.errno != errno.EADDRINUSE:
                raise
    raise OSError(errno.EADDRINUSE, "no free port pair for UDP and TCP")


async def serve_udp(index: ServingIndex, sock: socket.socket) -> None:
    """Answer datagrams on a bound non-blocking UDP socket, forever."""
    respond = index.respond
    recvfrom = sock.recvfrom
    sendto = sock.sendto
    # The index's exact-bytes table, looked up inline: a repeat query costs one dict lookup
    # and one concatenation here, no call into the index (the index clears it on change).
    exact_get = index.exact_udp.get
    random = index.random
    bisect_right = bisect.bisect_right
    while True:
        await trio.lowlevel.wait_readable(sock)
        for _ in range(UDP_BUDGET):
            try:
                data, addr = recvfrom(4096)  # queries are small; bigger is malformed
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # e.g. ICMP errors surfacing as ECONNREFUSED
                log.debug("udp receive error: %s", exc)
                continue
            hit = exact_get(data[2:])
            try:
                if hit is None:
                    reply = respond(data, tcp=False, source=addr[0])
                elif hit.__class__ is bytes:
                    reply = data[:2] + hit  # type: ignore[operator]
                else:
                    reply = data[:2] + hit[1][bisect_right(hit[0], random())]  # type: ignore[index]
            except Exception:
                log.exception("error answering a %d-byte UDP packet from %s", len(data), addr)
                continue
            if reply is not None:
                try:
                    sendto(reply, addr)
                except OSError as exc:  # a full buffer or unreachable client: drop, as UDP may
                    log.debug("udp send to %s failed: %s", addr, exc)
        else:
            await trio.lowlevel.checkpoint()


async def _serve_tcp_connection(
    index: ServingIndex, stream: trio.SocketStream, idle_timeout: float
) -> None:
    buf = bytearray()
    try:
        peer = stream.socket.getpeername()[0]  # for routing by client location
    except OSError:
        peer = None
    try:
        while True:
            # RFC 7766 §6.2.3: close a connection that stays idle
            with trio.move_on_after(idle_timeout) as scope:
                while True:
                    if len(buf) >= 2:
                        need = 2 + int.from_bytes(buf[:2], "big")
                        if len(buf) >= need:
                            break
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    buf += data
            if scope.cancelled_caught:
                return
            out = bytearray()
            # Answer every complete query we hold (pipelining, RFC 7766 §6.2.1.1)
            while len(buf) >= 2:
                need = 2 + int.from_bytes(buf[:2], "big")
                if len(buf) < need:
                    break
                query = bytes(buf[2:need])
                del buf[:need]
                try:
                    reply = index.respond(query, tcp=True, source=peer)
                except Exception:
                    log.exception("error answering a %d-byte TCP query", len(query))
                    reply = None
                if reply is not None:
                    out += len(reply).to_bytes(2, "big") + reply
            if out:
                await stream.send_all(bytes(out))
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        return
    finally:
        await trio.aclose_forcefully(stream)


async def serve_tcp(
    index: ServingIndex,
    sock: socket.socket,
    *,
    idle_timeout: float = DEFAULT_TCP_IDLE_TIMEOUT,
    max_connections: int = DEFAULT_TCP_MAX_CONNECTIONS,
) -> None:
    """Accept DNS-over-TCP connections on a listening socket, forever."""
    listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
    active = 0
    refused_logged = False

    async def handle(stream: trio.SocketStream) -> None:
        nonlocal active
        try:
            await _serve_tcp_connection(index, stream, idle_timeout)
        finally:
            active -= 1

    async with trio.open_nursery() as nursery:
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:  # e.g. EMFILE: back off briefly rather than spin
                log.error("tcp accept failed: %s", exc)
                await trio.sleep(0.1)
                continue
            if active >= max_connections:
                # RFC 7766 §6.2.2: a server may limit connections; close the newest at once
                if not refused_logged:
                    log.error("tcp connection limit %d reached; closing new connections",
                              max_connections)
                    refused_logged = True
                await trio.aclose_forcefully(stream)
                continue
            refused_logged = False
            active += 1
            nursery.start_soon(handle, stream)


async def serve_dns(
    index: ServingIndex,
    host: str = "127.0.0.1",
    port: int = 5353,
    *,
    reuse_port: bool = False,
    tcp_idle_timeout: float = DEFAULT_TCP_IDLE_TIMEOUT,
    tcp_max_connections: int = DEFAULT_TCP_MAX_CONNECTIONS,
    worker: str = "1/1",
    task_status: Any = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve DNS over UDP and TCP on (host, port) until cancelled.

    Args:
        index: the serving index to answer from (fed elsewhere; read here).
        host, port: where to listen; port 0 picks a free port for both UDP and TCP.
        reuse_port: set SO_REUSEPORT so several worker processes share the port.
        tcp_idle_timeout: seconds a TCP connection may stay silent before we close it.
        tcp_max_connections: open TCP connections beyond which new ones are closed.
        worker: "i/n", for the start log line.
        task_status: `task_status.started((host, port))` once both sockets listen.

    Never returns; cancelling it closes the sockets.
    """
    udp, tcp = _bind_pair(host, port, reuse_port)
    bound = udp.getsockname()[1]
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve_udp, index, udp)
            nursery.start_soon(
                lambda: serve_tcp(
                    index, tcp, idle_timeout=tcp_idle_timeout, max_connections=tcp_max_connections
                )
            )
            log.info(
                "authd listening on %s port %d (udp+tcp), worker %s, pid %d, zones: %s",
                host, bound, worker, os.getpid(), ", ".join(index.zone_names()) or "none",
            )
            task_status.started((host, bound))
    finally:
        udp.close()
        tcp.close()
