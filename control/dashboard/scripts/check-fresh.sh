#!/usr/bin/env bash
# Fails when what is checked in is stale: the OpenAPI document against the one a running
# control plane serves (path given), the generated client against the document, and `dist/`
# against a fresh build. Byte for byte. Run after `npm ci`.
set -euo pipefail
cd "$(dirname "$0")/.."
served=$1
work=$(mktemp -d /tmp/freya-dashboard-fresh.XXXXXX)
trap 'rm -rf "$work"' EXIT
stale=0
if ! cmp -s "$served" openapi.json; then
  echo "control/dashboard/openapi.json differs from the served /openapi.json: copy it and run npm run gen && npm run build" >&2
  stale=1
fi
npx openapi-typescript openapi.json -o "$work/schema.d.ts" >/dev/null 2>&1
if ! cmp -s "$work/schema.d.ts" src/api/schema.d.ts; then
  echo "src/api/schema.d.ts is stale: run npm run gen" >&2
  stale=1
fi
npx tsc -b
npx vite build --outDir "$work/dist" --emptyOutDir --logLevel warn
if ! diff -r "$work/dist" dist >/dev/null; then
  echo "dist/ is stale: run npm run build and commit control/dashboard/dist" >&2
  diff -rq "$work/dist" dist >&2 || true
  stale=1
fi
exit $stale
