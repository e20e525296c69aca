#!/usr/bin/env bash
# Builds the container image (Containerfile) and prints its name on stdout
# (everything else goes to stderr):
#   scripts/image.sh [--tarball spike-ts-X.tgz] [--base IMAGE] [--tag NAME]
# The npm package (`npm pack` of this checkout unless --tarball names one) is
# installed with npm on the host into the build context, with its production
# dependencies, as it would be on a server (`npm install --global --prefix
# /opt/spike`); the Containerfile only copies it in. The native packages
# (libsql) are the host's: build on the architecture and C library (glibc) of
# the image. --base defaults to the Containerfile's (the official slim Node
# image); CI passes the one of scripts/base_image.sh. Runs podman as it is
# configured (CONTAINERS_CONF).
set -euo pipefail
cd "$(dirname "$0")/.."

tarball=""
base=""
tag="localhost/spike-ts:$(node -p 'require("./package.json").version')"
while [ "$#" -gt 0 ]; do
  case "$1" in
    --tarball) tarball=$2; shift 2 ;;
    --base) base=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    *) echo "usage: scripts/image.sh [--tarball FILE] [--base IMAGE] [--tag NAME]" >&2; exit 2 ;;
  esac
done

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
if [ -z "$tarball" ]; then
  npm pack --silent --pack-destination "$context" >&2
  tarball=$(ls "$context"/*.tgz)
fi
tarball=$(realpath "$tarball")
npm install --global --prefix "$context/opt/spike" --omit=dev --no-audit --no-fund \
  --loglevel=error "$tarball" >&2
rm -f "$context"/*.tgz
mkdir -p "$context/var/lib/spike" "$context/run/spike"
podman build --quiet ${base:+--build-arg "BASE=$base"} --tag "$tag" \
  --file "$PWD/Containerfile" "$context" >&2
echo "$tag"
