#!/usr/bin/env bash
# Runs Freya's whole test suite, on SQLite and on a real PostgreSQL server that this script
# starts on a private port and data directory (and stops afterwards), plus format and lint
# checks (FREYA_SKIP_LINT=1 skips those while iterating). Installs what it needs; safe to run
# again.
set -euo pipefail
cd "$(dirname "$0")/.."
# A clean CI build never reuses incremental caches, which would take gigabytes beside the test
# binaries on a disk that may be small.
if [ "${CI:-}" = true ]; then export CARGO_INCREMENTAL=0; fi
source deploy/packages.sh
ensure_packages --test

pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
pg_dir=$(mktemp -d /tmp/freya-test-pg.XXXXXX)
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" -eq 0 ] && chown postgres "$pg_dir"
port=55432
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
stop_pg() {
  as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$pg_dir"
}
trap stop_pg EXIT
echo "==> starting PostgreSQL on 127.0.0.1:$port"
as_pg "$pg_bin/initdb" -D "$pg_dir/data" -U freya --auth=trust -E UTF8 >/dev/null
as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/data/server.log" -w \
  -o "-p $port -k $pg_dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null
export FREYA_TEST_POSTGRES_URL="postgres://freya@127.0.0.1:$port/postgres"

if [ "${FREYA_SKIP_LINT:-}" != 1 ]; then
  echo "==> cargo fmt --check"
  cargo fmt --all -- --check
  echo "==> cargo clippy"
  cargo clippy --workspace --all-targets --quiet -- -D warnings
fi
echo "==> OpenAPI document and property-based API test (schemathesis, bounded)"
# A `freya dev` of its own, on free ports and a throw-away data directory; schemathesis (PyPI)
# generates requests from /openapi.json for a bounded time and the run fails on any 5xx answer.
if ! command -v st >/dev/null 2>&1; then
  python3 -m pip install --quiet schemathesis
fi
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
free_udp_port() { python3 -c 'import socket; s = socket.socket(type=socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cargo build --quiet --bin freya
freya_bin="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/debug/freya"
api_dir=$(mktemp -d /tmp/freya-schemathesis.XXXXXX)
api_port=$(free_port)
"$freya_bin" dev --data-dir "$api_dir" --http "127.0.0.1:$api_port" \
  --sip "127.0.0.1:$(free_udp_port)" >"$api_dir/freya.log" 2>&1 &
api_pid=$!
stop_api() {
  kill "$api_pid" 2>/dev/null || true
  wait "$api_pid" 2>/dev/null || true
  rm -rf "$api_dir"
}
trap 'stop_api; stop_pg' EXIT
# On a machine's first run `freya dev` adapts the offline recogniser (about half a minute, once)
# before it is ready; the tests after this one find it adapted.
for _ in $(seq 1 1500); do
  [ -s "$api_dir/dev.json" ] && curl -fs "http://127.0.0.1:$api_port/readyz" >/dev/null && break
  sleep 0.2
done
if [ ! -s "$api_dir/dev.json" ]; then
  echo "freya dev did not come up for the API test; its log:" >&2
  cat "$api_dir/freya.log" >&2
  exit 1
fi
api_key=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["api_key"])' "$api_dir/dev.json")

echo "==> alerting rules (promtool) and the metrics they and the dashboard name"
promtool check rules deploy/monitoring/alerts.yml
promtool test rules deploy/monitoring/alerts_test.yml
promtool check config deploy/monitoring/prometheus.yml
python3 deploy/monitoring/check_metrics.py --self-test
# One call through the dev setup, then every freya_* name in alerts.yml and
# grafana-dashboard.json must be exported by its control plane's or its edge's /metrics, and
# every Freya family exported must keep to Prometheus' naming conventions.
dev_field() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$api_dir/dev.json" "$1"; }
"$freya_bin" call "$(dev_field sip_uri)" --say "What are your opening hours?" >"$api_dir/call.log" 2>&1 \
  || { cat "$api_dir/call.log" >&2; exit 1; }
python3 deploy/monitoring/check_metrics.py "http://127.0.0.1:$api_port/metrics" \
  "$(dev_field edge_http_url)/metrics"
curl -fs "http://127.0.0.1:$api_port/openapi.json" -o "$api_dir/openapi.json"
python3 -m openapi_spec_validator "$api_dir/openapi.json"
# Under the dev key's rate limit (1200/min), so requests test the API rather than the limiter.
(cd "$api_dir" && st run "http://127.0.0.1:$api_port/openapi.json" \
  --header "Authorization: Bearer $api_key" \
  --checks not_a_server_error \
  --max-time 60 --max-examples 50 --rate-limit 1100/m --request-timeout 10 \
  --warnings off)
cp "$api_dir/openapi.json" "${TMPDIR:-/tmp}/freya-served-openapi.json"
stop_api
trap stop_pg EXIT

echo "==> deploy recipes (systemd-analyze verify, compose and Containerfile lint, kubernetes-validate)"
# kubernetes-validate (PyPI) bundles the Kubernetes schemas, so it validates offline.
if ! command -v kubernetes-validate >/dev/null 2>&1; then
  python3 -m pip install --quiet kubernetes-validate
fi
python3 -c 'import yaml' 2>/dev/null || python3 -m pip install --quiet pyyaml
python3 deploy/check_recipes.py --freya "$freya_bin" --self-test

echo "==> dashboard: checked-in client and build are fresh, size, end-to-end in chromium"
# npm ci fetches the pinned packages; everything after it works offline. The end-to-end test
# starts its own `freya dev` with the binary built above and drives Debian's chromium.
(cd control/dashboard && npm ci --no-audit --no-fund --loglevel=error \
  && scripts/check-fresh.sh "${TMPDIR:-/tmp}/freya-served-openapi.json" \
  && node scripts/size.mjs \
  && FREYA_BIN="$freya_bin" node e2e/run.mjs)
rm -f "${TMPDIR:-/tmp}/freya-served-openapi.json"

# Last, so the test runner's summary closes the output.
echo "==> tests (SQLite and PostgreSQL)"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast --config-file deploy/nextest.toml
else
  cargo test --workspace --no-fail-fast
fi
