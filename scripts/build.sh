#!/usr/bin/env bash
# Compiles the programs to plain JavaScript in dist/ (tsc, same options as the
# type check), so Node starts them without tsx's loader: it roughly halves the
# start-up of every program and of `spike` (docs/performance.md). The bin/
# entry points use dist/ only while no source is newer than this build, and
# fall back to the .ts sources through tsx otherwise. Deno runs the .ts files.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf dist.tmp
npx tsc -p tsconfig.build.json --outDir dist.tmp
# Files the code finds next to itself at run time.
cp shared/spiffe/workload.proto dist.tmp/shared/spiffe/
cp -r nexus/store/sqlite/migrations dist.tmp/nexus/store/sqlite/
cp -r nexus/store/postgres/migrations dist.tmp/nexus/store/postgres/
node bin/_start.js --stamp dist.tmp
rm -rf dist
mv dist.tmp dist
