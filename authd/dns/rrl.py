"""Response-rate limiting (RRL) with slip, as NSD, Knot and BIND do it.

Pure core: no sockets, no clock (every call is given `now`, a monotonic second count). The
responder in `authd.dns.guard` asks `RateLimiter.check(...)` about each UDP response before it is
sent; TCP is never limited, since a TCP handshake proves the source address.

Buckets. A response is charged to a bucket keyed by the client's network (a /24 for IPv4 and a
/56 for IPv6 by default, so one spoofed victim or one attacker network is one key), the
response class and a name, as NSD's `rrl_classify` does: ANSWER by the query name, NODATA,
NXDOMAIN and REFERRAL by the zone or delegation point in the authority section (so a flood of
random names under one zone is one bucket), ERROR by the class alone.

Token bucket (BIND's responses-per-second and window). A bucket earns `rate` credits a
second, holds at most `rate` (one second's burst), and pays one per response. Below zero
the response is limited; the balance may sink to `-rate * window`, so a source that keeps
flooding stays limited, and one that stops is forgiven within `window` seconds.

Slip (RFC-less, common practice). Of the limited responses, every `slip`-th is "slipped": sent
as a minimal TC=1 reply (header and question only, as NSD), so a real client behind a spoofed
source retries over TCP; the rest are dropped. slip 0 drops all, slip 1 slips all.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, field
from typing import NamedTuple

# responses/s per bucket: a resolver caches for the TTL, so it rarely asks one question that
# often; NSD's default is 200 per bucket, Knot's 50 per address
DEFAULT_RATE = 20.0
DEFAULT_SLIP = 2  # every 2nd limited response becomes TC=1 (NSD's and BIND's default)
DEFAULT_WINDOW = 15.0  # seconds of debt a bucket may run up: BIND's default window
DEFAULT_IPV4_PREFIX = 24
DEFAULT_IPV6_PREFIX = 56  # a typical end-site allocation (RFC 6177); NSD's default is 64
MEMO = 10_000  # remembered response classes and client networks
TABLE_LIMIT = 100_000  # buckets kept; past it the oldest are forgotten (a full bucket is no loss)


class RClass(enum.Enum):
    """The response classes that are limited separately (NSD's rrl types, coarsened)."""

    ANSWER = "answer"
    NXDOMAIN = "nxdomain"
    NODATA = "nodata"
    REFERRAL = "referral"
    ERROR = "error"


class Verdict(enum.Enum):
    """What to do with one response."""

    SEND = "send"
    SLIP = "slip"  # send a minimal TC=1 reply (or BADCOOKIE to a cookie client) instead
    DROP = "drop"


def _skip_name(wire: bytes, i: int) -> int:
    while True:
        b = wire[i]
        if b == 0:
            return i + 1
        if b & 0xC0:
            return i + 2
        i += b + 1


def _read_name(wire: bytes, i: int) -> bytes:
    """The name at i as lower-cased uncompressed wire, following pointers (at most 64)."""
    out = bytearray()
    for _ in range(128):
        b = wire[i]
        if b == 0:
            return bytes(out + b"\x00").lower()
        if b & 0xC0 == 0xC0:
            i = (b & 0x3F) << 8 | wire[i + 1]
            continue
        out += wire[i:i + b + 1]
        i += b + 1
    raise IndexError("a name with too many labels or a pointer loop")


def classify(reply: bytes) -> tuple[RClass, bytes]:
    """The response class of a rendered response and the name its bucket is keyed by."""
    try:
        rcode = reply[3] & 0x0F
        if rcode not in (0, 3):
            return RClass.ERROR, b""
        if reply[4] << 8 | reply[5] != 1:
            return RClass.ERROR, b""
        qend = _skip_name(reply, 12) + 4
        if rcode == 0 and (reply[6] << 8 | reply[7]):
            return RClass.ANSWER, _read_name(reply, 12) + reply[qend - 4:qend - 2]
        # no answer: the authority section's first owner is the zone apex (SOA) or the
        # delegation point (NS); RFC 1034 §4.3.2, RFC 2308 §2
        if reply[8] << 8 | reply[9]:
            owner = _read_name(reply, qend)
            at = _skip_name(reply, qend)
            rtype = reply[at] << 8 | reply[at + 1]
        else:
            owner, rtype = b"", 0
        if rcode == 3:
            return RClass.NXDOMAIN, owner
        if rtype == 2 and not reply[2] & 0x04:  # NS in authority, AA=0: a referral
            return RClass.REFERRAL, owner
        return RClass.NODATA, owner
    except IndexError:
        return RClass.ERROR, b""


def network_of(ip: str, v4_prefix: int = DEFAULT_IPV4_PREFIX,
               v6_prefix: int = DEFAULT_IPV6_PREFIX) -> bytes:
    """The client's network as bytes: the address masked to the configured prefix."""
    if ip.startswith("::ffff:") and "." in ip:
        ip = ip[7:]  # an IPv4 client of a dual-stack socket is an IPv4 client (RFC 4291 §2.5.5.2)
    if ":" not in ip:
        parts = ip.split(".")
        if v4_prefix == 24 and len(parts) == 4:  # the common case, without ipaddress
            return ".".join(parts[:3]).encode()
        net = ipaddress.ip_network(f"{ip}/{v4_prefix}", strict=False)
    else:
        net = ipaddress.ip_network(f"{ip.split('%', 1)[0]}/{v6_prefix}", strict=False)
    return net.network_address.packed


@dataclass(slots=True)
class _Bucket:
    balance: float
    stamp: float
    limited: int = 0  # limited responses so far, for the slip count


class Decision(NamedTuple):
    verdict: Verdict
    rclass: RClass
    started: bool  # this response is the first one limited after sending freely (log it)


_TAG = {c: bytes([i]) for i, c in enumerate(RClass)}


@dataclass
class RateLimiter:
    """Per (network, class, name) token buckets with slip. Configure once; `check` per reply."""

    rate: float = DEFAULT_RATE
    slip: int = DEFAULT_SLIP
    window: float = DEFAULT_WINDOW
    v4_prefix: int = DEFAULT_IPV4_PREFIX
    v6_prefix: int = DEFAULT_IPV6_PREFIX
    table_limit: int = TABLE_LIMIT
    # key: (network, class tag + name); plain bytes keep the per-packet hashing in C
    buckets: dict[tuple[bytes, bytes], _Bucket] = field(default_factory=dict)
    counts: dict[Verdict, int] = field(  # limited responses, slipped and dropped
        default_factory=lambda: {Verdict.SLIP: 0, Verdict.DROP: 0})
    _classes: dict[bytes, tuple[bytes, Decision]] = field(default_factory=dict, repr=False)
    _networks: dict[str, bytes] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError("--rrl-rate must be positive")
        if self.slip < 0:
            raise ValueError("--rrl-slip must be 0 or more")
        if self.window < 1:
            raise ValueError("--rrl-window must be at least 1 second")
        self._sent = 0

    def check(self, reply: bytes, ip: str, now: float) -> Decision:
        """Charge this response to its bucket and say whether to send, slip or drop it."""
        # A flood repeats one response and one address: both lookups are remembered (the
        # body after the ID decides the class; at most MEMO entries each, then start over)
        body = reply[2:]
        found = self._classes.get(body)
        if found is None:
            if len(self._classes) >= MEMO:
                self._classes.clear()
            rclass, name = classify(reply)
            found = self._classes[body] = (_TAG[rclass] + name,
                                           Decision(Verdict.SEND, rclass, False))
        what, send = found
        net = self._networks.get(ip)
        if net is None:
            if len(self._networks) >= MEMO:
                self._networks.clear()
            net = self._networks[ip] = network_of(ip, self.v4_prefix, self.v6_prefix)
        key = (net, what)
        b = self.buckets.get(key)
        rate = self.rate
        if b is None:
            if len(self.buckets) >= self.table_limit:
                del self.buckets[next(iter(self.buckets))]  # the oldest bucket made
            b = self.buckets[key] = _Bucket(rate, now)
        else:
            balance = b.balance + (now - b.stamp) * rate
            b.balance = rate if balance > rate else balance
            b.stamp = now
        b.balance -= 1.0
        if b.balance >= 0:
            b.limited = 0
            self._sent += 1
            return send
        floor = -rate * self.window
        if b.balance < floor:
            b.balance = floor
        b.limited += 1
        verdict = Verdict.SLIP if self.slip and b.limited % self.slip == 0 else Verdict.DROP
        self.counts[verdict] += 1
        return Decision(verdict, send.rclass, b.limited == 1)

    @property
    def sent(self) -> int:
        """Responses sent unlimited so far."""
        return self._sent


MODES = ("off", "on", "auto")


@dataclass(frozen=True)
class RrlConfig:
    """The `authd serve --rrl*` settings; each listener builds its own `RateLimiter`."""

    mode: str = "auto"  # auto: on for a non-loopback listener, off on loopback
    rate: float = DEFAULT_RATE
    slip: int = DEFAULT_SLIP
    window: float = DEFAULT_WINDOW
    v4_prefix: int = DEFAULT_IPV4_PREFIX
    v6_prefix: int = DEFAULT_IPV6_PREFIX

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"--rrl must be one of {', '.join(MODES)}, not {self.mode!r}")
        if not 0 <= self.v4_prefix <= 32 or not 0 <= self.v6_prefix <= 128:
            raise ValueError("RRL prefixes must be 0-32 (IPv4) and 0-128 (IPv6)")
        self.limiter()  # checks rate, slip and window

    def enabled_for(self, host: str) -> bool:
        """Whether a listener on host limits: loopback is trusted under auto (the tests and
        benchmarks stay as they were); anything else, the wildcard included, is not."""
        if self.mode != "auto":
            return self.mode == "on"
        try:
            return not ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
        except ValueError:
            return True  # a name: assume it is reachable from elsewhere

    def limiter(self) -> RateLimiter:
        return RateLimiter(self.rate, self.slip, self.window, self.v4_prefix, self.v6_prefix)


def truncated(reply: bytes) -> bytes:
    """The minimal slipped reply: the response's header with TC=1 and its question, nothing
    else (as NSD's rrl_slip), so a real client retries over TCP (RFC 7766 §5)."""
    try:
        qend = _skip_name(reply, 12) + 4 if reply[4] << 8 | reply[5] == 1 else 12
    except IndexError:
        qend = 12
    qd = b"\x00\x01" if qend > 12 else b"\x00\x00"
    return reply[:2] + bytes([reply[2] | 0x02, reply[3]]) + qd + b"\x00" * 6 + reply[12:qend]
