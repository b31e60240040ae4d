#!/usr/bin/env bash
# Side-by-side profile of gslbd and gdnsd on the benchmark harness's workload (#14, points 3
# and 4): each server pinned to CPU 0 with one UDP worker, dnsperf pinned to CPU 1 at a fixed
# rate (not client-bound). Per server, for the whole window: CPU µs, context switches and
# syscalls per answered query (`perf stat`), latency percentiles (`dnsperf -v`), and per thread
# the CPU it ran and the time it waited for a CPU while runnable (/proc/PID/task/*/schedstat):
# what other threads of the server took from its answering thread.
#
#   cargo build --release
#   bash bench/profile-pair.sh [NAMES] [QPS] [SECONDS]      # defaults: 1000 40000 15
#
#   PERF_RECORD=1   also `perf record -g` each server: target/profile-<name>.{data,txt}
#   PROBES=1        gslbd probes its 1000 eu targets (TCP, every PROBE_INTERVAL s, default 2:
#                   gdnsd's least) and gdnsd-probe all of its targets alike; the harness's healthd
#                   answers them on 127.x:15390 (on CPU 1, beside dnsperf)
#   GSLBD_BIN=...   the binary to measure (default target/release/gslbd)
#
# Needs ../shared/bench (the harness), dnsperf, gdnsd and perf. Loopback only (127.0.0.0/8).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
harness="${HARNESS:-$here/../../shared/bench}"
names="${1:-1000}" qps="${2:-40000}" seconds="${3:-15}"
interval="${PROBE_INTERVAL:-2}"
work="$(mktemp -d)"
helpers=()
trap 'kill "${helpers[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT

python3 "$harness/gen-configs.py" -n "$names" -o "$work/cfg" --workers 1 \
  --health-interval "$interval" >/dev/null
python3 "$harness/gen-queries.py" -n "$names" -c 200000 -o "$work/queries.txt" >/dev/null
probes=()
[[ "${PROBES:-0}" == 1 ]] && probes=(--probes)
python3 "$here/workload-to-config.py" "${probes[@]}" "$work/cfg/workload.json" >"$work/gslbd.toml"
if [[ "${PROBES:-0}" == 1 ]]; then
  taskset -c 1 python3 "$harness/healthd.py" --addrs "$work/cfg/health-addrs.txt" \
    --port 15390 >"$work/healthd.out" 2>"$work/healthd.err" &
  helpers+=($!)
  for _ in $(seq 100); do grep -q READY "$work/healthd.out" && break; sleep 0.2; done
fi

events=task-clock,context-switches,cpu-migrations,raw_syscalls:sys_enter
events+=,syscalls:sys_enter_recvmmsg,syscalls:sys_enter_sendmmsg
events+=,syscalls:sys_enter_recvmsg,syscalls:sys_enter_sendmsg,syscalls:sys_enter_futex
events+=,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_recvfrom,syscalls:sys_enter_sendto

# "tid comm run_ns wait_ns" for every thread of process $1
threads() {
  local task
  for task in /proc/"$1"/task/*; do
    printf '%s %s %s\n' "${task##*/}" "$(tr ' ' '_' <"$task/comm")" "$(cut -d' ' -f1,2 "$task/schedstat")"
  done 2>/dev/null
}

