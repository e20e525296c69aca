#!/usr/bin/env bash
# Makes a local PostgreSQL ready for the PostgreSQL test suites and prints its
# URL on stdout (everything else goes to stderr). Idempotent; run as root:
#   export SPIKE_TEST_DATABASE_URL=$(bash scripts/postgres.sh)
# Installs PostgreSQL from Debian's packages when it is missing, starts the
# first cluster, waits until it accepts connections, and creates the role and
# database "spike" (password "spike", a throw-away test credential; the role
# may create databases, as the tests make one per test file).
set -euo pipefail

host=127.0.0.1
port=5432
role=spike
database=spike
password=spike

log() { printf 'postgres.sh: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  log "must run as root (installs packages, starts the cluster as the postgres user)"
  exit 1
fi

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  log "installing PostgreSQL from the distribution's packages"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi

version=$(pg_lsclusters -h | awk 'NR==1{print $1}')
cluster=$(pg_lsclusters -h | awk 'NR==1{print $2}')
if [ -z "$version" ]; then
  log "no PostgreSQL cluster exists; creating one"
  version=$(ls /usr/lib/postgresql | sort -V | tail -1)
  cluster=main
  pg_createcluster "$version" "$cluster" >&2
fi
if ! pg_lsclusters -h | awk -v v="$version" -v c="$cluster" '$1==v && $2==c {print $4}' | grep -q online; then
  log "starting cluster $version/$cluster"
  pg_ctlcluster "$version" "$cluster" start >&2
fi
pg_isready -h "$host" -p "$port" -t 30 >&2

psql_admin() { su postgres -c "psql -v ON_ERROR_STOP=1 -p $port -tAc \"$1\""; }

if ! psql_admin "SELECT 1 FROM pg_roles WHERE rolname='$role'" | grep -q 1; then
  log "creating role $role"
  psql_admin "CREATE ROLE $role LOGIN PASSWORD '$password'" >&2
fi
# The test suites create a throw-away database per test file.
if ! psql_admin "SELECT 1 FROM pg_roles WHERE rolname='$role' AND rolcreatedb" | grep -q 1; then
  log "letting role $role create databases"
  psql_admin "ALTER ROLE $role CREATEDB" >&2
fi
if ! psql_admin "SELECT 1 FROM pg_database WHERE datname='$database'" | grep -q 1; then
  log "creating database $database"
  psql_admin "CREATE DATABASE $database OWNER $role" >&2
fi

echo "postgres://$role:$password@$host:$port/$database"
