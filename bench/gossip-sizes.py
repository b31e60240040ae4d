# Size estimates for docs/gossip-options.md: synthetic 10k-service region reports,
# per-value signed JSON (today) vs one bundle (JSON or compact binary) compressed with zstd/deflate.
# Needs the `zstd` CLI. Usage: python3 gossip-sizes.py [N] [shards]
import json, random, struct, subprocess, zlib, sys
random.seed(7)
WORDS = "shop cart api auth pay search img cdn mail chat feed user order stock price promo login media video news blog docs help status track geo".split()
TEAMS = "core web mobile data infra ml ads billing growth ops".split()
REGIONS = [f"r{i}" for i in range(10)]
NOW = 1_780_000_000_000

def names(n, style):
    out = set()
    i = 0
    while len(out) < n:
        if style == "scale":
            out.add(f"svc-{i}.gslb.example.com")
        else:
            out.add(f"{random.choice(WORDS)}-{random.choice(WORDS)}-{random.randrange(1000)}.{random.choice(TEAMS)}.gslb.example.com")
        i += 1
    return sorted(out)

def varint(n):
    b = bytearray()
    while True:
        x = n & 0x7f; n >>= 7
        if n: b.append(x | 0x80)
        else: b.append(x); return bytes(b)

def gen(n, style, addr_mode):
    ingress_sets = [["203.0.113.7"], ["203.0.113.7", "203.0.113.8"],
                    [f"198.51.100.{i}" for i in range(1,4)], [f"2001:db8::{i:x}" for i in range(1,5)]]
    svcs = []
    for k, name in enumerate(names(n, style)):
        if addr_mode == "shared":
            addrs = random.choice(ingress_sets)
        else:
            cnt = random.randint(1, 4)
            addrs = [f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1,255)}" for _ in range(cnt)]
        healthy = random.random() > 0.02
        s = {"h": "healthy" if healthy else "unhealthy", "a": addrs,
             "c": NOW - random.randrange(30*86400*1000)}
        if not healthy:
            s["d"] = addrs[:1]; s["f"] = NOW - random.randrange(60000)
        if random.random() < 0.2: s["w"] = random.choice([1, 10, 50, 100])
        if random.random() < 0.9:
            s["s"] = {"k": "failover", "o": REGIONS[:3], "t": 30, "d": "answer_all"}
        else:
            s["s"] = {"k": "weighted", "w": {r: random.choice([1,2,5]) for r in REGIONS[:4]}, "n": 2, "t": 60, "d": "serve_nothing"}
        svcs.append((name, s))
    return svcs

import ipaddress
def binary(svcs, zone=".gslb.example.com"):
    out = bytearray()
    strat = {"failover": 0, "weighted": 1}
    for name, s in svcs:
        nm = name[:-len(zone)].encode() if name.endswith(zone) else name.encode()
        out += varint(len(nm)) + nm
        flags = (s["h"] == "healthy") | (("w" in s) << 1) | (("f" in s) << 2)
        out.append(flags)
        out += varint(len(s["a"]))
        for a in s["a"]:
            ip = ipaddress.ip_address(a); out.append(ip.version); out += ip.packed
        out += varint(len(s.get("d", [])))
        for a in s.get("d", []):
            ip = ipaddress.ip_address(a); out.append(ip.version); out += ip.packed
        out += varint((NOW - s["c"]) // 1000)          # seconds before the bundle's issue time
        if "f" in s: out += varint(NOW - s["f"])
        if "w" in s: out += varint(s["w"])
        sp = s["s"]; out.append(strat[sp["k"]]); out += varint(sp["t"]); out.append(0 if sp["d"] == "answer_all" else 1)
        out += varint(len(sp.get("o", []))) + bytes(REGIONS.index(r) for r in sp.get("o", []))
        out += varint(len(sp.get("w", {})))
        for r, w in sp.get("w", {}).items(): out += bytes([REGIONS.index(r)]) + varint(w)
        out += varint(sp.get("n", 0))
    return bytes(out)

def zstd(data, level):
    return len(subprocess.run(["zstd", f"-{level}", "-c", "-q"], input=data, capture_output=True).stdout)

n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
for style, addr in [("scale", "distinct"), ("real", "distinct"), ("real", "shared")]:
    svcs = gen(n, style, addr)
    js = json.dumps({name: s for name, s in svcs}, separators=(",", ":")).encode()
    per_value = sum(len(json.dumps({"r":"eu","i":"0","k":"svc:"+name,"e":2**63,"q":123456,"t":NOW,"v":s},separators=(",",":")))+88+1 for name, s in svcs)
    b = binary(svcs)
    print(f"{style:5} {addr:8} n={n}: per-value signed JSON {per_value/1e3:8.0f} kB | bundle JSON {len(js)/1e3:6.0f} kB -> zstd3 {zstd(js,3)/1e3:5.0f} kB zstd19 {zstd(js,19)/1e3:5.0f} kB | binary {len(b)/1e3:5.0f} kB -> zstd3 {zstd(b,3)/1e3:5.0f} kB zstd19 {zstd(b,19)/1e3:5.0f} kB, deflate9 {len(zlib.compress(b,9))/1e3:5.0f} kB")

# --- per-shard unit sizes (appended): run `python3 gossip-sizes.py 10000 shards`
if len(sys.argv) > 2 and sys.argv[2] == "shards":
    import hashlib
    for style, addr in [("real", "distinct"), ("real", "shared")]:
        svcs = gen(n, style, addr)
        for S in (64, 256, 512):
            shards = [[] for _ in range(S)]
            for name, s in svcs:
                shards[int(hashlib.sha256(name.encode()).hexdigest(), 16) % S].append((name, s))
            sizes = sorted(zstd(binary(sh), 3) + 110 for sh in shards)  # + stamp ~46 B + Ed25519 sig 64 B
            print(f"{addr:8} S={S:3}: unit p50 {sizes[S//2]} B, max {sizes[-1]} B, total {sum(sizes)/1e3:.0f} kB")
