#!/usr/bin/env bash
# The one set-up for `npm run demo`, `npm test` and .ci/run on Debian 12 with Node 20: checks what
# they need, and as root installs what is missing (one `apt-get update`, only when something is)
# and starts the Docker engine when it does not answer; not as root, says in one line what to run.
# Safe to run again; with everything there it installs nothing and takes a fraction of a second.
#
#   scripts/setup.sh [demo|test] [--check]
#     demo     what the demo needs;  test (default): that and what the test suite needs
#     --check  only report what is missing (exit 1 if anything is), change nothing
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

group=test
check_only=false
for arg in "$@"; do
  case $arg in
    demo | test) group=$arg ;;
    --check) check_only=true ;;
    *) echo "usage: scripts/setup.sh [demo|test] [--check]" >&2; exit 2 ;;
  esac
done

# What is needed, one entry per line: "<group>|<check>|<how to get it>".
#   group  demo (needed by the demo and the tests) or test (by the tests only)
#   check  a command that succeeds when it is there
#   how    apt:<Debian package>, or run:<script, from the repo root> for what Debian does not package
REQUIREMENTS=(
  'demo|command -v dockerd|apt:docker.io'
  'demo|command -v redis-server|apt:redis-server' # Debian's depends on redis-tools: redis-cli (--cluster create, the Cluster test)
  'demo|has_package busybox-static|apt:busybox-static' # the test image is built from it
  'demo|command -v flock|apt:util-linux'                # the embedded Redis's state-dir lock
  'test|command -v ip|apt:iproute2'                     # the engine-restart test's private bridge
  'test|command -v docker-registry|apt:docker-registry' # a real registry (distribution 2.x) for pull tests
  'test|command -v htpasswd|apt:apache2-utils'          # the bcrypt htpasswd file of the auth registry
  'test|command -v docker-compose|apt:docker-compose'   # the compose stack's test (Debian's is 1.29)
  'test|command -v debootstrap|apt:debootstrap'         # scripts/seed-images.sh: base images without a registry
  'test|command -v openssl|apt:openssl'                 # CA, server and client certificates of the rediss:// tests
  'test|command -v chromium|apt:chromium'               # the dashboard's browser test (playwright-core drives it)
  'test|apptainer_found|run:scripts/install-apptainer.sh' # the singularity runtime's tests (Debian 12 has no package)
  'test|command -v script|apt:bsdutils'                 # an Apptainer exec's terminal (setpriv, nsenter: util-linux)
  'test|command -v podman|apt:podman'                   # the Podman runtime's tests (Debian's 4.3)
  'test|has_package catatonit|apt:catatonit'            # Podman's own init (/usr/libexec/podman/catatonit)
  'test|has_package tini|apt:tini'                      # tini-static, the init Podman jobs get (a missing command exits 127, as on Docker)
)

# Files it writes, one entry per line: "<group>|<check that it is right>|<function that writes it>|<its name>".
CONFIGS=(
  'test|podman_configured|write_podman_config|the Podman configuration'
)

# Services, one entry per line: "<group>|<check that it answers>|<function that starts it>|<its name>".
SERVICES=(
  'demo|engine_answers|start_dockerd|the Docker engine'
)

