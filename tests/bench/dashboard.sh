#!/usr/bin/env bash
# The learner hot path benchmark (docs/benchmarks.md): session lookup +
# dashboard render against a release build of `coursegate serve`, on SQLite
# and (when PG_URL is set) PostgreSQL, with `pageload` sharing the machine.
#
#   PG_URL=postgres://postgres@127.0.0.1:5432/postgres DURATION=15 tests/bench/dashboard.sh
#
# Settings: CONCURRENCY (16), DURATION (10 s), WARMUP (3 s), PAGE (/),
# COURSEGATE_LOG (the server's log filter; default: the server's own),
# PORT (18080). The server's request log goes to /dev/null.
set -euo pipefail
cd "$(dirname "$0")/../.."

: "${CARGO_TARGET_DIR:=$HOME/.cache/coursegate-target}"
export CARGO_TARGET_DIR
CONCURRENCY="${CONCURRENCY:-16}"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-3}"
PAGE="${PAGE:-/}"
PORT="${PORT:-18080}"

cargo build --release -q -p coursegate-server --bin coursegate
cargo build --release -q -p coursegate-testkit --bin pageload
BIN="$CARGO_TARGET_DIR/release"

work="$(mktemp -d)"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
head -c 48 /dev/urandom | base64 -w0 > "$work/secret"

echo "machine: $(nproc) cores · $(lscpu | sed -n 's/^Model name: *//p') · $(free -g | awk '/Mem:/{print $2}') GiB · $(date -u +%Y-%m-%dT%H:%MZ)"

bench() { # NAME DATABASE_URL
  local name="$1" db="$2"
  COURSEGATE_DATABASE_URL="$db" \
  COURSEGATE_SECRET_FILE="$work/secret" \
  COURSEGATE_BIND="127.0.0.1:$PORT" \
  COURSEGATE_DATA_DIR="$work/data" \
  COURSEGATE_KEYS_DIR="$work/jwks" \
    "$BIN/coursegate" serve >/dev/null 2>"$work/server-$name.err" &
  server_pid=$!
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  sleep 1
  echo
  echo "== $name · idle server: $(grep -E '^(VmRSS|VmHWM)' /proc/$server_pid/status | tr -s ' \t' ' ' | paste -sd' ')"
  "$BIN/pageload" --url "http://127.0.0.1:$PORT" --path "$PAGE" --database-url "$db" \
    --secret-file "$work/secret" -c "$CONCURRENCY" -d "$DURATION" --warmup "$WARMUP" --pid "$server_pid"
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

bench sqlite "sqlite://$work/bench.db"
if [ -n "${PG_URL:-}" ]; then
  db="cg_bench_$$"
  psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
  bench postgres "${PG_URL%/*}/$db"
  psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $db"
fi
