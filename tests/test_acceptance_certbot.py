"""Acceptance: certbot + certbot-dns-route53 get a certificate by DNS-01 from pebble via authd.

Issue 11 "Done when": certbot DNS-01 against the Debian `pebble` ACME server, as a test. The
README recipes `env`, `pebble` and `certbot` are run as written, with free ports swapped in;
pebble is told (`-dnsserver`) to validate against authd's DNS, so the certificate is proof that
authd served the TXT values certbot put in through the change API. The test then checks that
certbot's cleanup left no `_acme-challenge` record behind, in the API and in DNS.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import boto3
import pytest

from authd import localnet
from tests.acceptance_helpers import (
    README_API,
    README_DNS_PORT,
    authd_serve,
    dig,
    need,
    route53_env,
    run_recipe,
)
from tests.acceptance_pebble import pebble_serve

pytestmark = [pytest.mark.realtime, pytest.mark.slow]


def test_certbot_dns01_name_and_wildcard_against_pebble(tmp_path: Path) -> None:
    pebble = need("pebble", "Debian package pebble")
    need("openssl", "Debian package openssl")
    need("certbot", "PyPI certbot and certbot-dns-route53, `make venv`")
    need("aws", "PyPI awscli, `make venv`")
    acme, mgmt, http01, tls01 = (str(localnet.free_port()) for _ in range(4))
    replace_pebble = {"127.0.0.1:14000": f"127.0.0.1:{acme}", "127.0.0.1:15000": f"127.0.0.1:{mgmt}",
                      '"httpPort": 5002': f'"httpPort": {http01}', '"tlsPort": 5001': f'"tlsPort": {tls01}'}
    run_recipe("pebble", tmp_path, route53_env("http://127.0.0.1:1"), replace_pebble)

    with authd_serve(tmp_path) as authd, \
            pebble_serve(pebble, tmp_path, tmp_path / "pebble.json",
                         f"127.0.0.1:{authd.dns_port}") as acme_server:
        env = route53_env(authd.url)
        replace = {README_API: authd.url, f"-p {README_DNS_PORT}": f"-p {authd.dns_port}",
                   "https://127.0.0.1:14000/dir": acme_server.directory}
        done = run_recipe(["env", "certbot"], tmp_path, env, replace)

        # The certificate names both, and is issued by pebble (not self-made).
        assert "DNS:acme.test" in done.stdout and "DNS:*.acme.test" in done.stdout, done.stdout
        chain = tmp_path / "certbot" / "live" / "acme.test" / "fullchain.pem"
        issuer = subprocess.run(["openssl", "x509", "-in", str(chain), "-noout", "-issuer"],
                                capture_output=True, text=True, check=True).stdout
        assert "Pebble" in issuer, issuer
        # Pebble set both authorizations (name, wildcard) valid by what authd answered.
        valid = [line for line in acme_server.log if "set VALID by completed challenge" in line]
        assert len(valid) == 2, "".join(acme_server.log)

        # certbot-dns-route53's cleanup deleted every challenge value: nothing in the API...
        r53 = boto3.client("route53", endpoint_url=authd.url, region_name="us-east-1",
                           aws_access_key_id="test", aws_secret_access_key="test")
        zone = r53.list_hosted_zones_by_name(DNSName="acme.test")["HostedZones"][0]
        assert zone["Name"] == "acme.test."
        sets = r53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]
        assert [s["Type"] for s in sets] == ["NS", "SOA"], sets
        # ... and nothing in DNS (the name had no other data: NXDOMAIN, RFC 8020).
        answer = dig(authd, "_acme-challenge.acme.test", "TXT")
        assert answer.status == "NXDOMAIN", answer.text
        assert "status: NXDOMAIN" in done.stdout, "the recipe's own dig saw the cleanup"
        # certbot-dns-route53 sent four batches: UPSERT one value, UPSERT both (the name and
        # the wildcard share `_acme-challenge.acme.test`), UPSERT one left, DELETE the last.
        accepted = [line for line in authd.log if "control: accepted change" in line]
        assert len(accepted) == 4, authd.log_text()
