#!/bin/bash
# The demo agent's own voice-to-voice latency, fully offline: `freya dev` with its seeded demo
# agent (the local recogniser adapted to telephone audio, the `rules` replier, espeak-ng), and
# freya-loadtest calls that ask one spoken question after the greeting. Prints the run's summary.
#
#   loadtest/bench_demo.sh OUT.json [freya-loadtest flags...]
#   loadtest/bench_demo.sh demo.json --calls 40 --concurrency 4 --rate 1 \
#       --turn say:"Hello, what are your opening hours?"
#
# Build first: cargo build --release -p freya-control -p freya-loadtest --bins
set -euo pipefail
OUT=$1; shift
BENCH=demo
. "$(dirname "$0")/bench_common.sh"
"$BIN/freya" dev --data-dir "$WORK/data" --http 127.0.0.1:18180 --sip 127.0.0.1:15180 \
    --edge-http 127.0.0.1:18181 > "$WORK/dev.log" 2>&1 &
DEV=$!
# The first start on a machine adapts the recogniser before dev.json appears.
for _ in $(seq 1 1500); do
    [ -s "$WORK/data/dev.json" ] && break
    sleep 0.2
done
[ -s "$WORK/data/dev.json" ] || { cat "$WORK/dev.log"; exit 1; }
sleep 2
# The greeting lasts about 5.5 s; the question comes after it, and the call holds long enough
# to hear the whole answer.
"$BIN/freya-loadtest" --target 127.0.0.1:15180 --number demo --first-turn-ms 7000 \
    --duration 18 --edge-pid "$DEV" --json "$OUT" "$@"
