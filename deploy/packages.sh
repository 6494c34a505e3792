#!/usr/bin/env bash
# Installs the Debian packages Freya's scripts need, only those missing, so repeat runs are fast.
# Sourced by dev.sh and test.sh; usage: ensure_packages [--test]
ensure_packages() {
  local want=() sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  command -v cc >/dev/null 2>&1 || want+=(build-essential)
  command -v cmake >/dev/null 2>&1 || want+=(cmake)
  command -v curl >/dev/null 2>&1 || want+=(curl)
  command -v pkg-config >/dev/null 2>&1 || want+=(pkg-config)
  command -v espeak-ng >/dev/null 2>&1 || want+=(espeak-ng)
  if [ "${1:-}" = "--test" ]; then
    ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || want+=(postgresql)
    command -v sipp >/dev/null 2>&1 || want+=(sip-tester)
    command -v sox >/dev/null 2>&1 || want+=(sox)
    command -v pocketsphinx_continuous >/dev/null 2>&1 || want+=(pocketsphinx pocketsphinx-en-us)
  fi
  if [ ${#want[@]} -gt 0 ]; then
    echo "==> installing ${want[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    echo "Freya needs a Rust toolchain (cargo, Rust 1.88 or newer): see https://rustup.rs" >&2
    exit 1
  fi
}
