#!/usr/bin/env bash
# The benchmark harness's --ours command: ../shared/bench/dns-peers.sh --ours 'bash bench/run-gslbd.sh'
# Converts the run's workload into a gslbd config and execs the binary in the foreground (the
# harness records this PID and stops it with SIGTERM): target/release/gslbd, or $GSLBD_BIN
# (e.g. target/dist/gslbd, the Dockerfile's build). GSLBD_PROBES=1: probe the workload's eu
# targets (TCP, the harness's health port and interval), to compare with gdnsd-probe.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
probes=()
[[ "${GSLBD_PROBES:-0}" == 1 ]] && probes=(--probes)
python3 "$here/workload-to-config.py" "${probes[@]}" "$BENCH_WORKLOAD" > "$BENCH_DIR/gslbd.toml"
export GSLBD_LOG="${GSLBD_LOG:-warn}"
exec "${GSLBD_BIN:-$here/../target/release/gslbd}" run --config "$BENCH_DIR/gslbd.toml" \
  --listen "$BENCH_ADDR:$BENCH_PORT"
