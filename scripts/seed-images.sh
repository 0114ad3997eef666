#!/usr/bin/env bash
# Makes the compose stack's base images locally from Debian's packages, for machines that reach no
# container registry: a Debian 12 base (debootstrap minbase → docker import), Node 20 on it, and
# Debian's redis-server on it. They are tagged with the names the Dockerfile and docker-compose.yml
# use by default, so nothing else changes. An image that is already there and was not made here
# (e.g. pulled from Docker Hub) is left alone; one made here from the same inputs is kept, so a
# second run takes well under a second. Needs root (debootstrap, chroot) and the Docker engine.
#
#   scripts/seed-images.sh [--check]   --check: exit 1 when an image would be made, change nothing
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

NODE_IMAGE=${STEVEDORE_NODE_IMAGE:-node:20-bookworm-slim}
REDIS_IMAGE=${STEVEDORE_REDIS_IMAGE:-redis:7-bookworm}
BASE_IMAGE=stevedore-seed/debian:bookworm-minbase
MIRROR=${STEVEDORE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
NODE_BIN=${STEVEDORE_SEED_NODE:-$(command -v node)}
INPUTS_LABEL=stevedore.seed-inputs # hash of what an image was made from; another hash means make it again
NODE_UID=1000                      # the official node images' `node` user, so the Dockerfile's USER works on both

check_only=false
[[ ${1:-} == --check ]] && check_only=true

# Whatever changes what the images hold: this script, the mirror, and the Node binary.
script_hash=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)
node_version=$("$NODE_BIN" --version)
node_hash=$(stat -L -c '%s-%Y' "$NODE_BIN") # size and mtime: hashing its 100 MB would cost a second per run
base_inputs="$script_hash $MIRROR"
node_inputs="$base_inputs $node_version $node_hash"
redis_inputs=$base_inputs

# "ours-current", "ours-stale", "foreign" (there, not made here) or "missing".
image_state() {
  local label
  if ! label=$(docker image inspect -f "{{index .Config.Labels \"$INPUTS_LABEL\"}}" "$1" 2>/dev/null); then
    echo missing
  elif [[ $label == "$2" ]]; then
    echo ours-current
  elif [[ -z $label || $label == '<no value>' ]]; then
    echo foreign
  else
    echo ours-stale
  fi
}
needs() {
  local state
  state=$(image_state "$1" "$2")
  [[ $state == missing || $state == ours-stale ]]
}

todo=()
needs "$NODE_IMAGE" "$node_inputs" && todo+=("$NODE_IMAGE")
needs "$REDIS_IMAGE" "$redis_inputs" && todo+=("$REDIS_IMAGE")
if ((${#todo[@]} == 0)); then
  exit 0
fi
if $check_only; then
  echo "seed: would make ${todo[*]}"
  exit 1
fi
if ((EUID != 0)); then
  echo "seed: ${todo[*]} missing; making them needs root (debootstrap): sudo bash scripts/seed-images.sh" >&2
  exit 1
fi
if ! command -v debootstrap >/dev/null; then
  echo "seed: installing debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
fi
case $node_version in
  v20.*) ;;
  *) echo "seed: $NODE_BIN is Node $node_version; the image needs Node 20 (set STEVEDORE_SEED_NODE)" >&2; exit 1 ;;
esac

work=$(mktemp -d /tmp/stevedore-seed.XXXXXX)
trap 'rm -rf "$work"' EXIT

# Files a container never reads: documentation, translations, package lists and caches.
trim() {
  rm -rf "$1"/usr/share/doc/* "$1"/usr/share/man/* "$1"/usr/share/info/* "$1"/usr/share/locale/* \
    "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/* "$1"/var/cache/debconf/*-old "$1"/var/log/*
}

# The Debian root, made once per run and kept as an image so the Node and Redis images share it.
if [[ $(image_state "$BASE_IMAGE" "$base_inputs") != ours-current ]]; then
  echo "seed: debootstrap bookworm (minbase) from $MIRROR"
  debootstrap --variant=minbase bookworm "$work/root" "$MIRROR" >"$work/debootstrap.log" 2>&1 ||
    { tail -n 20 "$work/debootstrap.log" >&2; echo "seed: debootstrap failed (log above)" >&2; exit 1; }
  trim "$work/root"
  tar -C "$work/root" -c . | docker import --change "LABEL $INPUTS_LABEL=\"$base_inputs\"" \
    --change 'CMD ["bash"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$work/root"
fi

# Plain `docker build` from the base, so no network is needed: Node is the host's own binary
# (it needs only glibc and libstdc++, both in minbase).
if needs "$NODE_IMAGE" "$node_inputs"; then
  echo "seed: $NODE_IMAGE (Node $node_version from $NODE_BIN)"
  mkdir -p "$work/node"
  cp "$NODE_BIN" "$work/node/node"
  cat >"$work/node/Dockerfile" <<EOF
FROM $BASE_IMAGE
COPY node /usr/local/bin/node
RUN groupadd -g $NODE_UID node && useradd -u $NODE_UID -g node -m -s /bin/bash node && node --version
LABEL $INPUTS_LABEL="$node_inputs"
CMD ["node"]
EOF
  # The legacy builder (no buildx here) prints a deprecation notice on stderr: keep it in the log.
  docker build -q -t "$NODE_IMAGE" "$work/node" >"$work/build.log" 2>&1 ||
    { cat "$work/build.log" >&2; echo "seed: building $NODE_IMAGE failed" >&2; exit 1; }
fi

# Debian's redis-server, installed into a copy of the base root with the host's network (a build
# step has none); policy-rc.d keeps its postinst from starting a server in the chroot.
if needs "$REDIS_IMAGE" "$redis_inputs"; then
  echo "seed: $REDIS_IMAGE (Debian's redis-server)"
  mkdir -p "$work/redis"
  docker create --name "stevedore-seed-$$" "$BASE_IMAGE" true >/dev/null
  docker export "stevedore-seed-$$" | tar -C "$work/redis" -x
  docker rm "stevedore-seed-$$" >/dev/null
  cp /etc/resolv.conf "$work/redis/etc/resolv.conf"
  printf '#!/bin/sh\nexit 101\n' >"$work/redis/usr/sbin/policy-rc.d"
  chmod +x "$work/redis/usr/sbin/policy-rc.d"
  {
    chroot "$work/redis" apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive chroot "$work/redis" apt-get install -y -qq --no-install-recommends redis-server
  } >"$work/apt.log" 2>&1 || { tail -n 20 "$work/apt.log" >&2; echo "seed: installing redis-server failed" >&2; exit 1; }
  rm -f "$work/redis/usr/sbin/policy-rc.d"
  : >"$work/redis/etc/resolv.conf"
  # /data as in the official image: the named volume copies its owner, so the redis user can write it.
  mkdir -p "$work/redis/data"
  chroot "$work/redis" chown redis:redis /data
  trim "$work/redis"
  tar -C "$work/redis" -c . | docker import --change "LABEL $INPUTS_LABEL=\"$redis_inputs\"" \
    --change 'USER redis' --change 'WORKDIR /data' --change 'EXPOSE 6379' \
    --change 'CMD ["redis-server", "--protected-mode", "no"]' - "$REDIS_IMAGE" >/dev/null
fi
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E "^($NODE_IMAGE|$REDIS_IMAGE) " |
  sed 's/^/seed: made /'
