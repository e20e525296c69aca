#!/usr/bin/env bash
# The whole test suite from a fresh checkout: install, type-check, lint,
# the Node suite, then the same suite under Deno. This is the README's test
# command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
step() { printf '\n==> %s (%ss)\n' "$1" "$(( $(date +%s) - started ))"; }

step "npm ci"
npm ci --no-audit --no-fund --loglevel=error
step "tools (Deno, Biome)"
bash scripts/tools.sh
step "type-check"
npm run --silent typecheck
step "lint and format check"
npm run --silent lint
step "PostgreSQL"
# The PostgreSQL suites run against a real server: CI (root) installs and
# starts one; elsewhere an exported SPIKE_TEST_DATABASE_URL is used as is,
# and without either the suites are skipped with a notice.
if [ -z "${SPIKE_TEST_DATABASE_URL:-}" ]; then
  if [ "$(id -u)" -eq 0 ]; then
    SPIKE_TEST_DATABASE_URL=$(bash scripts/postgres.sh)
    export SPIKE_TEST_DATABASE_URL
  else
    echo "not root and SPIKE_TEST_DATABASE_URL unset: the PostgreSQL tests will be skipped"
  fi
fi
step "podman and systemd-analyze"
# The container image test (test/integration/package.test.ts) and the
# systemd units' check (test/deploy.test.ts) need them: CI (root) installs
# them and makes their tests fail rather than skip when they cannot run.
if [ "$(id -u)" -eq 0 ]; then
  CONTAINERS_CONF=$(bash scripts/podman.sh)
  export CONTAINERS_CONF
  export SPIKE_TEST_REQUIRE_PODMAN=1
  if ! command -v systemd-analyze >/dev/null 2>&1; then
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >&2
  fi
  export SPIKE_TEST_REQUIRE_SYSTEMD_ANALYZE=1
else
  echo "not root: the container image and systemd unit tests run only where their tools are"
fi
log_dir=$(mktemp -d)
trap 'rm -rf "$log_dir"' EXIT
step "tests on Node"
bash scripts/test.sh node 2>&1 | tee "$log_dir/node.log"
step "tests on Deno"
NO_COLOR=1 bash scripts/test.sh deno 2>&1 | tee "$log_dir/deno.log"
step "benchmark smoke run (tiny sizes: it proves the benchmark runs, not the figures)"
npm run --silent bench -- --quick --out "$log_dir/bench" \
  ${SPIKE_TEST_DATABASE_URL:+--database-url "$SPIKE_TEST_DATABASE_URL"}
step "done"
# One closing line for both runtimes. Deno counts top-level tests and their
# steps separately; the steps are the equivalent of Node's subtests.
node_pass=$(awk '/^# pass /{print $3}' "$log_dir/node.log" | tail -1)
node_fail=$(awk '/^# fail /{print $3}' "$log_dir/node.log" | tail -1)
deno_summary=$(grep -E '^(ok|FAILED) \|' "$log_dir/deno.log" | tail -1)
deno_pass=$(sed -n 's/.*passed (\([0-9]*\) steps\?).*/\1/p' <<<"$deno_summary")
deno_fail=$(sed -n 's/.*failed (\([0-9]*\) steps\?).*/\1/p' <<<"$deno_summary")
echo "node: ${node_pass:-0} passed, ${node_fail:-0} failed"
echo "deno: ${deno_pass:-0} passed, ${deno_fail:-0} failed"
echo "total: $(( ${node_pass:-0} + ${deno_pass:-0} )) passed, $(( ${node_fail:-0} + ${deno_fail:-0} )) failed"
