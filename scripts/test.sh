#!/usr/bin/env bash
# Runs the test suite on one runtime: `scripts/test.sh node|deno [files...]`.
# Without files it runs every *.test.ts (unit tests beside the code, and test/).
set -euo pipefail
cd "$(dirname "$0")/.."
runtime="${1:-node}"
shift || true
if [ "$#" -gt 0 ]; then
  files=("$@")
else
  mapfile -t files < <(find agent bench keeper launcher nexus pilot sdk shared test -name '*.test.ts' 2>/dev/null | sort)
fi
case "$runtime" in
  node)
    exec node --import tsx --test --test-timeout=120000 "${files[@]}"
    ;;
  deno)
    # tsc (npm run typecheck) is the type checker of record; Deno's bundled
    # TypeScript differs on typed-array generics, so Deno only runs the files.
    bash scripts/tools.sh
    exec .tools/node_modules/.bin/deno test --quiet --no-check --allow-read --allow-write --allow-env \
      --allow-net --allow-sys --allow-run --allow-ffi "${files[@]}"
    ;;
  *)
    echo "usage: scripts/test.sh node|deno [files...]" >&2
    exit 2
    ;;
esac
