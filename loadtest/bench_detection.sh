#!/usr/bin/env bash
# How long the cluster takes to notice a dead edge: runs `freya dev --edges 3`, then ROUNDS
# times (default 20) SIGKILLs the third edge, measures the time until every survivor's
# `GET /cluster` shows it `down` and until the control plane's `GET /v1/edges` shows it
# `offline` (polled every 10 ms), restarts it from its config file and waits until it is alive
# again everywhere. Prints each round and the p50/p99 of both times. With SIGNAL=TERM the edge
# is stopped with SIGTERM instead: it drains (no calls: at once), leaves the cluster and exits,
# so the time is that of its goodbye rather than of detecting a crash.
#
#   loadtest/bench_detection.sh            # uses target/release/freya, else target/debug/freya
#   FREYA_BIN=path/to/freya ROUNDS=20 loadtest/bench_detection.sh
#   SIGNAL=TERM loadtest/bench_detection.sh
set -euo pipefail

. "$(dirname "$0")/dev_cluster.sh"
rounds="${ROUNDS:-20}"
start_dev_cluster
cleanup() {
  kill -TERM "$dev_pid" 2>/dev/null || true
  wait "$dev_pid" 2>/dev/null || true
  if [ -f "$work/edge.pid" ]; then kill -KILL "$(cat "$work/edge.pid")" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

python3 - "$bin" "$work" "$rounds" <<'PY'
import os, signal, subprocess, sys, time
from functools import partial

import dev_cluster

binary, work, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
# Polled every 10 ms, each request given 2 s: the times measured are this fine.
state_at = partial(dev_cluster.state_at, timeout=2)
wait = partial(dev_cluster.wait, every=0.01)

info = dev_cluster.three_edge_info(work)
api, key, edges = info["api_url"], info["api_key"], info["edges"]
victim = edges[2]
survivors = [e["http_url"] for e in edges[:2]]

def control_status(edge_id):
    listed = dev_cluster.get(f"{api}/v1/edges", key, timeout=2) or []
    return next((e["status"] for e in listed if e["id"] == edge_id), None)

def all_alive():
    return all(state_at(url, e["id"]) == "alive" for url in survivors + [victim["http_url"]] for e in edges) \
        and control_status(victim["id"]) == "online"

wait("every edge alive", all_alive, 60)
pid = victim["pid"]
stop_signal = signal.SIGTERM if os.environ.get("SIGNAL") == "TERM" else signal.SIGKILL
down_times, offline_times = [], []
for n in range(rounds):
    os.kill(pid, stop_signal)
    killed = time.monotonic()
    down_at = {}
    offline_at = None
    while len(down_at) < len(survivors) or offline_at is None:
        now = time.monotonic()
        if now - killed > 30:
            sys.exit(f"round {n + 1}: not detected within 30 s")
        for url in survivors:
            if url not in down_at and state_at(url, victim["id"]) == "down":
                down_at[url] = time.monotonic() - killed
        if offline_at is None and control_status(victim["id"]) == "offline":
            offline_at = time.monotonic() - killed
        time.sleep(0.01)
    down = max(down_at.values())
    down_times.append(down)
    offline_times.append(offline_at)
    print(f"round {n + 1:2}: down at every survivor {down * 1000:6.0f} ms, offline at the control plane {offline_at * 1000:6.0f} ms", flush=True)
    log = open(os.path.join(work, f"edge-restart-{n}.log"), "w")
    child = subprocess.Popen([binary, "edge", "--config", victim["config"]], stdout=log, stderr=log)
    pid = child.pid
    open(os.path.join(work, "edge.pid"), "w").write(str(pid))
    wait("the restarted edge alive everywhere", all_alive, 60)

def pct(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered) + 0.5)) - 1))]

for name, values in (("down at every survivor", down_times), ("offline at the control plane", offline_times)):
    print(f"{name}: p50 {pct(values, 50) * 1000:.0f} ms, p99 {pct(values, 99) * 1000:.0f} ms, max {max(values) * 1000:.0f} ms ({len(values)} kills)")
os.kill(pid, signal.SIGTERM)
PY
