"""Acceptance: the README's aws cli recipe, end to end against `authd serve` and real dig.

The recipe (README "Using authd as a local Route 53", blocks `env` and `aws-cli`) is run as
written with free ports swapped in. It finds the endpoint through AWS_ENDPOINT_URL_ROUTE_53
alone (no `--endpoint-url`), so this also proves the environment recipe is right. The
operations of each API family are tested by their own modules (tests/test_control_awscli.py
and the r53-surface tests); this one checks the path a user follows: create a zone, a
weighted pair and an alias in one batch, wait for INSYNC, list, and get the answer from DNS.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.acceptance_helpers import (
    README_API,
    README_DNS_PORT,
    authd_serve,
    dig,
    need,
    route53_env,
    run_recipe,
)

pytestmark = [pytest.mark.realtime]


def test_aws_cli_recipe(tmp_path: Path) -> None:
    need("aws", "PyPI awscli, `make venv`")
    need("dig", "Debian package bind9-dnsutils")
    with authd_serve(tmp_path) as authd:
        env = route53_env(authd.url)
        # The recipe's exports must be what reaches authd, not the harness's: drop ours.
        for key in ("AWS_ENDPOINT_URL_ROUTE_53", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID",
                    "AWS_SECRET_ACCESS_KEY"):
            env.pop(key)
        done = run_recipe(["env", "aws-cli"], tmp_path, env,
                          {README_API: authd.url, f"-p {README_DNS_PORT}": f"-p {authd.dns_port}"})
        lines = done.stdout.split()
        # The table lists both weighted members and the alias, and dig (the last line) gets
        # blue's address through the alias: green weighs 0, and Route 53 never picks a zero
        # weight while another member weighs more.
        assert "blue" in lines and "green" in lines, done.stdout
        assert done.stdout.strip().splitlines()[-1] == "192.0.2.10", done.stdout
        # The same through the harness's dig, many times: never green.
        for _ in range(20):
            assert dig(authd, "www.cli.test", "A").values() == ["192.0.2.10"]
        assert any("control: accepted change" in line for line in authd.log)
