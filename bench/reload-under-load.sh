#!/usr/bin/env bash
# Reloads under load: dnsperf sends a fixed rate of queries to a release gslbd on loopback
# while the config is reloaded (SIGHUP) every 100 ms; prints dnsperf's summary (queries sent,
# completed, lost) and how many reloads were applied. Nothing may be lost.
#
#   bash bench/reload-under-load.sh [SECONDS] [QPS]        (defaults: 10 s at 30000 qps)
#
# Needs dnsperf (Debian: apt-get install dnsperf) and target/release/gslbd
# (cargo build --release --bin gslbd). Loopback only: 127.0.0.1:15399.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${1:-10}"
qps="${2:-30000}"
work="$(mktemp -d)"
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT

# The example config, rate limiting off (every query comes from one client address).
cp "$here/config/example.toml" "$work/gslbd.toml"
printf '\n[server.rrl]\nenabled = false\n' >> "$work/gslbd.toml"
for name in app web api geo; do
  printf '%s.gslb.example.com A\n' "$name"
done > "$work/queries"

GSLBD_LOG=info "${GSLBD_BIN:-$here/target/release/gslbd}" run --config "$work/gslbd.toml" \
  --listen 127.0.0.1:15399 2> "$work/gslbd.log" &
pid=$!
sleep 1

dnsperf -s 127.0.0.1 -p 15399 -d "$work/queries" -l "$seconds" -Q "$qps" -c 4 -t 2 \
  > "$work/dnsperf.out" 2>&1 &
perf=$!
end=$((SECONDS + seconds))
while [ "$SECONDS" -lt "$end" ]; do
  kill -HUP "$pid"
  sleep 0.1
done
wait "$perf"

grep -E "Queries (sent|completed|lost)" "$work/dnsperf.out"
echo "reloads applied: $(grep -c 'config reloaded' "$work/gslbd.log")"
echo "reloads refused: $(grep -c 'config reload refused' "$work/gslbd.log" || true)"
