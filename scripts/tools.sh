#!/usr/bin/env bash
# Installs the tools that must stay out of package.json (their platform
# packages break `npm ci` on this registry): Deno and Biome, into .tools/.
set -euo pipefail
cd "$(dirname "$0")/.."
DENO_VERSION=2.9.6
BIOME_VERSION=2.6.8
# Read the versions into variables first: `tool --version | grep -q` can kill
# the tool with SIGPIPE, which pipefail would report as a mismatch.
have_deno=$(.tools/node_modules/.bin/deno --version 2>/dev/null || true)
have_biome=$(.tools/node_modules/.bin/biome --version 2>/dev/null || true)
if [[ "$have_deno" == *"deno $DENO_VERSION "* && "$have_biome" == *"$BIOME_VERSION"* ]]; then
  exit 0
fi
npm install --prefix .tools --no-save --no-audit --no-fund --loglevel=error \
  "deno@$DENO_VERSION" "@biomejs/biome@$BIOME_VERSION" >&2
