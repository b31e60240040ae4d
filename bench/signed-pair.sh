#!/usr/bin/env bash
# What online signing costs (#15, point 6): gslbd serving the benchmark harness's workload
# unsigned, then signed, on the same machine in the same run, each pinned to CPU 0 with one UDP
# worker and dnsperf on CPU 1. Three cases, every query with EDNS (as resolvers send them):
#   unsigned     the zone unsigned, queries without DO
#   signed-do    the zone signed, queries with DO: every answer carries RRSIGs, negative answers
#                a compact denial (the workload's 5% NXDOMAIN are random names: each new one is
#                signed once, then cached)
#   signed-nodo  the zone signed, queries without DO (what signing costs resolvers that do not ask)
# For each: QPS at saturation (best of RUNS runs of SECONDS s, dnsperf -c 4 -q 100), and server
# CPU µs per answered query at a fixed rate (utime + stime of the process over the window), the
# signatures made (gslbd_dnssec_signatures_total) and the average response size. Then the
# ratios to `unsigned` (measured first and last, the mean of the two).
#
#   cargo build --release
#   bash bench/signed-pair.sh [NAMES] [QPS] [SECONDS] [RUNS]    # defaults: 1000 40000 10 3
#
# Needs ../shared/bench (the harness's workload and query generators) and dnsperf. Loopback
# only (127.0.0.0/8).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
harness="${HARNESS:-$here/../../shared/bench}"
names="${1:-1000}" qps="${2:-40000}" seconds="${3:-10}" runs="${4:-3}"
bin="${GSLBD_BIN:-$here/../target/release/gslbd}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 "$harness/gen-configs.py" -n "$names" -o "$work/cfg" --workers 1 >/dev/null
python3 "$harness/gen-queries.py" -n "$names" -c 200000 -o "$work/queries.txt" >/dev/null
zone="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["zone"])' "$work/cfg/workload.json")"
key="$("$bin" keygen --dnssec --zone "$zone" --dir "$work")"
python3 "$here/workload-to-config.py" "$work/cfg/workload.json" >"$work/unsigned.toml"
python3 "$here/workload-to-config.py" --dnssec "$key" "$work/cfg/workload.json" >"$work/signed.toml"
# The admin endpoint, for the signature counter.
for config in unsigned signed; do
  sed -i 's/^udp_workers = 1$/udp_workers = 1\nadmin = "127.0.0.1:15361"/' "$work/$config.toml"
done

declare -A QPS CPU
measure() { # name config dnsperf-flags...
  local name="$1" config="$2"
  shift 2
  taskset -c 0 env GSLBD_LOG=warn "$bin" run --config "$work/$config.toml" \
    --listen 127.0.0.1:15360 >"$work/$name.log" 2>&1 &
  local pid=$!
  for _ in $(seq 150); do
    dig @127.0.0.1 -p 15360 +time=1 +tries=1 +short "$zone" SOA 2>/dev/null | grep -q . && break
    sleep 0.2
  done
  # Warm up: every name answered (and, signed, its RRsets signed) before measuring.
  taskset -c 1 dnsperf -s 127.0.0.1 -p 15360 -d "$work/queries.txt" -l 5 -c 4 -q 100 "$@" \
    >/dev/null 2>&1 || true
  local best=0 run q
  for run in $(seq "$runs"); do
    taskset -c 1 dnsperf -s 127.0.0.1 -p 15360 -d "$work/queries.txt" -l "$seconds" -c 4 \
      -q 100 "$@" >"$work/$name.sat$run" 2>&1 || true
    q="$(sed -n 's/.*Queries per second: *\([0-9.]*\).*/\1/p' "$work/$name.sat$run")"
    best="$(awk -v a="$best" -v b="${q:-0}" 'BEGIN { print (b > a) ? b : a }')"
  done
  local made0 made1 ticks0 ticks1
  made0="$(curl -s http://127.0.0.1:15361/metrics | awk '/^gslbd_dnssec_signatures_total/ {print $2}')"
  ticks0="$(awk '{print $14 + $15}' /proc/"$pid"/stat)"
  taskset -c 1 dnsperf -s 127.0.0.1 -p 15360 -d "$work/queries.txt" -l "$seconds" -c 4 \
    -q 100 -Q "$qps" "$@" >"$work/$name.fixed" 2>&1 || true
  ticks1="$(awk '{print $14 + $15}' /proc/"$pid"/stat)"
  made1="$(curl -s http://127.0.0.1:15361/metrics | awk '/^gslbd_dnssec_signatures_total/ {print $2}')"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  local answered size
  answered="$(sed -n 's/.*Queries completed: *\([0-9]*\).*/\1/p' "$work/$name.fixed")"
  size="$(sed -n 's/.*Average packet size: *request *[0-9]*, *response *\([0-9]*\).*/\1/p' "$work/$name.fixed")"
  QPS[$name]="$best"
  CPU[$name]="$(awk -v t="$((ticks1 - ticks0))" -v hz="$(getconf CLK_TCK)" -v q="$answered" \
    'BEGIN { printf "%.2f", t * 1e6 / hz / q }')"
  printf '%-12s qps=%-8.0f cpu_us_per_q@%s=%-6s answered=%s resp_bytes=%s signatures_made=%s (%s since start)\n' \
    "$name" "$best" "$qps" "${CPU[$name]}" "$answered" "$size" "$(( ${made1:-0} - ${made0:-0} ))" "${made1:-0}"
}

echo "names=$names qps=$qps seconds=$seconds runs=$runs ($(date -u +%FT%TZ))"
# Unsigned first and last: the ratios are to the mean of the two (drift shows between them).
measure unsigned unsigned -e
measure signed-do signed -D
measure signed-nodo signed -e
measure unsigned-end unsigned -e
for name in signed-do signed-nodo; do
  awk -v n="$name" -v q="${QPS[$name]}" -v c="${CPU[$name]}" \
    -v q0="${QPS[unsigned]}" -v q1="${QPS[unsigned-end]}" \
    -v c0="${CPU[unsigned]}" -v c1="${CPU[unsigned-end]}" 'BEGIN {
      printf "%-12s qps %.2fx unsigned, cpu per query %.2fx unsigned\n", n, 2 * q / (q0 + q1), 2 * c / (c0 + c1) }'
done
