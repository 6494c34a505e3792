#!/bin/bash
# Voice-pipeline benchmark on one machine: `freya dev` (its edge taking CAPACITY calls), the
# zero-latency fake providers patched onto the demo agent, and one freya-loadtest run against it.
# Prints the run's summary and the edge's own per-turn latency breakdown of one call.
#
#   loadtest/bench_voice.sh OUT.json [freya-loadtest flags...]
#   CAPACITY=300 loadtest/bench_voice.sh r200.json --calls 200 --concurrency 200 --rate 50 \
#       --ramp-up 1 --duration 16 --turn tone:1200 --turn tone:1200 --turn tone:1200 \
#       --turn tone:1200 --barge-in-after-ms 600
#
# Build first: cargo build --release -p freya-control -p freya-loadtest --bins --example fake_providers
set -euo pipefail
OUT=$1; shift
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/target/release}
WORK=$(mktemp -d /tmp/freya-bench-voice.XXXXXX)
cleanup() { kill "${DEV:-}" "${FAKES:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
command -v jq >/dev/null || apt-get install -y jq >/dev/null
"$BIN/examples/fake_providers" > "$WORK/fakes.out" 2>&1 &
FAKES=$!
"$BIN/freya" dev --capacity "${CAPACITY:-100}" --data-dir "$WORK/data" --http 127.0.0.1:18080 \
    --sip 127.0.0.1:15080 --edge-http 127.0.0.1:18081 > "$WORK/dev.log" 2>&1 &
DEV=$!
for _ in $(seq 1 150); do
    [ -s "$WORK/data/dev.json" ] && [ -s "$WORK/fakes.out" ] && break
    sleep 0.2
done
KEY=$(jq -r .api_key "$WORK/data/dev.json")
AGENT=$(jq -r .agent_id "$WORK/data/dev.json")
curl -sf -X PATCH -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -d "$(head -1 "$WORK/fakes.out")" "http://127.0.0.1:18080/v1/agents/$AGENT" > /dev/null
sleep 1.5
"$BIN/freya-loadtest" --target 127.0.0.1:15080 --number demo --edge-pid "$DEV" \
    --edge-metrics http://127.0.0.1:18081/metrics --json "$OUT" --quiet "$@"
CALL=$(curl -sf -H "Authorization: Bearer $KEY" "http://127.0.0.1:18080/v1/calls?limit=1" | jq -r '.data[0].id')
echo "per-turn breakdown recorded by the edge for call $CALL:"
curl -sf -H "Authorization: Bearer $KEY" "http://127.0.0.1:18080/v1/calls/$CALL" |
    jq -c '.events[]? | select(.kind == "call.turn_latency") | .payload'