DOCKER_WAIT_SECONDS=90 # a first dockerd start on a fresh machine sets up its storage and iptables
DOCKERD_LOG=/var/log/stevedore-dockerd.log
docker_socket=${DOCKER_HOST:-unix:///var/run/docker.sock}
docker_socket=${docker_socket#unix://}

apptainer_found() { command -v apptainer || command -v singularity || [[ -x /opt/apptainer/bin/apptainer ]]; }
PODMAN_CONF=/etc/containers/containers.conf
PODMAN_CONF_MARK="# Written by Stevedore's scripts/setup.sh"
# Podman 4.3 on these machines: crun fails under cgroup hybrid mode, and podman's default
# ulimits (nofile 1048576) exceed the machine's hard limits, so every container would fail.
podman_conf() {
  printf '%s\n' "$PODMAN_CONF_MARK (rewritten when it changes; remove this line to keep your own)" \
    '[containers]' 'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]' '' '[engine]' 'runtime = "runc"'
}
# Right when it is ours and current, or someone else's (then it is left alone).
podman_configured() {
  [[ -f $PODMAN_CONF ]] || return 1
  local first
  IFS= read -r first <"$PODMAN_CONF" || true
  [[ $first == "$PODMAN_CONF_MARK"* ]] || return 0
  [[ "$(<"$PODMAN_CONF")" == "$(podman_conf)" ]]
}
write_podman_config() {
  mkdir -p "${PODMAN_CONF%/*}"
  podman_conf >"$PODMAN_CONF.tmp" && mv "$PODMAN_CONF.tmp" "$PODMAN_CONF"
}

has_package() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
engine_answers() { command -v docker >/dev/null && timeout 10 docker info >/dev/null 2>&1; }

start_dockerd() {
  if [[ -d /run/systemd/system ]]; then
    systemctl start docker
  else
    # Its own session, so a Ctrl-C of the tests does not stop the engine with them; and none of
    # the caller's open files (a lock a `flock` around the tests holds would be held for good).
    (
      for fd in /proc/self/fd/*; do
        n=${fd##*/}
        if ((n > 2)); then eval "exec $n>&-" 2>/dev/null || true; fi
      done
      exec setsid dockerd </dev/null >"$DOCKERD_LOG" 2>&1
    ) &
  fi
  for ((i = 0; i < DOCKER_WAIT_SECONDS; i++)); do
    engine_answers && return 0
    sleep 1
  done
  echo "setup: dockerd did not answer within ${DOCKER_WAIT_SECONDS}s; the end of $DOCKERD_LOG:" >&2
  tail -n 30 "$DOCKERD_LOG" >&2 || true
  return 1
}

in_group() { [[ $1 == demo || $group == test ]]; }

missing_packages=()
missing_scripts=()
for entry in "${REQUIREMENTS[@]}"; do
  IFS='|' read -r needed_by check how <<<"$entry"
  in_group "$needed_by" || continue
  eval "$check" >/dev/null 2>&1 && continue
  case $how in
    apt:*) missing_packages+=("${how#apt:}") ;;
    run:*) missing_scripts+=("${how#run:}") ;;
  esac
done
stopped_services=()
stopped_names=()
no_access=false # a running engine this user may not use: no set-up fixes that, only its group or root
for entry in "${SERVICES[@]}"; do
  IFS='|' read -r needed_by check start name <<<"$entry"
  in_group "$needed_by" || continue
  eval "$check" && continue
  if [[ $start == start_dockerd && -S $docker_socket && ! -w $docker_socket ]] && ((EUID != 0)); then
    no_access=true
  else
    stopped_services+=("$start")
    stopped_names+=("$name")
  fi
done

unwritten_configs=()
unwritten_names=()
for entry in "${CONFIGS[@]}"; do
  IFS='|' read -r needed_by check write name <<<"$entry"
  in_group "$needed_by" || continue
  eval "$check" && continue
  unwritten_configs+=("$write")
  unwritten_names+=("$name")
done

missing=("${missing_packages[@]}" "${missing_scripts[@]}")
if { ((${#missing[@]} + ${#stopped_services[@]} + ${#unwritten_configs[@]} > 0)) && { $check_only || ((EUID != 0)); }; } || $no_access; then
  what=()
  ((${#missing[@]} > 0)) && what+=("missing ${missing[*]}")
  for name in "${stopped_names[@]}"; do what+=("$name is not running"); done
  for name in "${unwritten_names[@]}"; do what+=("$name is not written"); done
  if ((${#what[@]} > 0)) && ! $check_only; then
    what[-1]+=": run once as root: sudo bash scripts/setup.sh $group"
  fi
  $no_access && what+=("the Docker engine at $docker_socket does not let this user in: join the docker group (sudo usermod -aG docker \$USER, then log in again) or run as root")
  line="setup: ${what[0]}"
  for part in "${what[@]:1}"; do line+="; $part"; done
  if $check_only; then echo "$line"; else echo "$line" >&2; fi
  exit 1
fi
$check_only && exit 0

if ((${#missing_packages[@]} > 0)); then
  echo "setup: installing ${missing_packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing_packages[@]}" >/dev/null
fi
for script in "${missing_scripts[@]}"; do
  echo "setup: running $script"
  bash "$script"
done
for i in "${!unwritten_configs[@]}"; do
  echo "setup: writing ${unwritten_names[i]}"
  "${unwritten_configs[i]}"
done
for i in "${!stopped_services[@]}"; do
  echo "setup: starting ${stopped_names[i]}"
  "${stopped_services[i]}"
done

[[ -d node_modules ]] || npm ci --no-audit --no-fund
