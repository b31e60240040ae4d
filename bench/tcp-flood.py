#!/usr/bin/env python3
"""A DNS-over-TCP connection flood against a gslbd it starts on loopback, and what it costs.

Opens N connections, each announcing a 65535-byte message and sending most of it (the attack
of issue "TCP limits": hickory-server allocated the announced length per connection), holds
them, and meanwhile asks a UDP query and a TCP query on a fresh connection from an unused
network. Reports gslbd's RSS (VmRSS of /proc/PID/status) before and at its peak during the
flood, and what became of the connections.

  python3 bench/tcp-flood.py --gslbd target/release/gslbd --connections 3000 --networks 1
  python3 bench/tcp-flood.py --gslbd target/release/gslbd --connections 3000 --networks 200

--answer-rates instead measures TCP answers per second (the client is Python: it measures
what the server lets through, e.g. pipelined answers held back by Nagle, not its ceiling).

--networks spreads the flood's sources over that many /24s inside 127.0.0.0/8 (127.1.x.1, ...),
which gslbd counts apart (its per-network limit); 1 is one host. Loopback only; standard
library only; Linux (/proc).
"""
import argparse
import os
import resource
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

QNAME = "app.gslb.example.com"
# One service, no probes: the flood is the only work.
CONFIG = """
server = {{ listen = ["127.0.0.1:{port}"], udp_workers = 1 }}
zone = {{ name = "gslb.example.com" }}
regions = [{{ name = "eu", nameserver = "ns-eu.gslb.example.com", glue = ["127.0.10.1"] }}]
services = [{{ name = "{qname}", strategy = "round-robin", targets = {{ eu = ["192.0.2.1"] }} }}]
"""


def query(qid):
    """An A query for QNAME, without EDNS."""
    header = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    labels = b"".join(bytes([len(p)]) + p.encode() for p in QNAME.split(".")) + b"\0"
    return header + labels + struct.pack("!HH", 1, 1)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def free_port():
    """A loopback port free for both UDP and TCP (gslbd binds both)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port


def udp_answered(port, timeout=2.0):
    """Seconds to a UDP answer, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(timeout)
        started = time.monotonic()
        udp.sendto(query(7), ("127.0.0.1", port))
        try:
            reply, _ = udp.recvfrom(4096)
        except OSError:
            return None
        return time.monotonic() - started if reply[:2] == b"\x00\x07" else None


def recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def tcp_answered(port, source, timeout=2.0):
    """Seconds to an answer on a new connection from `source`, or None (refused, closed)."""
    started = time.monotonic()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.settimeout(timeout)
            tcp.bind((source, 0))
            tcp.connect(("127.0.0.1", port))
            message = query(9)
            tcp.sendall(struct.pack("!H", len(message)) + message)
            length = struct.unpack("!H", recv_exactly(tcp, 2))[0]
            reply = recv_exactly(tcp, length)
    except OSError:
        return None
    return time.monotonic() - started if reply[:2] == b"\x00\x09" else None


def source_of(i, networks):
    """The source of the flood's `i`th connection: one address per /24 (127.1.0.1, 127.1.1.1, ...)."""
    net = i % networks
    return "127.0.0.1" if networks == 1 else f"127.{1 + net // 256}.{net % 256}.1"


def open_flood(port, connections, networks, send_bytes):
    """The flood's sockets, each having announced 65535 bytes and sent `send_bytes` of them."""
    sockets = []
    payload = b"\xff\xff" + bytes(send_bytes)
    for i in range(connections):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(2.0)
        try:
            sock.bind((source_of(i, networks), 0))
            sock.connect(("127.0.0.1", port))
            sock.sendall(payload)
        except OSError:
            pass  # reset at once, or a full queue: what became of it is counted later
        sockets.append(sock)
    return sockets


def still_open(sockets):
    """How many of `sockets` the server has neither closed nor reset."""
    count = 0
    for sock in sockets:
        try:
            sock.setblocking(False)
            data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            count += 0 if data == b"" else 1
        except BlockingIOError:
            count += 1
        except OSError:
            pass
    return count


