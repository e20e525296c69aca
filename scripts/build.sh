#!/usr/bin/env bash
# Bundles each program into dist/<program>.js with esbuild (scripts/bundle.js),
# so that Node starts it from a few files, without tsx's loader
# (docs/decisions/0021-program-bundles.md). The bin/ entry points use dist/
# only while none of a bundle's sources is newer than this build, and fall
# back to the .ts sources through tsx otherwise. Deno runs the .ts files.
#
# `build.sh [--prepare] [dir]`: dir (inside the checkout, so that the external
# packages resolve from node_modules/) defaults to dist. `--prepare` is npm's
# `prepare` (npm ci, npm install): it does nothing when npm runs it for
# `npx spike`, which installs this checkout into npm's npx cache as a link
# and runs its `prepare`: a first `npx spike` would otherwise rebuild the
# checkout it is about to run. npm also runs `prepare` for `npm pack` and
# `npm publish`, after `prepack` (scripts/build_package.sh), which has built
# everything already: building again would remove the SDK's build.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --prepare ]; then
  shift
  case "${npm_command:-}" in
    exec | pack | publish) exit 0 ;;
  esac
fi
out=${1:-dist}
rm -rf "$out.tmp"
node scripts/bundle.js "$out.tmp"
rm -rf "$out"
mv "$out.tmp" "$out"
