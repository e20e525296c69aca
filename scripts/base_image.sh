#!/usr/bin/env bash
# Builds a base image for the Containerfile without any image registry, from
# Debian's packages and this machine's Node, and prints its name on stdout
# (everything else goes to stderr). CI uses it because no registry is
# reachable there; elsewhere, the Containerfile's default base (the official
# slim Node image) is the one to use. Run as root, with CONTAINERS_CONF set
# as scripts/podman.sh prints it:
#   base=$(bash scripts/base_image.sh)
#   podman build --build-arg BASE="$base" …
# The image holds the C and C++ runtime libraries Node and libsql's native
# module link against, coreutils (for `/usr/bin/env node`, and `env -S` for
# spike-nexus's flag, in the bin entries' first line) and Node itself: no
# shell, no package manager.
# An image of the same name (Node's version and this script's hash) is reused.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'base_image.sh: %s\n' "$*" >&2; }

node_bin=$(command -v node)
version=$("$node_bin" --version)
hash=$(sha256sum scripts/base_image.sh | cut -c1-12)
name="localhost/spike-node-base:${version#v}-$hash"
if podman image exists "$name"; then
  echo "$name"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/root"
mkdir -p "$root"
# apt drops its privileges to the _apt user for downloads: give it the folder.
chown _apt "$work" 2>/dev/null || true
log "downloading Debian's packages"
(cd "$work" && apt-get download -qq libc6 libgcc-s1 libstdc++6 coreutils >&2)
for deb in "$work"/*.deb; do
  dpkg-deb -x "$deb" "$root"
done
# What no program of the image reads: documentation and locale data.
rm -rf "$root/usr/share/doc" "$root/usr/share/man" "$root/usr/share/locale" "$root/usr/share/info"
install -D -m 0755 "$node_bin" "$root/usr/local/bin/node"
mkdir -p -m 1777 "$root/tmp"
mkdir -p "$root/etc"
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nspike:x:10001:10001:SPIKE:/var/lib/spike:/usr/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nspike:x:10001:\n' >"$root/etc/group"
log "importing $name"
tar -C "$root" --numeric-owner -c . |
  podman import --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' - "$name" >&2
echo "$name"