def answer_rate(port, pipelined, per_connection, connections):
    """Answers per second to `connections` connections (each from its own /24) asking
    `per_connection` queries, `pipelined` at a time (all sent, then all answers read)."""
    frame = query(1)
    frame = struct.pack("!H", len(frame)) + frame
    answered = 0
    started = time.monotonic()
    for c in range(connections):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((f"127.0.{c % 200}.1", 0))
            tcp.connect(("127.0.0.1", port))
            for _ in range(per_connection // pipelined):
                tcp.sendall(frame * pipelined)
                for _ in range(pipelined):
                    length = struct.unpack("!H", recv_exactly(tcp, 2))[0]
                    recv_exactly(tcp, length)
                    answered += 1
    return answered / (time.monotonic() - started)


def flood(args, server, port):
    """Opens the flood, holds it, and reports RSS and who was answered meanwhile."""
    before = rss_kib(server.pid)
    peak = [before]
    sampling = threading.Event()

    def sample():
        while not sampling.is_set():
            peak[0] = max(peak[0], rss_kib(server.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.monotonic()
    sockets = open_flood(port, args.connections, args.networks, args.send_bytes)
    opened_in = time.monotonic() - started
    open_after_flood = still_open(sockets)
    udp_time = udp_answered(port)
    fresh_time, fresh_after = None, None
    while time.monotonic() - started < opened_in + args.hold:
        if fresh_time is None:
            fresh_time = tcp_answered(port, "127.254.0.1")
            if fresh_time is not None:
                fresh_after = time.monotonic() - started - opened_in
        time.sleep(0.1)
    open_at_end = still_open(sockets)
    sampling.set()
    sampler.join()
    for sock in sockets:
        sock.close()

    mib = 1024.0
    print(f"flood: {args.connections} connections from {args.networks} /24(s), "
          f"each announcing 65535 bytes and sending {args.send_bytes}; opened in {opened_in:.1f} s")
    print(f"  held open by gslbd right after: {open_after_flood}; "
          f"after {args.hold:.0f} s: {open_at_end}")
    print(f"RSS before: {before / mib:.1f} MiB; peak during: {peak[0] / mib:.1f} MiB; "
          f"growth: {(peak[0] - before) / mib:.1f} MiB")
    print("UDP during the flood: " + (f"answered in {udp_time * 1000:.1f} ms" if udp_time else "NOT answered"))
    if fresh_time is None:
        print("new TCP client (127.254.0.1) during the flood: NOT answered")
    else:
        print(f"new TCP client (127.254.0.1): answered in {fresh_time * 1000:.1f} ms, "
              f"{fresh_after:.1f} s after the flood was open")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gslbd", default="target/release/gslbd", help="the binary to start")
    parser.add_argument("--connections", type=int, default=3000)
    parser.add_argument("--networks", type=int, default=1, help="/24s the sources spread over")
    parser.add_argument("--send-bytes", type=int, default=60000, help="of the 65535 announced")
    parser.add_argument("--hold", type=float, default=5.0, help="seconds the flood is held")
    parser.add_argument("--answer-rates", action="store_true",
                        help="no flood: TCP answers per second, pipelined and one per connection")
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="tcp-flood-")
    config = os.path.join(workdir, "gslbd.toml")
    with open(config, "w") as file:
        file.write(CONFIG.format(port=port, qname=QNAME))
    env = dict(os.environ, GSLBD_LOG=os.environ.get("GSLBD_LOG", "warn"))
    server = subprocess.Popen([args.gslbd, "run", "--config", config], env=env)
    try:
        deadline = time.monotonic() + 10
        while udp_answered(port, 0.2) is None:
            if time.monotonic() > deadline or server.poll() is not None:
                sys.exit(f"{args.gslbd} did not start (exit status {server.poll()})")
        for _ in range(20):
            udp_answered(port)
            tcp_answered(port, "127.0.0.1")
        time.sleep(0.5)
        print(f"gslbd {args.gslbd} pid {server.pid}, port {port}")
        if args.answer_rates:
            # 900 a connection: under server.tcp.max_queries_per_connection (1000).
            pipelined = answer_rate(port, 100, 900, 10)
            single = answer_rate(port, 1, 1, 2000)
            print(f"TCP answers/s: 100 pipelined at a time (900 per connection, 10 connections): "
                  f"{pipelined:.0f}; one query per connection (2000 connections): {single:.0f}")
        else:
            flood(args, server, port)
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
