"""NOTIFY (RFC 1996) to the configured secondaries whenever a zone's serial changes.

Trio shell around two pure parts: `notify_message` (the query: opcode NOTIFY, AA=1, the
zone's SOA as question and, as RFC 1996 §3.7 allows, in the answer section; TSIG-signed when
the target names a key) and `RETRY_DELAYS`, the retransmission schedule of RFC 1996 §3.6
(we wait 1, 2, 4, 8 and 16 s for an answer, then give up and log it; the secondary still
refreshes on its own SOA timers). A secondary acknowledges with a NOTIFY response carrying the
same ID.

`authd serve --notify ADDR:PORT[@KEYNAME]` (repeatable) names the targets; every zone served is
announced to every target. Log lines read as a timeline: `notify big.test. serial 7 to
127.0.0.1:5301: acknowledged after 1 try`.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import trio

from authd.dns import tsig
from authd.dns.xfr import TransferView

log = logging.getLogger("authd.notify")

RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0)  # seconds to wait for each try's answer


@dataclass(frozen=True)
class NotifyTarget:
    host: str
    port: int
    key: dns.name.Name | None = None

    @classmethod
    def parse(cls, text: str) -> NotifyTarget:
        """`HOST:PORT`, `[V6]:PORT`, either with `@KEYNAME` (`--notify`)."""
        addr, _, key = text.rpartition("@") if "@" in text else (text, "", "")
        if addr.startswith("["):
            host, _, port = addr[1:].partition("]:")
        else:
            host, _, port = addr.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"--notify {text!r}: expected HOST:PORT[@KEYNAME]")
        return cls(host, int(port), dns.name.from_text(key) if key else None)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}" + (f" (key {self.key})" if self.key else "")


def notify_message(origin: str, soa: tuple[int, str], msg_id: int, key: dns.name.Name | None,
                   ring: tsig.Keyring) -> tuple[dns.message.Message, bytes]:
    """The NOTIFY query for one zone (RFC 1996 §3.7), and its wire."""
    msg = dns.message.Message(id=msg_id)
    msg.set_opcode(dns.opcode.NOTIFY)
    msg.flags |= dns.flags.AA
    name = dns.name.from_text(origin)
    msg.question = [dns.rrset.RRset(name, dns.rdataclass.IN, dns.rdatatype.SOA)]
    msg.answer = [dns.rrset.from_text_list(name, soa[0], "IN", "SOA", [soa[1]])]
    if key is not None:
        msg.use_tsig(ring, keyname=key)
    return msg, msg.to_wire()


def is_ack(wire: bytes, query: dns.message.Message, ring: tsig.Keyring) -> bool:
    """A NOTIFY response to this query (same ID, QR=1, opcode NOTIFY), signed if it was."""
    try:
        resp = dns.message.from_wire(wire, keyring=ring if query.had_tsig or query.keyname else False,
                                     request_mac=query.mac if query.keyname else b"")
    except dns.exception.DNSException:
        return False
    return (resp.id == query.id and bool(resp.flags & dns.flags.QR)
            and resp.opcode() == dns.opcode.NOTIFY)


async def notify_one(origin: str, serial: int, soa: tuple[int, str], target: NotifyTarget,
                     ring: tsig.Keyring, source_host: str,
                     delays: tuple[float, ...] = RETRY_DELAYS) -> bool:
    """Send one zone's NOTIFY to one target, with retries. True once acknowledged."""
    family = trio.socket.AF_INET6 if ":" in target.host else trio.socket.AF_INET
    sock = trio.socket.socket(family, trio.socket.SOCK_DGRAM)
    try:
        try:
            await sock.bind((source_host if ":" in source_host or family == trio.socket.AF_INET
                             else "::", 0))
        except OSError:
            await sock.bind(("", 0))
        for attempt, wait in enumerate(delays, start=1):
            query, wire = notify_message(origin, soa, random.randrange(1 << 16), target.key, ring)
            try:
                await sock.sendto(wire, (target.host, target.port))
            except OSError as exc:
                log.warning("notify %s serial %d to %s: send failed: %s", origin, serial, target, exc)
            with trio.move_on_after(wait):
                while True:
                    try:
                        data, _ = await sock.recvfrom(65535)
                    except OSError:  # e.g. ICMP port unreachable: wait out this try
                        await trio.sleep_forever()
                    if is_ack(data, query, ring):
                        log.info("notify %s serial %d to %s: acknowledged after %d %s",
                                 origin, serial, target, attempt, "try" if attempt == 1 else "tries")
                        return True
        log.warning("notify %s serial %d to %s: no answer after %d tries; the secondary will "
                    "find the change on its own refresh timer", origin, serial, target, len(delays))
        return False
    finally:
        sock.close()


async def serve_notify(view: TransferView, targets: list[NotifyTarget], ring: tsig.Keyring,
                       source_host: str) -> None:
    """Announce every serial change the transfer view records to every target, forever.

    Each change is sent once per target, concurrently; if several changes of a zone piled up
    meanwhile, only its newest serial is announced (a secondary fetches the rest anyway)."""
    current = [trio.Event()]
    view.listener = lambda: current[0].set()
    async with trio.open_nursery() as nursery:
        while True:
            await current[0].wait()
            current[0] = trio.Event()  # set by any change recorded after this point
            latest: dict[str, int] = {}
            for origin, serial in view.take_changed():
                latest[origin] = serial
            for origin, serial in latest.items():
                zone = view.find(origin)
                if zone is None:
                    continue
                for target in targets:
                    nursery.start_soon(notify_one, origin, serial, zone.soa, target, ring,
                                       source_host)
