#!/usr/bin/env bash
# Installs the Debian packages Freya's scripts need, only those missing, so repeat runs are fast.
# The lists are data: deploy/packages/runtime.txt (building and running Freya, always) and
# deploy/packages/test.txt (tests only, with --test); each line is `PACKAGE CHECK`, CHECK being
# a command on PATH or a path (a glob is fine) whose presence means the package is installed.
# Sourced by dev.sh and test.sh; usage: ensure_packages [--test]
ensure_packages() {
  local lists_dir want=() sudo="" list package check
  lists_dir="$(dirname "${BASH_SOURCE[0]}")/packages"
  local lists=("$lists_dir/runtime.txt")
  [ "${1:-}" = "--test" ] && lists+=("$lists_dir/test.txt")
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  for list in "${lists[@]}"; do
    while read -r package check _ || [ -n "${package:-}" ]; do
      case "$package" in '' | '#'*) continue ;; esac
      if [[ "$check" == */* ]]; then
        compgen -G "$check" >/dev/null || want+=("$package")
      else
        command -v "$check" >/dev/null 2>&1 || want+=("$package")
      fi
    done <"$list"
  done
  if [ ${#want[@]} -gt 0 ]; then
    echo "==> installing ${want[*]}"
    # Some packages ship a daemon (prometheus, for promtool) that Debian starts on install;
    # invoke-rc.d and deb-systemd-invoke ask policy-rc.d, and 101 means "do not start".
    local policy=/usr/sbin/policy-rc.d added_policy=""
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
      $sudo chmod 755 "$policy"
      added_policy=1
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
    if [ -n "$added_policy" ]; then $sudo rm -f "$policy"; fi
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    echo "Freya needs a Rust toolchain (cargo, Rust 1.88 or newer): see https://rustup.rs" >&2
    exit 1
  fi
}
