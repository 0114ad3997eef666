#!/usr/bin/env bash
# The test command: lint + format check, type check, dependency rules, build, then the unit and integration
# suites against the real Docker engine and a private Redis per test file. Does its own set-up
# first (scripts/setup.sh test: engine, Redis, test tools, npm dependencies).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh test
npm run --silent lint
npm run --silent typecheck
npm run --silent depcheck
npm run --silent build

report=$(mktemp)
trap 'rm -f "$report"' EXIT
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=$?
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const skipped = r.numPendingTests + r.numTodoTests;
  console.log(`Tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
' "$report" || true
exit "$status"
