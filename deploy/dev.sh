#!/usr/bin/env bash
# Runs Freya on this machine: installs what the running product needs (deploy/packages/runtime.txt),
# builds it and starts `freya dev` (control plane on embedded SQLite, one edge, a demo agent).
# Arguments go to `freya dev` (see `--help`). Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/packages.sh
ensure_packages
cargo build --release --bin freya
exec ./target/release/freya dev "$@"
