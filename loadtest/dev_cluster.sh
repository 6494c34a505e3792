#!/usr/bin/env bash
# The start the cluster bench scripts share (bench_detection.sh, bench_failover.sh), sourced
# after `set -euo pipefail`: sets root (the checkout), bin (FREYA_BIN, else
# target/release/freya, else target/debug/freya) and work (a fresh temp dir), and puts this
# folder on PYTHONPATH so that their Python half can `import dev_cluster`.
# `start_dev_cluster [ARGS]` starts `freya dev --edges 3 ARGS` on a free SIP port, its data in
# $work/data and its log in $work/dev.log, as dev_pid.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${FREYA_BIN:-}"
if [ -z "$bin" ]; then
  for candidate in "$root/target/release/freya" "$root/target/debug/freya"; do
    if [ -x "$candidate" ]; then bin="$candidate"; break; fi
  done
fi
[ -x "$bin" ] || { echo "no freya binary: cargo build -p freya-control --bin freya (or set FREYA_BIN)" >&2; exit 1; }
work="$(mktemp -d)"
export PYTHONPATH="$root/loadtest${PYTHONPATH:+:$PYTHONPATH}"

start_dev_cluster() {
  local sip_port
  sip_port="$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  "$bin" dev --edges 3 "$@" --data-dir "$work/data" --http 127.0.0.1:0 \
    --sip "127.0.0.1:$sip_port" >"$work/dev.log" 2>&1 &
  dev_pid=$!
}
