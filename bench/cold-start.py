#!/usr/bin/env python3
"""Cold start to first answer, with gossip on, of one or more gslbd binaries run in turn.

Takes a config written by the scale tool (`answer_scale --write FILE NxR`: it listens on
127.0.0.1:15371 and names regions r0, r1, ...), adds a `[gossip]` section with fresh keys from
`gslbd keygen` (listening on 127.0.0.1:17946, no seeds), then for each round and each binary:
spawns `gslbd --log-json run`, queries s1.<zone> over UDP until the first answer, and prints
that time with the `build_us` of the daemon's "first snapshot built" and "first gossip report
built" log lines.

    cargo run --release --example answer_scale -- --write /tmp/s100k.toml 100000x10
    MIMALLOC_PURGE_DELAY=0 MIMALLOC_ALLOW_THP=0 \
        python3 bench/cold-start.py /tmp/s100k.toml OLD_BINARY NEW_BINARY [--rounds 4]

Loopback only (127.0.0.1).
"""

import argparse
import json
import os
import re
import socket
import struct
import subprocess
import tempfile
import time

DNS = ("127.0.0.1", 15371)


def query(name):
    packet = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        packet += bytes([len(label)]) + label.encode()
    return packet + b"\0" + struct.pack(">HH", 1, 1)


def with_gossip(config, binary):
    text = open(config).read()
    regions = re.findall(r'^\[\[regions\]\]\nname = "([^"]+)"', text, re.M)
    keys = subprocess.run(
        [binary, "keygen", *regions], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    cluster = next(line for line in keys if line.startswith("keys"))
    signing = next(line for line in keys if line.startswith("signing_key"))
    public = keys[keys.index("[gossip.region_keys]") + 1 :]
    region_keys = ", ".join(line for line in public if "=" in line)
    gossip = (
        '[gossip]\nlisten = "127.0.0.1:17946"\nseeds = []\n'
        f"{cluster}\n{signing}\nregion_keys = {{ {region_keys} }}\n\n"
    )
    out = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    out.write(text.replace("[zone]\n", gossip + "[zone]\n", 1))
    out.close()
    return out.name


def cold_start(binary, config, zone):
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.settimeout(0.005)
    started = time.monotonic()
    daemon = subprocess.Popen(
        [binary, "--log-json", "run", "--config", config],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    while True:
        try:
            probe.sendto(query(f"s1.{zone}"), DNS)
            reply, _ = probe.recvfrom(4096)
            if reply[3] & 0xF == 0 and struct.unpack(">H", reply[6:8])[0] > 0:
                break
        except (socket.timeout, ConnectionRefusedError):
            if daemon.poll() is not None:
                raise SystemExit(f"{binary} exited: {daemon.stderr.read().decode()}")
    took = time.monotonic() - started
    time.sleep(1.0)  # the first report, built beside the start, is logged by now
    daemon.terminate()
    _, log = daemon.communicate()
    builds = {}
    for line in log.decode().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        fields = entry.get("fields", entry)
        message = fields.get("message", "")
        if message.startswith("first ") and "build_us" in fields:
            builds[message] = fields["build_us"] / 1000
    return took, builds


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("binaries", nargs="+")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    text = open(args.config).read()
    zone = re.search(r'^\[zone\]\nname = "([^"]+)"', text, re.M).group(1)
    config = with_gossip(args.config, args.binaries[0])
    try:
        for _ in range(args.rounds):
            for binary in args.binaries:
                took, builds = cold_start(binary, config, zone)
                shown = "; ".join(f"{k} {v:.0f} ms" for k, v in builds.items())
                print(f"{binary}: first answer {took:.3f} s; {shown}", flush=True)
    finally:
        os.unlink(config)


if __name__ == "__main__":
    main()
