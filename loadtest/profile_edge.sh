#!/bin/bash
# Where a separate `freya edge` spends its CPU under a load test: runs `bench_voice.sh` with
# SPLIT=1, samples the edge with `perf record` while the load runs, and prints the share of the
# edge's samples (inclusive of callees) spent in each symbol matching PATTERN.
#
#   loadtest/profile_edge.sh OUT.json PATTERN [freya-loadtest flags...]
#   CAPACITY=700 loadtest/profile_edge.sh /tmp/rate300.json 'endpoint.*(poll|handle)_timeout' \
#       --calls 3000 --concurrency 600 --rate 300 --ramp-up 1 --duration 1
#
# Environment: as for bench_voice.sh (BIN, CAPACITY, LOADGEN_NICE, PIN), plus
#   PERF_SECONDS=N  how long to sample, from the edge's start (default 12)
#   PERF_DATA=FILE  where to keep the samples (default: a temporary file, removed)
set -euo pipefail
OUT=$1 PATTERN=$2; shift 2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
command -v perf >/dev/null || { echo "profile_edge.sh needs perf (apt-get install -y linux-perf)" >&2; exit 1; }
DATA=${PERF_DATA:-$(mktemp /tmp/freya-edge-perf.XXXXXX)}
SPLIT=1 "$ROOT/loadtest/bench_voice.sh" "$OUT" "$@" &
BENCH=$!
EDGE=
for _ in $(seq 1 300); do
    EDGE=$(pgrep -f 'freya edge --config /tmp/freya-bench-voice' | head -1 || true)
    [ -n "$EDGE" ] && break
    sleep 0.1
done
[ -n "$EDGE" ] || { echo "the edge did not start" >&2; kill "$BENCH"; exit 1; }
perf record -F 999 -g -p "$EDGE" -o "$DATA" -- sleep "${PERF_SECONDS:-12}" 2>/dev/null
wait "$BENCH"
echo "share of the edge's samples (with callees) in symbols matching /$PATTERN/:"
perf report -i "$DATA" --children --sort symbol -g none --percent-limit 0 --stdio 2>/dev/null |
    grep -E "$PATTERN" | head -20
[ -n "${PERF_DATA:-}" ] || rm -f "$DATA"
