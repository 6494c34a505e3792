#!/usr/bin/env bash
# Runs Freya's whole test suite, on SQLite and on a real PostgreSQL server that this script
# starts on a private port and data directory (and stops afterwards), plus format and lint
# checks (FREYA_SKIP_LINT=1 skips those while iterating). Installs what it needs; safe to run
# again.
set -euo pipefail
cd "$(dirname "$0")/.."
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
echo "==> tests (SQLite and PostgreSQL)"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
