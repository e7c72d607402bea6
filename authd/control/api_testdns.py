"""TestDNSAnswer: what authd's DNS answers for a name and type, asked through the real pipeline.

The query is built as a resolver would send it (EDNS(0), and the EDNS Client Subnet option
of RFC 7871 section 6 when EDNS0ClientSubnetIP is given) and answered by the same
`authd.dns.index.ServingIndex` that serves DNS: the primary index of the running node when the
control API has one (`app.serving_index`), else an index fed from the store's snapshot. So
weighted picks, aliases, failover and location rules are exactly what `dig` would see.
ResolverIP is passed as the query's source address to pipelines that take one; the client
subnet travels in the packet itself.

The response follows Route 53's shape: Nameserver (the zone's first NS name), RecordName,
RecordType, RecordData (the answer section's values in presentation form), ResponseCode
(NOERROR, NXDOMAIN, ...) and Protocol (UDP).
"""

from __future__ import annotations

import inspect
import ipaddress
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import dns.edns
import dns.message
import dns.rcode
import dns.rdatatype

from authd.control import r53xml as X
from authd.control.api_base import Response, invalid
from authd.model.records import RecordError, canonical_name

if TYPE_CHECKING:
    from authd.control.app import ControlAPI

ECS_DEFAULT_MASK = {4: 24, 6: 56}  # RFC 7871 section 11.1: recommended source prefix lengths


def parse_ip(value: str, field: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise invalid(f"{field} {value!r} is not a valid IP address") from None


def build_query(name: str, rtype: str, ecs_ip: str | None, ecs_mask: str | None) -> bytes:
    """The query packet, with ECS when asked (RFC 7871 section 6: family, source prefix)."""
    try:
        rdtype = dns.rdatatype.from_text(rtype)
    except (dns.rdatatype.UnknownRdatatype, ValueError):
        raise invalid(f"RecordType {rtype!r} is not a DNS record type") from None
    options: list[dns.edns.Option] = []
    if ecs_mask and not ecs_ip:
        raise invalid("EDNS0ClientSubnetMask requires EDNS0ClientSubnetIP")
    if ecs_ip:
        addr = parse_ip(ecs_ip, "EDNS0ClientSubnetIP")
        limit = 32 if addr.version == 4 else 128
        try:
            mask = int(ecs_mask) if ecs_mask else ECS_DEFAULT_MASK[addr.version]
        except ValueError:
            raise invalid(f"EDNS0ClientSubnetMask {ecs_mask!r} is not an integer") from None
        if not 0 <= mask <= limit:
            raise invalid(f"EDNS0ClientSubnetMask must be between 0 and {limit} for {ecs_ip}")
        options.append(dns.edns.ECSOption(str(addr), mask))
    q = dns.message.make_query(name, rdtype, use_edns=0, payload=1232, options=options)
    q.id = 0
    q.flags = 0  # an authoritative question: RD clear
    return q.to_wire()


def run_pipeline(index: Any, wire: bytes, resolver_ip: str | None) -> tuple[str, list[str]]:
    """(rcode text, answer values) from the index's full answer pipeline."""
    kwargs: dict[str, Any] = {}
    if resolver_ip is not None:
        params = inspect.signature(index.answer).parameters
        for name in ("client", "source"):
            if name in params:
                kwargs[name] = resolver_ip
                break
    reply = index.answer(wire, tcp=False, **kwargs)
    if reply is None:
        return "SERVFAIL", []
    values = [text for rrset in reply.answer for text in _texts(rrset)]
    return dns.rcode.to_text(reply.rcode), values


def _texts(rrset: Any) -> list[str]:
    texts = getattr(rrset, "texts", None)
    if texts is not None:
        return list(texts)
    return [rd.to_text() for rd in rrset]


def response_xml(nameserver: str, name: str, rtype: str, values: list[str], rcode: str) -> str:
    return (
        X.element("Nameserver", nameserver) + X.element("RecordName", name) + X.element("RecordType", rtype)
        + "<RecordData>" + "".join(X.element("RecordDataEntry", v) for v in values) + "</RecordData>"
        + X.element("ResponseCode", rcode) + X.element("Protocol", "UDP")
    )


def _snapshot_index(store: Any) -> Any:
    from authd.dns.index import ServingIndex

    index = ServingIndex(cache=False)
    for entry in store.snapshot():
        index.apply(entry)
    return index


async def test_dns_answer(app: ControlAPI, query: Mapping[str, str]) -> Response:
    zone_id, name, rtype = query.get("hostedzoneid"), query.get("recordname"), query.get("recordtype")
    if not zone_id or not name or not rtype:
        raise invalid("hostedzoneid, recordname and recordtype are required")
    resolver_ip = query.get("resolverip") or None
    if resolver_ip is not None:
        parse_ip(resolver_ip, "ResolverIP")
    try:
        canonical_name(name)
    except RecordError as exc:
        raise invalid(str(exc)) from exc
    wire = build_query(name, rtype.upper(), query.get("edns0clientsubnetip") or None,
                       query.get("edns0clientsubnetmask") or None)

    def nameserver(store: Any) -> str:
        zone = store.find_zone(zone_id)
        ns = store.get_record_sets(zone.id, zone.name, "NS")
        return ns[0].values[0] if ns and ns[0].values else zone.name

    ns_name = await app.call(nameserver, app.store)
    index = getattr(app, "serving_index", None)
    if index is None:
        index = await app.call(_snapshot_index, app.store)
    rcode, values = run_pipeline(index, wire, resolver_ip)
    return 200, X.document("TestDNSAnswerResponse", response_xml(ns_name, name, rtype.upper(), values, rcode)), []
