"""What the Python half of the cluster bench scripts (bench_detection.sh, bench_failover.sh)
shares: a GET or POST to the REST API or an edge's `/cluster`, a wait with a deadline, the
dev.json of `freya dev --edges 3` once it lists the three edges, and the state one edge's
cluster view gives another."""
import json, os, sys, time, urllib.request


def get(url, key=None, method="GET", timeout=5):
    """The JSON answer of `method url` (with `key` as bearer), or None on any failure."""
    request = urllib.request.Request(url, method=method)
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)
    except Exception:
        return None


def wait(what, check, limit=60.0, every=0.05):
    """The first true value of `check()`, polled every `every` s; exits naming `what` after `limit` s."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    sys.exit(f"timed out waiting for {what}")


def three_edge_info(work):
    """`freya dev`'s dev.json in `work`/data once it lists three edges (waits up to 180 s)."""
    info_path = os.path.join(work, "data", "dev.json")

    def read_info():
        try:
            info = json.load(open(info_path))
            return info if len(info.get("edges", [])) == 3 else None
        except Exception:
            return None

    return wait("dev.json with three edges", read_info, 180)


def state_at(http_url, edge_id, timeout=5):
    """The state (`alive`, `down`, ...) of `edge_id`'s newest generation in the cluster view of
    the edge at `http_url`, or None where it does not answer or does not know it."""
    report = get(f"{http_url}/cluster", timeout=timeout)
    if not report:
        return None
    mine = [m for m in report["members"] if m["id"] == edge_id]
    return max(mine, key=lambda m: m["generation"])["state"] if mine else None
