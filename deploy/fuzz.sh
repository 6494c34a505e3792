#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time and fails on the first crash.
#   deploy/fuzz.sh                 # each target 60 s
#   FUZZ_SECONDS=600 deploy/fuzz.sh sip   # one target, ten minutes
# Needs cargo-fuzz (`cargo install cargo-fuzz`). cargo-fuzz wants nightly for its sanitizer
# flags; on a stable toolchain we set RUSTC_BOOTSTRAP=1, which lets stable accept them.
# Crashes land in fuzz/artifacts/<target>/; the corpus grows in fuzz/corpus/<target>/ and is
# seeded from the unit tests' messages (SIP: RFC 4475; expressions: the example flows') on
# first run.
set -euo pipefail

cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-60}"
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(sip sdp rtp expr)

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz.sh needs cargo-fuzz: cargo install cargo-fuzz" >&2
  exit 1
fi
if ! rustc --version | grep -q nightly; then
  export RUSTC_BOOTSTRAP=1
fi
# Two cores are shared: one fuzzing job, one build job unless told otherwise.
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"

seed_corpus() {
  local target="$1" dir="fuzz/corpus/$1"
  [ -d "$dir" ] && return
  mkdir -p "$dir"
  case "$target" in
    sip)
      # One seed per RFC 4475 message, cut out of the test data (escapes resolved by printf).
      python3 - "$dir" <<'PY' 2>/dev/null || true
import ast, re, sys
src = open("edge/sip/src/torture_tests/messages.rs", encoding="utf-8").read()
for name, lit in re.findall(r'const (\w+): &\[u8\] =\s*b"(.*?)";\n(?:\n|$)', src, re.S):
    text = lit.replace("\\r\n", "\\r\\n")
    data = ast.literal_eval('b"' + text + '"')
    open(f"{sys.argv[1]}/{name.lower()}", "wb").write(data)
PY
      ;;
    sdp)
      printf 'v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8 111 101\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n' >"$dir/offer"
      ;;
    rtp)
      # Length byte + a 12-byte PCMU header + 4 bytes of payload.
      printf '\x10\x80\x00\x00\x01\x00\x00\x00\xa0\xde\xad\xbe\xef\xd5\xd5\xd5\xd5' >"$dir/pcmu"
      ;;
    expr)
      # Conditions and assignments like the example flows' (macros, maps, strings).
      printf "%s" "choice == '1' || choice == \"sales\"" >"$dir/menu"
      printf "%s" "customer.tier == 'gold' && customer.orders.exists(o, o > 10)" >"$dir/macro"
      printf "%s" "{'tier': customer.tier, 'next': attempts + 1, 'tags': [r'\\d', b'x']}" >"$dir/assign"
      printf "%s" "size(customer.orders) > 0 ? customer.orders[0] : -1 // first" >"$dir/ternary"
      ;;
  esac
}

status=0
for target in "${targets[@]}"; do
  seed_corpus "$target"
  echo "==> fuzzing $target for ${seconds}s"
  if ! (cd fuzz && cargo fuzz run "$target" "corpus/$target" -- \
      -max_total_time="$seconds" -max_len=65536 -print_final_stats=1); then
    echo "!! $target crashed: see fuzz/artifacts/$target/" >&2
    status=1
  fi
done
exit $status
