#!/usr/bin/env bash
# Makes podman usable for the image test and prints the containers.conf to
# use on stdout (everything else goes to stderr). Idempotent; run as root:
#   export CONTAINERS_CONF=$(bash scripts/podman.sh)
# Installs podman and runc from Debian's packages when they are missing
# (no image registry is needed: scripts/base_image.sh builds the base image).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'podman.sh: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  log "must run as root (installs packages; the image test runs rootful podman)"
  exit 1
fi
if ! command -v podman >/dev/null 2>&1 || ! command -v runc >/dev/null 2>&1; then
  log "installing podman and runc from the distribution's packages"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman runc >&2
fi
conf="$PWD/scripts/containers.conf"
CONTAINERS_CONF="$conf" podman info --format '{{.Host.OCIRuntime.Name}} {{.Store.GraphDriverName}}' >&2
echo "$conf"
