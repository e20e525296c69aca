#!/usr/bin/env bash
# What `npm pack` and `npm publish` ship (package.json's `prepack`): the
# program bundles (scripts/build.sh) and the SDK on its own, compiled to
# JavaScript with its type declarations, so that an installed package needs
# neither tsx nor a .ts file (docs/decisions/0030-packaging.md):
#   dist/sdk/index.js      the SDK, one ES module for Node 20; packages stay
#                          imports (they are the package's dependencies)
#   dist/sdk/types/...     tsc's declarations (tsconfig.sdk.json), the
#                          `types` of the `./sdk` export
# The SDK bundle holds only what sdk/index.ts reaches at run time: no server
# code, which test/integration/package.test.ts checks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
node_modules/.bin/esbuild sdk/index.ts --bundle --platform=node --format=esm --target=node20 \
  --packages=external --legal-comments=none --log-level=warning --outfile=dist/sdk/index.js
node_modules/.bin/tsc -p tsconfig.sdk.json
