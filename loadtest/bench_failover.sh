#!/usr/bin/env bash
# Failover and rolling restart under load, with real processes: `freya dev --edges 3` and
# `freya loadtest --target <the three edges>` spreading calls over them in turn.
#
#   MODE=kill     (default) the load tester SIGKILLs the third edge KILL_AT seconds in
#                 (`--kill-one-at`, `--dev-json`) and prints its failover report: when every
#                 peer saw it down, failed calls before/after detection, its calls ended
#                 `edge_lost` and how long after the kill the last one was.
#   MODE=rolling  while the load runs, edges 3 and 2 in turn are drained over REST
#                 (`POST /v1/edges/{id}/drain`), wait for their calls to finish, exit, and are
#                 restarted from their config file. Edge 1 shares the control plane's process
#                 in `freya dev` and is not restarted. The load tester follows the cluster's
#                 view (`--follow-cluster`): no new call to an edge that is draining, down or
#                 not yet ready, as a carrier fed by that view would.
#   LOGS=DIR      keep the control plane's and the edges' logs there (RUST_LOG applies).
#
#   CALLS=150 RATE=5 CONCURRENCY=60 DURATION=12 KILL_AT=15 loadtest/bench_failover.sh
#   MODE=rolling loadtest/bench_failover.sh
# Uses target/release/freya, else target/debug/freya (or FREYA_BIN).
set -euo pipefail

. "$(dirname "$0")/dev_cluster.sh"
mode="${MODE:-kill}"
calls="${CALLS:-150}"; rate="${RATE:-5}"; concurrency="${CONCURRENCY:-60}"
duration="${DURATION:-12}"; kill_at="${KILL_AT:-15}"
start_dev_cluster --capacity 200
cleanup() {
  kill -TERM "$dev_pid" 2>/dev/null || true
  wait "$dev_pid" 2>/dev/null || true
  for f in "$work"/edge-*.pid; do [ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null || true; done
  if [ -n "${LOGS:-}" ]; then
    mkdir -p "$LOGS"
    cp "$work/dev.log" "$LOGS/" 2>/dev/null || true
    for f in "$work"/data/*/edge.log; do [ -f "$f" ] && cp "$f" "$LOGS/$(basename "$(dirname "$f")").log"; done
    for f in "$work"/edge-*.log; do [ -f "$f" ] && cp "$f" "$LOGS/restarted-$(basename "$f")"; done
  fi
  rm -rf "$work"
}
trap cleanup EXIT

python3 - "$bin" "$work" "$mode" "$calls" "$rate" "$concurrency" "$duration" "$kill_at" <<'PY'
import json, os, subprocess, sys, time

from dev_cluster import get, state_at, three_edge_info, wait

binary, work, mode = sys.argv[1], sys.argv[2], sys.argv[3]
calls, rate, concurrency, duration, kill_at = sys.argv[4:9]
info_path = os.path.join(work, "data", "dev.json")
info = three_edge_info(work)
api, key, edges = info["api_url"], info["api_key"], info["edges"]

def running(pid):
    # An exited child of `freya dev` may stay a zombie until it is reaped: that counts as gone.
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False

def all_alive():
    return all(state_at(a["http_url"], e["id"]) == "alive" for a in edges for e in edges)

wait("every edge alive", all_alive, 60)
targets = ",".join(e["sip_addr"] for e in edges)
report = os.path.join(work, "report.json")
command = [binary, "loadtest", "--quiet", "--target", targets, "--number", info["phone_number"],
           "--calls", calls, "--rate", rate, "--concurrency", concurrency,
           "--duration", duration, "--turn", "tone:300", "--json", report]
if mode == "kill":
    command += ["--kill-one-at", kill_at, "--dev-json", info_path]
else:
    command += ["--follow-cluster", "--dev-json", info_path]
print("$ " + " ".join(command[1:]), flush=True)
started = time.monotonic()
load = subprocess.Popen(command)
if mode == "rolling":
    time.sleep(float(kill_at))
    for edge in (edges[2], edges[1]):
        t0 = time.monotonic()
        answer = get(f"{api}/v1/edges/{edge['id']}/drain", key, "POST")
        print(f"{t0 - started:6.1f} s: drain {edge['id']} -> {answer}", flush=True)
        # It exits once its calls are over; then it is started again from its config file.
        while running(edge["pid"]):
            time.sleep(0.05)
        exited = time.monotonic()
        log = open(os.path.join(work, f"edge-{edge['id']}.log"), "w")
        child = subprocess.Popen([binary, "edge", "--config", edge["config"]], stdout=log, stderr=log)
        open(os.path.join(work, f"edge-{edge['id']}.pid"), "w").write(str(child.pid))
        edge["pid"] = child.pid
        wait("the restarted edge alive everywhere", all_alive, 60)
        back = time.monotonic()
        print(f"{exited - started:6.1f} s: {edge['id']} drained and exited after {exited - t0:.1f} s; "
              f"alive again everywhere {back - exited:.1f} s later", flush=True)
load.wait()
summary = json.load(open(report))
print(json.dumps({k: summary[k] for k in ("calls", "succeeded", "failed", "failures", "redirects", "peak_active")}))
if summary.get("failover"):
    print(json.dumps(summary["failover"], indent=1))
by_edge = {}
for r in summary["call_records"]:
    by_edge.setdefault(r.get("edge") or "none", [0, 0])[0 if r.get("failure") is None else 1] += 1
print("calls by answering edge [ok, failed]:", json.dumps(by_edge))
PY
