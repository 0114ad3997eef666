#!/usr/bin/env bash
# The README's first command: runs one real container job end to end and prints its result.
# Installs npm dependencies and builds when needed; needs a Docker engine and busybox-static
# (run .ci/run once on a fresh machine, or apt-get install docker.io redis-server busybox-static).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ -d node_modules ]] || npm ci --no-audit --no-fund
[[ -f dist/cli/main.js && -z $(find src -newer dist/cli/main.js -print -quit) ]] || npm run --silent build
exec dist/cli/main.js demo "$@"
