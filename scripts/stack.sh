#!/usr/bin/env bash
# The compose stack in one command: `scripts/stack.sh up -d --scale worker=3`, `scripts/stack.sh logs
# worker`, `scripts/stack.sh down -v`. Before a command that needs the images (up, build, run,
# create) it seeds the base images when they are missing (scripts/seed-images.sh), builds the
# worker image from the host's build output, and writes the settings compose needs into the env
# file when unset; then it passes every argument on to `docker compose` (v2) or `docker-compose`.
#
#   STEVEDORE_ENV_FILE  the env file (default .env at the repo root; compose reads it too)
#   STEVEDORE_COMPOSE   the compose command to use (default: `docker compose` if present, else docker-compose)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD

env_file=${STEVEDORE_ENV_FILE:-$repo/.env}
stage=$repo/.stevedore/image # what the image is built from: a production-only node_modules
image=${STEVEDORE_WORKER_IMAGE:-stevedore/worker:local}
socket=${DOCKER_HOST:-unix:///var/run/docker.sock}
socket=${STEVEDORE_DOCKER_SOCKET:-${socket#unix://}}
STOP_GRACE_MARGIN_S=15 # the worker's own stop of its jobs (stop + remove + requeue) after its grace

say() { echo "stack: $*" >&2; }

if [[ -n ${STEVEDORE_COMPOSE:-} ]]; then
  read -r -a compose <<<"$STEVEDORE_COMPOSE"
elif docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null; then
  compose=(docker-compose)
else
  say "neither \`docker compose\` nor docker-compose is installed: sudo apt-get install docker-compose (or sudo bash scripts/setup.sh test)"
  exit 1
fi

# The compose subcommand: the first argument that is not a global option or its value.
command=''
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[i]} in
    -p | --project-name | -f | --file | --env-file | --profile | --project-directory | -H | --host | --log-level | --context | --ansi)
      i=$((i + 1)) ;;
    -*) ;;
    *) command=${args[i]}; break ;;
  esac
done

# A value from the environment, else from the env file, else empty.
setting() {
  local name=$1
  if [[ -n ${!name:-} ]]; then
    echo "${!name}"
  elif [[ -f $env_file ]]; then
    sed -n "s/^$name=//p" "$env_file" | tail -n 1
  fi
}
# Writes NAME=value into the env file, replacing an earlier line of that name.
store() {
  touch "$env_file"
  chmod 600 "$env_file" # it holds the Redis password
  sed -i "/^$1=/d" "$env_file"
  echo "$1=$2" >>"$env_file"
}

# Settings compose needs, so that plain `docker-compose up` works after one run of this script.
password=$(setting STEVEDORE_REDIS_PASSWORD)
if [[ -z $password ]]; then
  # Hex, so the password goes into REDIS_URL without escaping.
  password=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
  store STEVEDORE_REDIS_PASSWORD "$password"
  say "generated STEVEDORE_REDIS_PASSWORD into $env_file"
fi
log_dir=$(setting STEVEDORE_LOG_DIR)
if [[ -z $log_dir ]]; then
  log_dir=$repo/.stevedore/logs
  store STEVEDORE_LOG_DIR "$log_dir"
fi
if [[ $log_dir != /* ]]; then
  say "STEVEDORE_LOG_DIR=$log_dir must be an absolute path: it is mounted at the same path in the worker"
  exit 1
fi
mkdir -p "$log_dir"
# The workers' policy, and the one host directory the stack's jobs may bind (read-write). Both are
# mounted into the workers at the same path: the policy check resolves a job's host paths there.
job_data=$(setting STEVEDORE_JOB_DATA)
if [[ -z $job_data ]]; then
  job_data=$repo/.stevedore/data
  store STEVEDORE_JOB_DATA "$job_data"
fi
policy=$(setting STEVEDORE_POLICY)
if [[ -z $policy ]]; then
  policy=$repo/.stevedore/policy.yml
  store STEVEDORE_POLICY "$policy"
fi
for path in "$job_data" "$policy"; do
  if [[ $path != /* ]]; then
    say "$path must be an absolute path: it is mounted at the same path in the workers"
    exit 1
  fi
done
mkdir -p "$job_data" "$(dirname "$policy")"
if [[ ! -e $policy ]]; then
  cat >"$policy" <<EOF
# The workers' policy (docs/policy.md), written by scripts/stack.sh; edit it and restart the
# workers. Jobs may bind host paths under STEVEDORE_JOB_DATA only; every other key is the safe
# default. A prefix added here must also be mounted into the workers (same path, read-only) in a
# docker-compose.override.yml, so that they can resolve it.
mounts:
  - hostPath: $job_data
    readWrite: true
EOF
  say "wrote the default policy to $policy (job mounts under $job_data)"
fi
# The socket's group differs per host; recomputed every run, as are the values derived below.
if [[ ! -S $socket ]]; then
  say "no Docker engine socket at $socket: start dockerd (sudo bash scripts/setup.sh demo) or set STEVEDORE_DOCKER_SOCKET"
  exit 1
fi
gid=$(stat -c %g "$socket")
[[ $(setting STEVEDORE_DOCKER_GID) == "$gid" ]] || store STEVEDORE_DOCKER_GID "$gid"
grace_ms=$(setting STEVEDORE_SHUTDOWN_GRACE_MS)
stop_grace="$(((${grace_ms:-30000} + 999) / 1000 + STOP_GRACE_MARGIN_S))s"
[[ $(setting STEVEDORE_STOP_GRACE) == "$stop_grace" ]] || store STEVEDORE_STOP_GRACE "$stop_grace"
export STEVEDORE_DOCKER_GID=$gid STEVEDORE_STOP_GRACE=$stop_grace

# The worker image: rebuilt from the host's build output; each step is skipped when its inputs
# are unchanged, and the engine's layer cache keeps the image when the files are the same.
build_image() {
  [[ -d node_modules ]] || npm ci --no-audit --no-fund
  bash scripts/seed-images.sh
  mkdir -p "$stage"
  local sources modules
  sources=$(cat tsconfig.json tsconfig.build.json package-lock.json <(find src -type f -print0 | sort -z | xargs -0 cat) |
    sha256sum | cut -c1-16)
  if [[ ! -f dist/cli/main.js || $(cat "$stage/dist.stamp" 2>/dev/null) != "$sources" ]]; then
    say "building dist/"
    npm run --silent build
    echo "$sources" >"$stage/dist.stamp"
  fi
  modules=$(sha256sum package-lock.json | cut -c1-16)
  if [[ ! -d $stage/node_modules || $(cat "$stage/modules.stamp" 2>/dev/null) != "$modules" ]]; then
    say "installing production dependencies into $stage"
    cp package.json package-lock.json "$stage/"
    npm ci --omit=dev --ignore-scripts --prefer-offline --no-audit --no-fund --prefix "$stage" >/dev/null
    echo "$modules" >"$stage/modules.stamp"
  fi
  local node_image log
  node_image=$(setting STEVEDORE_NODE_IMAGE)
  log=$(mktemp)
  # The legacy builder (no buildx on these machines) warns on stderr: shown only when it fails.
  if ! docker build -q --build-arg "NODE_IMAGE=${node_image:-node:20-bookworm-slim}" -t "$image" . >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    say "building $image failed (above)"
    exit 1
  fi
  rm -f "$log"
}

case $command in
  up | build | run | create) build_image ;;
esac
[[ $command == build ]] && exit 0 # built above, with the host's files; compose's own build would redo it

env_args=()
[[ $env_file != "$repo/.env" ]] && env_args=(--env-file "$env_file")
exec "${compose[@]}" "${env_args[@]}" "$@"
