#!/usr/bin/env python3
"""A benchmark (not a test) of the resource lists' cursor pages: `GET /v1/agents` on a workspace
of N agents — a page of 100 (the default), a page of 500 (the most), and a walk of every page at
500 following `next_cursor` — against a running control plane (`freya dev`). Creates the agents
first (waiting out the key's rate limit); pauses between timed requests so that no timing
includes a 429 wait. Figures and the exact commands: loadtest/BENCHMARKS.md, "Resource lists in
cursor pages".

Usage: list_pages_bench.py PORT API_KEY N
"""
import http.client, json, sys, time, statistics
port, key, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
c = http.client.HTTPConnection("127.0.0.1", port)
H = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
def call(method, path, body=None):
    global c
    try:
        return call_once(method, path, body)
    except (BrokenPipeError, ConnectionError, http.client.HTTPException):
        c = http.client.HTTPConnection("127.0.0.1", port)
        time.sleep(1.0)
        return call(method, path, body)
def call_once(method, path, body=None):
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=H)
    r = c.getresponse(); data = r.read()
    if r.status == 429:  # the dev key's rate limit: wait and ask again (never inside a timing)
        time.sleep(1.0); return call(method, path, body)
    return r.status, data
st, data = call("GET", "/v1/agents?limit=500")
have = 0
cur = None
while True:
    st, data = call("GET", "/v1/agents?limit=500" + (f"&cursor={cur}" if cur else ""))
    d = json.loads(data); have += len(d["data"]); cur = d["next_cursor"]
    if not cur: break
for i in range(have, n):
    st, _ = call("POST", "/v1/agents", {"name": f"bench {i}", "system_prompt": "You are a test agent. " * 10})
    assert st == 201, (st, _)
def timed(label, fn, reps=30):
    ts = []
    for _ in range(reps):
        time.sleep(0.3)  # stay under the key's rate limit, so no timing includes a 429 wait
        t = time.perf_counter(); size = fn(); ts.append((time.perf_counter() - t) * 1000)
    ts.sort()
    print(f"| {label} | {size:,} | {statistics.median(ts):.1f} | {ts[int(len(ts)*0.9)-1]:.1f} |")
def page(limit):
    def f():
        st, data = call("GET", f"/v1/agents?limit={limit}"); assert st == 200; return len(data)
    return f
def walk():
    total = 0; cur = None
    while True:
        st, data = call("GET", "/v1/agents?limit=500" + (f"&cursor={cur}" if cur else ""))
        assert st == 200; total += len(data); cur = json.loads(data)["next_cursor"]
        if not cur: return total
print(f"| request ({n} agents) | bytes | median ms | p90 ms |")
print("| --- | --- | --- | --- |")
timed("GET /v1/agents (default page: 100)", page(100))
timed("GET /v1/agents?limit=500", page(500))
timed(f"every page at 500 ({(n+499)//500} requests)", walk, reps=10)