measure() { # name port command...
  local name="$1" port="$2"
  shift 2
  taskset -c 0 "$@" >"$work/$name.log" 2>&1 &
  local pid=$!
  for _ in $(seq 150); do
    dig @127.0.0.1 -p "$port" +time=1 +tries=1 +short gslb.example.com SOA 2>/dev/null \
      | grep -q . && break
    sleep 0.2
  done
  # gdnsd forks into a helper and the daemon: profile the process that owns the port.
  local server
  server="$(ss -Hulpn "sport = :$port" | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -1)"
  # Warm up (and, with probes, let the first rounds pass).
  taskset -c 1 dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries.txt" -l 3 -c 4 -q 100 \
    >/dev/null 2>&1 || true
  threads "$server" >"$work/$name.threads0"
  # utime and stime of the whole process, in clock ticks (fields 14 and 15 of /proc/PID/stat).
  local ticks0 ticks1
  ticks0="$(awk '{print $14, $15}' /proc/"$server"/stat)"
  perf stat -e "$events" -p "$server" -o "$work/$name.stat" -- sleep "$seconds" &
  local stat=$! record=
  if [[ "${PERF_RECORD:-0}" == 1 ]]; then
    perf record -q -g -p "$server" -o "$work/$name.data" -- sleep "$seconds" >/dev/null 2>&1 &
    record=$!
  fi
  taskset -c 1 dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries.txt" -l "$seconds" -c 4 \
    -q 100 -Q "$qps" -v >"$work/$name.perf" 2>&1 || true
  threads "$server" >"$work/$name.threads1"
  ticks1="$(awk '{print $14, $15}' /proc/"$server"/stat)"
  wait "$stat"
  [[ -z "$record" ]] || wait "$record"
  local answered
  answered="$(sed -n 's/.*Queries completed: *\([0-9]*\).*/\1/p' "$work/$name.perf")"
  kill "$pid" "$server" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  local latency
  latency="$(python3 "$harness/latstats.py" "$work/$name.perf")"
  awk -v n="$name" -v q="$answered" -v lat="$latency" -v t0="$ticks0" -v t1="$ticks1" \
    -v hz="$(getconf CLK_TCK)" '
    /task-clock/ { gsub(",", "", $1); ms = $1 }
    /context-switches/ { gsub(",", "", $1); cs = $1 }
    /raw_syscalls:sys_enter/ { gsub(",", "", $1); sc = $1 }
    /syscalls:sys_enter_/ && !/raw_/ { gsub(",", "", $1); split($2, p, "sys_enter_"); if ($1 > 0) per[p[2]] = $1 }
    END {
      printf "%-11s answered=%d cpu_us_per_q=%.2f ctx_switches_per_q=%.3f syscalls_per_q=%.3f", n, q, ms * 1000 / q, cs / q, sc / q
      for (s in per) printf " %s=%.3f", s, per[s] / q
      split(t0, a, " "); split(t1, b, " ")
      printf "\n%-11s user_us_per_q=%.2f kernel_us_per_q=%.2f (from utime/stime)", "", (b[1] - a[1]) * 1e6 / hz / q, (b[2] - a[2]) * 1e6 / hz / q
      printf "\n%-11s %s\n", "", lat
    }' "$work/$name.stat"
  # Per thread group (by name): CPU and run-queue wait over the window, ms.
  awk -v n="$name" '
    NR == FNR { run0[$1] = $3; wait0[$1] = $4; next }
    { run[$2] += ($3 - run0[$1]) / 1e6; wait[$2] += ($4 - wait0[$1]) / 1e6; count[$2]++ }
    END {
      for (c in run) if (run[c] >= 1 || wait[c] >= 1)
        printf "%-11s thread %-16s x%-3d cpu_ms=%.0f runqueue_wait_ms=%.1f\n", "", c, count[c], run[c], wait[c]
    }' "$work/$name.threads0" "$work/$name.threads1"
  if [[ "${PERF_RECORD:-0}" == 1 ]]; then
    local out="$here/../target/profile-$name"
    mv "$work/$name.data" "$out.data"
    {
      perf report -i "$out.data" --no-children --sort dso --stdio 2>/dev/null | grep '%' | head -8
      perf report -i "$out.data" --no-children --sort sym --stdio -g none 2>/dev/null \
        | grep '%' | head -40
    } >"$out.txt" || true
    echo "            profile: target/profile-$name.txt (perf report -i target/profile-$name.data)"
  fi
}

mkdir -p "$here/../target"
measure gslbd 15360 env GSLBD_LOG=warn "${GSLBD_BIN:-$here/../target/release/gslbd}" run \
  --config "$work/gslbd.toml" --listen 127.0.0.1:15360
if [[ "${PROBES:-0}" == 1 ]]; then
  measure gdnsd-probe 15356 gdnsd -c "$work/cfg/gdnsd-probe" start
else
  measure gdnsd 15355 gdnsd -c "$work/cfg/gdnsd" start
fi
