"""octodns-route53 finds the health checks it made in what authd lists back.

octoDNS matches its health checks by CallerReference prefix and by comparing the config it
would create with what ListHealthChecks returns (`_health_check_equivalent`: host, path, type,
port, MeasureLatency, RequestInterval, FailureThreshold, Disabled, Inverted, IPAddress). If
authd's echo differed in any of them, every sync would create new checks and plan changes
forever. The checks are made here through boto3 with the exact config octoDNS sends, then the
real provider looks them up (its creation path also tags them, which is another branch's work).
"""

from __future__ import annotations

import pytest

from authd.control.app import ControlAPI
from authd.store.memstore import MemoryStore
from tests.control_helpers import client, running

octodns_route53 = pytest.importorskip("octodns_route53", reason="PyPI octodns-route53 is not installed")
from octodns.record import Record  # noqa: E402
from octodns.zone import Zone  # noqa: E402


@pytest.fixture
def provider(monkeypatch):
    app = ControlAPI(MemoryStore())
    with running(app) as url:
        # botocore reads AWS_ENDPOINT_URL_ROUTE_53 (FIELD-NOTES); AWS_ENDPOINT_URL as a safety net
        monkeypatch.setenv("AWS_ENDPOINT_URL_ROUTE_53", url)
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
        yield octodns_route53.Route53Provider("r53", access_key_id="test", secret_access_key="test"), client(url)


@pytest.mark.parametrize("protocol", ["TCP", "HTTPS", "HTTP"])
@pytest.mark.parametrize("status", ["obey", "down"])
def test_octodns_recognises_the_checks_it_made(provider, protocol, status):
    prov, r53 = provider
    zone = Zone("geo.test.", [])
    record = Record.new(zone, "app", {
        "type": "A", "ttl": 60, "value": "127.0.0.11",
        "octodns": {"healthcheck": {"protocol": protocol, "port": 18080, "path": "/_dns"},
                    "route53": {"healthcheck": {"request_interval": 10, "failure_threshold": 1}}},
    })
    # the config octodns-route53's get_health_check_id sends for this record and value
    config = {"Disabled": status == "down", "Inverted": status == "down",
              "EnableSNI": protocol == "HTTPS", "FailureThreshold": 1, "MeasureLatency": True,
              "Port": 18080, "RequestInterval": 10, "Type": protocol, "IPAddress": "127.0.0.11"}
    if protocol != "TCP":
        config["FullyQualifiedDomainName"] = "app.geo.test"
        config["ResourcePath"] = "/_dns"
    ref = f"{prov.HEALTH_CHECK_VERSION}:A:app.geo.test.:0123456789ab"
    made = r53.create_health_check(CallerReference=ref, HealthCheckConfig=config)["HealthCheck"]["Id"]
    assert prov.get_health_check_id(record, "127.0.0.11", status, create=False) == made
    # and a different setting is not mistaken for it
    other = Record.new(zone, "app", {**record.data, "type": "A", "value": "127.0.0.11", "octodns": {
        "healthcheck": {"protocol": protocol, "port": 18081, "path": "/_dns"},
        "route53": {"healthcheck": {"request_interval": 10, "failure_threshold": 1}}}})
    prov._health_checks = None
    assert prov.get_health_check_id(other, "127.0.0.11", status, create=False) is None
