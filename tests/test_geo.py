"""The location table (`authd.dns.geo`, `authd serve --geo-map FILE`): parsing with errors that
name the line and field, longest-prefix lookup bounded by a client subnet's source prefix,
and region distances for latency routing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from authd.dns.geo import GeoMap, GeoMapError, Location, region_distance

ROOT = Path(__file__).resolve().parent.parent
TABLE = """
# comment
10.0.0.0/8      NA US  -  us-east-1
10.1.0.0/16     EU DE  -  eu-central-1   # trailing comment
10.1.2.0/24     NA US  CA us-west-1
2001:db8::/32   AS JP  -  ap-northeast-1
"""


def test_longest_prefix_wins_and_reports_its_length():
    m = GeoMap.parse(TABLE)
    assert m.lookup("10.1.2.3") == (Location("NA", "US", "CA", "us-west-1"), 24)
    assert m.lookup("10.1.9.9") == (Location("EU", "DE", None, "eu-central-1"), 16)
    assert m.lookup("10.200.0.1") == (Location("NA", "US", None, "us-east-1"), 8)
    assert m.lookup("2001:db8:1::1") == (Location("AS", "JP", None, "ap-northeast-1"), 32)
    assert m.lookup("192.0.2.1") is None
    assert m.lookup("not an address") is None
    assert m.lookup("::ffff:10.1.2.3") == m.lookup("10.1.2.3")  # IPv4-mapped clients


def test_a_client_subnet_only_uses_blocks_it_covers():
    m = GeoMap.parse(TABLE)
    assert m.lookup("10.1.2.0", 16)[1] == 16  # the /24 is finer than the client said
    assert m.lookup("10.1.2.0", 12)[1] == 8
    assert m.lookup("10.1.2.0", 24) == m.lookup("10.1.2.0", 24)  # memoised, the same answer


@pytest.mark.parametrize(("line", "error"), [
    ("10.0.0.0/8 NA US -", "line 1: expected 5 fields"),
    ("10.0.0.1/8 NA US - us-east-1", "line 1: field 1 (CIDR) '10.0.0.1/8'"),
    ("10.0.0.0/8 XX US - us-east-1", "line 1: field 2 (CONTINENT) 'XX'"),
    ("10.0.0.0/8 NA ZZ - us-east-1", "line 1: field 3 (COUNTRY) 'ZZ'"),
    ("10.0.0.0/8 EU DE BY eu-central-1", "line 1: field 4 (SUBDIVISION) 'BY'"),
    ("10.0.0.0/8 NA US - mars-1", "line 1: field 5 (REGION) 'mars-1'"),
])
def test_a_bad_line_is_refused_with_its_line_and_field(line, error):
    with pytest.raises(GeoMapError, match=r"map\.txt " + error.replace("(", r"\(").replace(")", r"\)")):
        GeoMap.parse(line, source="map.txt")


def test_the_shipped_loopback_table_parses_and_maps_continents():
    m = GeoMap.parse((ROOT / "zones" / "geo-map.txt").read_text())
    continents = {m.lookup(f"127.0.{i}.1")[0].continent for i in range(8)}
    assert continents == {"NA", "EU", "AS", "OC", "SA", "AF"}


def test_region_distance_orders_regions_sensibly():
    assert region_distance("eu-central-1", "eu-west-1") < region_distance("eu-central-1", "us-east-1")
    assert region_distance("us-east-1", "us-east-1") == 0
    assert region_distance("us-east-1", "nowhere-1") == float("inf")


def test_serve_refuses_a_bad_geo_map_naming_line_and_field(tmp_path):
    bad = tmp_path / "map.txt"
    bad.write_text("127.0.0.0/8 NA US - us-east-1\n127.0.1.0/24 NA US XX us-west-1\n")
    out = subprocess.run([sys.executable, "-m", "authd", "serve", "--geo-map", str(bad)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert f"{bad} line 2: field 4 (SUBDIVISION) 'XX'" in out.stderr


@pytest.mark.parametrize("module", ["dns/geo", "model/cidr", "dns/answer", "dns/index", "model/changes", "model/records"])
def test_routing_cores_are_pure(module):
    """Pure cores import neither trio, socket nor time (house rule)."""
    import ast

    tree = ast.parse((ROOT / "authd" / f"{module}.py").read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])
    }
    assert not imported & {"trio", "socket", "time", "sqlite3", "asyncio"}


def test_every_latency_region_is_on_a_continent():
    from authd.dns.geo import CONTINENTS, REGIONS, region_continent

    assert all(region_continent(r) in CONTINENTS for r in REGIONS)
    assert (region_continent("ap-southeast-2"), region_continent("ap-northeast-1"),
            region_continent("me-central-1"), region_continent("sa-east-1")) == ("OC", "AS", "AS", "SA")
