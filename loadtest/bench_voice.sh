#!/bin/bash
# Voice-pipeline benchmark on one machine: Freya, the zero-latency fake providers patched onto the
# demo agent, and one freya-loadtest run against it. Prints the run's summary and the edge's own
# per-turn latency breakdown of one call.
#
#   loadtest/bench_voice.sh OUT.json [freya-loadtest flags...]
#   CAPACITY=300 loadtest/bench_voice.sh r200.json --calls 200 --concurrency 200 --rate 50 \
#       --ramp-up 1 --duration 16 --turn tone:1200 --turn tone:1200 --turn tone:1200 \
#       --turn tone:1200 --barge-in-after-ms 600
#
# Environment:
#   CAPACITY=N      calls the edge takes (default 100)
#   SPLIT=1         run `freya control` and `freya edge` as two processes (the demo database is
#                   seeded by `freya dev` first); the edge figures are then the edge's alone
#   LOADGEN_NICE=N  run the load generator and the fake providers (and, with SPLIT=1, the
#                   control plane) at this niceness, so they cannot delay the edge's ticks; the
#                   load generator's figures use the kernel's arrival stamps, not its own clock
#   PIN=1           (with SPLIT=1) give the edge CPU 1 to itself and run everything else on CPU 0,
#                   to measure what one dedicated core holds
#   FAKES_ARGS="…"  options of the fake providers (`--llm-reply TEXT`,
#                   `--llm-pause-after-first-sentence-ms N`); split on spaces, so a reply with
#                   spaces goes in FAKES_REPLY instead
#   FAKES_REPLY=…   what the fake model answers every turn
#   EXTRA_PATCH=…   JSON merged into the agent patch, e.g. '{"turn":{"sentence_flush_ms":0}}'
#
# Build first: cargo build --release -p freya-control -p freya-loadtest --bins --example fake_providers
set -euo pipefail
OUT=$1; shift
BENCH=voice
. "$(dirname "$0")/bench_common.sh"
command -v jq >/dev/null || apt-get install -y jq >/dev/null
NICE=()
[ -n "${LOADGEN_NICE:-}" ] && NICE=(nice -n "$LOADGEN_NICE")
REST=() EDGE_CPU=()
if [ -n "${PIN:-}" ]; then
    REST=(taskset -c 0) EDGE_CPU=(taskset -c 1)
fi
FAKE_OPTS=()
# shellcheck disable=SC2206  # split on purpose
[ -n "${FAKES_ARGS:-}" ] && FAKE_OPTS=($FAKES_ARGS)
[ -n "${FAKES_REPLY:-}" ] && FAKE_OPTS+=(--llm-reply "$FAKES_REPLY")
"${REST[@]}" "${NICE[@]}" "$BIN/examples/fake_providers" "${FAKE_OPTS[@]}" > "$WORK/fakes.out" 2>&1 &
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
EDGE_PID=$DEV
if [ -n "${SPLIT:-}" ]; then
    # The same database and secrets, served by two processes on the same ports.
    kill "$DEV"; wait "$DEV" 2>/dev/null || true; DEV=
    SECRET=bench-edge-secret-0123456789abcdef
    cat > "$WORK/control.toml" <<TOML
[http]
addr = "127.0.0.1:18080"
[grpc]
addr = "127.0.0.1:17090"
[database]
url = "sqlite://$WORK/data/freya.db?mode=rwc"
[edges]
shared_secret = "$SECRET"
[recordings]
dir = "$WORK/recordings"
[auth]
jwt_secret = "$(jq -r .jwt_secret "$WORK/data/auth.json")"
encryption_key = "$(jq -r .encryption_key "$WORK/data/auth.json")"
TOML
    cat > "$WORK/edge.toml" <<TOML
id = "bench-edge"
region = "local"
data_dir = "$WORK/edge"
capacity = ${CAPACITY:-100}
[control]
url = "http://127.0.0.1:17090"
shared_secret = "$SECRET"
[sip]
addr = "127.0.0.1:15080"
# The load tester calls from one address at load-test rates: open the per-source INVITE limits.
invites_per_second_per_source = 1000
invite_burst_per_source = ${CAPACITY:-100}
max_unconfirmed = ${CAPACITY:-100}
max_unconfirmed_per_source = ${CAPACITY:-100}
[http]
addr = "127.0.0.1:18081"
[egress]
allow_private_targets = true   # the fake providers listen on 127.0.0.1
TOML
    "${REST[@]}" "${NICE[@]}" "$BIN/freya" control --config "$WORK/control.toml" > "$WORK/control.log" 2>&1 &
    CONTROL=$!
    "${EDGE_CPU[@]}" "$BIN/freya" edge --config "$WORK/edge.toml" > "$WORK/edge.log" 2>&1 &
    EDGE=$!
    EDGE_PID=$EDGE
    for _ in $(seq 1 150); do
        curl -sf http://127.0.0.1:18081/readyz > /dev/null 2>&1 && break
        sleep 0.2
    done
fi
curl -sf -X PATCH -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -d "$(head -1 "$WORK/fakes.out" | jq -c --argjson extra "${EXTRA_PATCH:-"{}"}" '. * $extra')" \
    "http://127.0.0.1:18080/v1/agents/$AGENT" > /dev/null
sleep 1.5
"${REST[@]}" "${NICE[@]}" "$BIN/freya-loadtest" --target 127.0.0.1:15080 --number demo --edge-pid "$EDGE_PID" \
    --edge-metrics http://127.0.0.1:18081/metrics --json "$OUT" --quiet "$@"
CALL=$(curl -sf -H "Authorization: Bearer $KEY" "http://127.0.0.1:18080/v1/calls?limit=1" | jq -r '.data[0].id')
echo "per-turn breakdown recorded by the edge for call $CALL:"
curl -sf -H "Authorization: Bearer $KEY" "http://127.0.0.1:18080/v1/calls/$CALL" |
    jq -c '.events[]? | select(.kind == "call.turn_latency") | .payload'
