"""DNS cookies and RRL against real clients: dig +cookie, kdig +cookie, and a UDP flood."""

from __future__ import annotations

import functools
import re
import socket

import dns.message
import pytest
import trio

from authd.dns.cookies import server_cookie_age
from authd.dns.rrl import RrlConfig
from authd.dns.server import serve_dns
from tests.conftest import AuthdServer, require_tool, start_authd

COOKIE_RE = re.compile(r"COOKIE: ([0-9a-fA-F]+)( \(good\))?")


async def _run(*cmd: str) -> str:
    result = await trio.run_process(list(cmd), capture_stdout=True, capture_stderr=True,
                                    check=False)
    return result.stdout.decode(errors="replace")


async def _dig(server, *args: str) -> str:
    return await _run(require_tool("dig"), f"@{server.host}", "-p", str(server.port),
                      "+norecurse", "+tries=1", "+time=3", *args)


async def test_dig_cookie_is_good_and_a_returned_server_cookie_is_kept(authd):
    out = await _dig(authd, "+cookie", "host.example.test.", "A")
    m = COOKIE_RE.search(out)
    assert m and m.group(2), out  # dig checks the client half and prints (good)
    assert "status: NOERROR" in out and "192.0.2.80" in out
    cookie = m.group(1)
    assert len(cookie) == 48 and cookie[16:18] == "01"  # 8 + 16 bytes, RFC 9018 version 1
    again = await _dig(authd, f"+cookie={cookie}", "mail.example.test.", "A")
    m2 = COOKIE_RE.search(again)
    assert m2 and m2.group(1) == cookie and m2.group(2), again  # valid: echoed as it is
    tcp = await _dig(authd, "+tcp", f"+cookie={cookie[:16]}", "host.example.test.", "A")
    m3 = COOKIE_RE.search(tcp)
    assert m3 and m3.group(1)[:16] == cookie[:16] and m3.group(2), tcp  # over TCP too


async def test_dig_malformed_cookie_gets_formerr_with_an_opt(authd):
    out = await _dig(authd, "+cookie=0011223344", "host.example.test.", "A")
    assert "status: FORMERR" in out and "OPT PSEUDOSECTION" in out, out


async def test_kdig_cookie_gets_its_client_cookie_back_with_a_valid_server_cookie(authd):
    kdig = require_tool("kdig")
    args = [kdig, f"@{authd.host}", "-p", str(authd.port), "+norecurse", "+retry=0"]
    out = await _run(*args, "+cookie=0123456789abcdef", "host.example.test.", "A")
    m = COOKIE_RE.search(out)
    assert m and m.group(1).lower().startswith("0123456789abcdef") and len(m.group(1)) == 48, out
    full = m.group(1)
    again = await _run(*args, f"+cookie={full}", "host.example.test.", "A")
    m2 = COOKIE_RE.search(again)
    assert m2 and m2.group(1).lower() == full.lower(), again
    assert "NOERROR" in again and "192.0.2.80" in again


@pytest.mark.realtime
async def test_under_a_flood_rrl_slips_and_a_client_with_a_cookie_gets_full_answers(nursery,
                                                                                 index):
    server = await start_authd(nursery, index, rrl=RrlConfig("on", rate=5, window=5))
    # a client that learned its server cookie over TCP (never rate-limited)
    tcp = await _dig(server, "+tcp", "+cookie", "host.example.test.", "A")
    cookie = COOKIE_RE.search(tcp).group(1)  # type: ignore[union-attr]
    # the flood: 300 identical queries from the same /24, no cookie
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await sock.connect((server.host, server.port))
    query = dns.message.make_query("big.example.test.", "TXT", use_edns=0, payload=1232)
    for i in range(300):
        query.id = i
        await sock.send(query.to_wire())
    replies: list[dns.message.Message] = []
    with trio.move_on_after(2):  # the drops never come: stop listening after 2 s of quiet
        while True:
            replies.append(dns.message.from_wire(await sock.recv(65535)))
    sock.close()
    full = [r for r in replies if r.answer]
    tc = [r for r in replies if r.flags & dns.flags.TC and not r.answer]
    assert len(full) <= 5 + 5 * 3  # the burst, plus what the rate earns while we send
    assert len(tc) >= 100 and len(replies) < 200  # every 2nd limited one slips, the rest drop
    # dig, with the cookie, in the same /24 during the same flood: a full answer, (good)
    out = await _dig(server, f"+cookie={cookie}", "+ignore", "big.example.test.", "TXT")
    assert "ANSWER: 6" in out and "(good)" in out and " tc" not in out, out
    # dig without a cookie is limited (the flood's debt lasts the window): a TC=1 slip or
    # nothing
    plain = await _dig(server, "+nocookie", "+ignore", "big.example.test.", "TXT")
    assert "ANSWER: 6" not in plain, plain


async def test_dig_cookie_over_ipv6_hashes_the_16_byte_address(nursery, index):
    secret = bytes(range(16))
    try:
        host, port = await nursery.start(
            functools.partial(serve_dns, index, "::1", 0, cookie_secret=secret))
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    server = AuthdServer(host, port, index)
    out = await _dig(server, "+cookie=0123456789abcdef", "host.example.test.", "A")
    m = COOKIE_RE.search(out)
    assert m and m.group(2), out
    value = bytes.fromhex(m.group(1))
    stamp = int.from_bytes(value[12:16], "big")
    # RFC 9018 §4.2: the hash covers the client's 16-byte IPv6 address
    assert server_cookie_age(secret, value[:8], value[8:], "::1", stamp) == 0
    assert server_cookie_age(secret, value[:8], value[8:], "127.0.0.1", stamp) is None
    again = await _dig(server, f"+cookie={m.group(1)}", "host.example.test.", "A")
    assert COOKIE_RE.search(again).group(1) == m.group(1)  # type: ignore[union-attr]


@pytest.mark.realtime
async def test_a_limited_client_that_retries_on_badcookie_gets_through(nursery, index):
    """RRL's slip to a cookie client is BADCOOKIE with a fresh server cookie (RFC 7873 §5.2.3,
    as BIND): dig and kdig with +badcookie retry with it, are exempt, and get the answer while
    their network is limited (every 2nd limited response slips, so 3 tries always suffice)."""
    server = await start_authd(nursery, index, rrl=RrlConfig("on", rate=1, window=15))
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await sock.connect((server.host, server.port))
    flood = dns.message.make_query("big.example.test.", "TXT", use_edns=0).to_wire()
    for _ in range(200):
        await sock.send(flood)
    sock.close()
    out = await _dig(server, "+cookie", "+badcookie", "+tries=3", "+time=1",
                     "big.example.test.", "TXT")
    assert "BADCOOKIE, retrying" in out and "ANSWER: 6" in out and "(good)" in out, out
    kdig = require_tool("kdig")
    out = await _run(kdig, f"@{server.host}", "-p", str(server.port), "+norecurse", "+cookie",
                     "+badcookie", "+retry=2", "+time=1", "big.example.test.", "TXT")
    assert "status: BADCOOKIE" in out and "ANSWER: 6" in out, out
