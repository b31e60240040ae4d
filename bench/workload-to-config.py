#!/usr/bin/env python3
"""Turn the benchmark harness's workload.json (../shared/bench) into a gslbd config.

Usage: workload-to-config.py [--probes] [--dnssec KEY] WORKLOAD.json > gslbd.toml

With --probes, gslbd runs in region eu and probes its 1 target per name (TCP connect to the
workload's health port, every `interval_s`, as the harness's gdnsd-probe does); without, health
is static (every target up), as gdnsd's. With --dnssec, the zone is signed with KEY (a key-file
base name, `gslbd keygen --dnssec`).

The workload has one nameserver (ns1, 127.0.0.1) and three regions per name: region eu carries
that nameserver, us and ap run none, so the NS set is the workload's single NS record.
The time bucket is 10 ms (see convert()).
Policies map to strategies: failover -> failover (order by priority), weighted -> weighted,
all -> round-robin. Standard library only.
"""

from __future__ import annotations

import ipaddress
import json
import sys


def loopback(addr: str) -> str:
    if not ipaddress.ip_address(addr).is_loopback:
        sys.exit(f"refusing non-loopback address {addr}: benchmarks stay on 127.0.0.0/8")
    return addr


def convert(doc: dict, probes: bool = False, dnssec_key: str | None = None) -> str:
    zone = doc["zone"]
    ns = doc["ns"]
    regions = ["eu", "us", "ap"]
    out = ['local_region = "eu"', ""] if probes else []
    out += [
        "[server]",
        'listen = ["127.0.0.1:15360"]',
        "udp_workers = 1",
        "",
        "[zone]",
        f'name = "{zone}"',
        f"ttl = {doc['ttl']}",
        "ns_ttl = 3600",
        # The harness checks that 30 back-to-back weighted queries from one client get more
        # than one answer (as from a random picker); gslbd's picks are deterministic per client
        # and time bucket, so the bucket is made short here. The answer path costs the same.
        "time_bucket_ms = 10",
        "",
        "[zone.soa]",
        f'mname = "{ns["name"]}"',
        f'rname = "hostmaster.{zone}"',
        "serial = 1",
        "refresh = 14400",
        "retry = 3600",
        "expire = 1209600",
        f"minimum = {doc['soa_minimum']}",
        f"ttl = {doc['soa_minimum']}",
        "",
    ]
    if dnssec_key:
        out += ["[zone.dnssec]", f'keys = ["{dnssec_key}"]', ""]
    if probes:
        health = doc["health"]
        out += [
            "[probe]",
            'kind = "tcp"',
            f"port = {health['port']}",
            f"interval_ms = {int(health['interval_s'] * 1000)}",
            "timeout_ms = 800",
            "",
        ]
    for region in regions:
        out.append("[[regions]]")
        out.append(f'name = "{region}"')
        if region == "eu":
            out.append(f'nameserver = "{ns["name"]}"')
            out.append(f'glue = ["{loopback(ns["addr"])}"]')
        out.append("")
    strategy = {"failover": "failover", "weighted": "weighted", "all": "round-robin"}
    for service in doc["services"]:
        targets = service["targets"]
        policy = service["policy"]
        out.append("[[services]]")
        out.append(f'name = "{service["name"]}"')
        out.append(f'strategy = "{strategy[policy]}"')
        if policy == "failover":
            order = [t["region"] for t in sorted(targets, key=lambda t: t["priority"])]
            out.append("failover_order = [" + ", ".join(f'"{r}"' for r in order) + "]")
        elif policy == "weighted":
            out.append(
                "weights = { " + ", ".join(f'{t["region"]} = {t["weight"]}' for t in targets) + " }"
            )
        out.append(
            "targets = { "
            + ", ".join(f'{t["region"]} = ["{loopback(t["addr"])}"]' for t in targets)
            + " }"
        )
        out.append("")
    return "\n".join(out)


def main() -> None:
    args = sys.argv[1:]
    probes = "--probes" in args
    args = [a for a in args if a != "--probes"]
    dnssec_key = None
    if "--dnssec" in args:
        at = args.index("--dnssec")
        dnssec_key = args[at + 1] if at + 1 < len(args) else sys.exit(__doc__)
        del args[at : at + 2]
    if len(args) != 1:
        sys.exit(__doc__)
    with open(args[0], encoding="utf-8") as f:
        sys.stdout.write(convert(json.load(f), probes, dnssec_key))


if __name__ == "__main__":
    main()
