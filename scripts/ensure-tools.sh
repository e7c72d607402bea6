#!/usr/bin/env bash
# Installs the Debian packages the demo, tests and benchmarks use, when they are missing.
# pebble is the ACME test server the certbot DNS-01 acceptance test validates against.
# As root it uses apt-get; otherwise it names what is missing and what to install.
set -euo pipefail
declare -A pkg=( [dig]=bind9-dnsutils [kdig]=knot-dnsutils [nsd]=nsd [knotd]=knot [kzonecheck]=knot-dnssecutils [unbound]=unbound [dnsperf]=dnsperf [promtool]=prometheus )
pkg[pebble]=pebble  # on its own line, so other additions to the table merge cleanly
pkg[chromium]=chromium  # headless, for the live outage page test (tests/test_outage_web.py)
pkg[gcc]=gcc  # builds the optional C UDP loop (authd/dns/_fastudp.c) in make venv
missing=()
for tool in "${!pkg[@]}"; do
  if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ]; then missing+=("${pkg[$tool]}"); fi
done
# PostgreSQL (the PostgresStore tests): Debian keeps initdb and pg_ctl off PATH
if ! command -v initdb >/dev/null 2>&1 && ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  missing+=(postgresql)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts these daemons on install where it can; we start our own on loopback ports.
  for svc in nsd knot unbound prometheus postgresql; do (service "$svc" stop >/dev/null 2>&1 || true); done
else
  echo "missing system packages: ${missing[*]} (install them with: sudo apt-get install ${missing[*]})" >&2
fi
