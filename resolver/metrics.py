"""Prometheus metrics for `resolver serve` and `resolver stub` (`--metrics HOST:PORT`).

Shell glue: the resolver already counts in plain ints (`Cache.stats`, `Resolver.counters`);
a custom collector reads them at scrape time, and prometheus_client's HTTP server (a daemon
thread) serves them. Nothing is added to the query path.

Exported, each with a `resolver` label (serve or stub):
- `resolver_cache_hits_total` (fresh answers from the cache), of which
  `resolver_cache_negative_hits_total` (NXDOMAIN or NODATA, RFC 2308);
- `resolver_cache_misses_total`; `resolver_cache_entries`;
- `resolver_serve_stale_answers_total` (RFC 8767);
- `resolver_hedges_total` (a second upstream asked) and `resolver_hedges_won_total` (its
  answer came first); `resolver_servfail_total`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


class ResolverCollector:
    def __init__(self, resolver: Any, name: str):
        self.resolver = resolver
        self.name = name

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        stats = self.resolver.cache.stats
        counters = self.resolver.counters
        for metric, doc, value in (
                ("resolver_cache_hits", "Fresh answers served from the cache", stats.hits),
                ("resolver_cache_negative_hits", "Cached NXDOMAIN or NODATA answers served (RFC 2308)",
                 stats.negative_hits),
                ("resolver_cache_misses", "Questions the cache could not answer", stats.misses),
                ("resolver_serve_stale_answers", "Expired answers served because upstreams failed "
                 "or were slow (RFC 8767)", counters["stale-served"]),
                ("resolver_hedges", "Questions also sent to a second upstream", counters["hedged"]),
                ("resolver_hedges_won", "Hedged questions the second upstream answered first",
                 counters["hedge-won"]),
                ("resolver_servfail", "SERVFAIL answers sent to clients", counters["servfail"]),
                ("resolver_refused_clients", "Queries REFUSED because the client is outside "
                 "loopback and --allow", counters["refused-acl"]),
                ("resolver_internal_errors", "Unexpected errors caught at an exchange's boundary "
                 "(issue 10)", counters["internal-errors"])):
            f = CounterMetricFamily(metric, doc, labels=["resolver"])
            f.add_metric([self.name], value)
            yield f
        g = GaugeMetricFamily("resolver_cache_entries", "Entries in the cache", labels=["resolver"])
        g.add_metric([self.name], len(self.resolver.cache))
        yield g


def serve_metrics(resolver: Any, name: str, host: str, port: int) -> Any:
    from prometheus_client import start_http_server
    from prometheus_client.registry import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(ResolverCollector(resolver, name))  # type: ignore[arg-type]
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        from authd.clean_exit import Fatal

        raise Fatal(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None
    return server
