#!/usr/bin/env bash
# Full LTI launch benchmark (docs/benchmarks.md, "Full LTI launch").
# Builds release binaries, then for SQLite and PostgreSQL: a fresh database,
# `coursegate serve` with the test platform registered, and `launchload` at
# concurrency 1 and 16 (login + RS256 id_token per launch), reporting
# launches/s, p50/p99 and the tool's CPU per launch.
#
#   tests/bench/full_launch.sh                 # both databases
#   DBS=sqlite tests/bench/full_launch.sh      # one
#   PG_URL=postgres://postgres@127.0.0.1:5432/postgres LAUNCHES=5000 tests/bench/full_launch.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/bench/common.sh

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/coursegate-target}"
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
DBS="${DBS:-sqlite postgres}"
LAUNCHES="${LAUNCHES:-4000}"
WARMUP="${WARMUP:-400}"
PORT="${PORT:-18080}"
JWKS="127.0.0.1:${JWKS_PORT:-18081}"

cargo build --release -q -p coursegate-server --bin coursegate -p coursegate-testkit --bin launchload
BIN="$CARGO_TARGET_DIR/release"

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB RAM; $(date -u +%Y-%m-%d)"

"$BIN/launchload" --serve-jwks-only --jwks-bind "$JWKS" & JWKS_PID=$!
SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  kill "$JWKS_PID" 2>/dev/null || true
}
trap cleanup EXIT

for db in $DBS; do
  dir="$(mktemp -d)"
  bench_env "$dir" "$PORT"
  if [ "$db" = sqlite ]; then
    export COURSEGATE_DATABASE_URL="sqlite://$dir/bench.db"
  else
    name="cg_bench_$$"
    psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS $name" -c "CREATE DATABASE $name"
    export COURSEGATE_DATABASE_URL="${PG_URL%/*}/$name"
  fi
  bench_setup "$BIN" "$dir" "$JWKS"
  "$BIN/coursegate" serve & SERVER_PID=$!
  bench_wait "$PORT"
  for c in 1 16; do
    "$BIN/launchload" --base "http://127.0.0.1:$PORT" --jwks-bind "127.0.0.1:0" --label "$db" \
      --concurrency "$c" --launches "$LAUNCHES" --warmup "$WARMUP" --pid "$SERVER_PID"
  done
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
  if [ "$db" != sqlite ]; then psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS $name"; fi
  rm -rf "$dir"
done
