#!/usr/bin/env bash
# The browser SDK's test command: installs the pinned dev dependencies (npm ci, only when
# package-lock.json changed since the last install), type-checks, builds dist/cdp.js and runs
# the tests (node --test). Ends with one line "sdk: N passed, M failed"; non-zero exit on failure.
set -uo pipefail
cd "$(dirname "$0")"

fail() {
  echo "$1" >&2
  echo "sdk: 0 passed, 1 failed"
  exit 1
}

command -v node >/dev/null && [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ] || fail "Node.js 20 or later is needed"
stamp=node_modules/.package-lock.sha256
lock=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$lock" ]; then
  npm ci --no-audit --no-fund --loglevel=error >/dev/null || fail "npm ci failed"
  echo "$lock" >"$stamp"
fi
npx --no-install tsc --noEmit || fail "type check failed"
node build.mjs || fail "build failed"

tap=$(mktemp)
trap 'rm -f "$tap"' EXIT
node --test --test-reporter=spec --test-reporter-destination=stdout --test-reporter=tap --test-reporter-destination="$tap" test/
status=$?
passed=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$tap")
failed=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$tap")
passed=${passed:-0}
failed=${failed:-0}
[ "$status" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1 # the runner itself failed
echo "sdk: $passed passed, $failed failed"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
