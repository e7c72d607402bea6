"""Who may use the resolver: client access control as Unbound does it (pure core).

Unbound answers only its own host unless told otherwise (`access-control: 127.0.0.0/8 allow`
and `::1 allow` are its defaults) and `access-control: NET refuse` answers everyone else
REFUSED. We do the same: loopback is always allowed, `--allow CIDR` adds networks, and any
other client gets a header-only REFUSED (Unbound's `deny_refuse` via `query_error`), or
nothing when the packet is not a query at all. An open resolver is an amplifier for anyone on
the Internet (RFC 5358 §4: recursive service only for intended clients), so listening on a
non-loopback address without an explicit allow list is refused at startup
(`check_listen`). Pure: no sockets, no time; addresses are the strings `recvfrom` gives.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

LOOPBACK: tuple[Network, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)
# Bound on the per-address decision memo (a spoofed-source flood must not grow memory).
MEMO_LIMIT = 65536


class AclError(ValueError):
    """A CIDR that does not parse, or a listen address that would make an open resolver."""


def parse_network(text: str) -> Network:
    """'192.0.2.0/24', '2001:db8::/32', or a single address ('10.1.2.3' is a /32)."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError as exc:
        raise AclError(f"not a CIDR network: {text!r} (examples: 10.0.0.0/8, 2001:db8::/32)") from exc


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])  # drop an IPv6 zone index
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped  # a dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d
    return addr


@dataclass
class AccessControl:
    """The networks served (loopback by default); `allows(host)` is memoised per address."""

    networks: tuple[Network, ...] = LOOPBACK
    memo: dict[str, bool] = field(default_factory=dict)

    @classmethod
    def from_cidrs(cls, cidrs: Iterable[str]) -> AccessControl:
        """Loopback plus `cidrs`, as Unbound keeps its localhost defaults beside the config."""
        return cls(LOOPBACK + tuple(parse_network(c) for c in cidrs))

    def allows(self, host: str) -> bool:
        ok = self.memo.get(host)
        if ok is None:
            addr = _address(host)
            ok = addr is not None and any(
                addr.version == net.version and addr in net for net in self.networks
            )
            if len(self.memo) >= MEMO_LIMIT:
                self.memo.clear()
            self.memo[host] = ok
        return ok

    def describe(self) -> str:
        return ", ".join(str(n) for n in self.networks)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and 'localhost'; wildcard and other addresses are not."""
    if host == "localhost":
        return True
    addr = _address(host)
    return addr is not None and addr.is_loopback


def check_listen(host: str, allow: Iterable[str]) -> None:
    """Refuse a non-loopback listen address unless the operator gave an allow list.

    Raises AclError with the one line to show.
    """
    if not is_loopback(host) and not list(allow):
        raise AclError(
            f"refusing to listen on {host} without --allow: that would be an open resolver "
            "(RFC 5358); give --allow CIDR for the clients it may serve (loopback is always allowed)"
        )


def refused_reply(wire: bytes) -> bytes | None:
    """Header-only REFUSED for a query from a client not allowed (Unbound `deny_refuse`).

    Runts and responses (QR=1) get nothing, as Unbound's `worker_check_request` drops them;
    RD is kept, QR set, every count zero (Unbound `query_error`), so the reply is never
    larger than the query (no amplification).
    """
    if len(wire) < 12 or wire[2] & 0x80:
        return None
    return wire[:2] + bytes((0x80 | (wire[2] & 0x01), 5)) + bytes(8)
