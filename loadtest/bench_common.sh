#!/bin/bash
# The start the bench scripts share, sourced after `OUT=$1; shift` with BENCH naming the bench:
# sets ROOT (the checkout), BIN (the release binaries, unless BIN is set) and WORK (a fresh
# /tmp/freya-bench-$BENCH.* directory); on exit, stops whichever of DEV, CONTROL, EDGE and FAKES
# the script started and removes WORK.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BIN:-$ROOT/target/release}
WORK=$(mktemp -d "/tmp/freya-bench-$BENCH.XXXXXX")
cleanup() {
    kill "${DEV:-}" "${CONTROL:-}" "${EDGE:-}" "${FAKES:-}" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
