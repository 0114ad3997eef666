#!/usr/bin/env bash
# The README's first command: runs one real container job end to end and prints its result.
# Does its own set-up (scripts/setup.sh demo: engine, Redis, busybox-static, npm dependencies)
# and builds when the sources are newer than the build.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh demo
[[ -f dist/cli/main.js && -z $(find src -newer dist/cli/main.js -print -quit) ]] || npm run --silent build
exec dist/cli/main.js demo "$@"
