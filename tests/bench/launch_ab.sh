#!/usr/bin/env bash
# Interleaved A/B of the full LTI launch (docs/benchmarks.md): two builds of
# `coursegate` (+ `launchload`), each run ROUNDS times in turn, A B A B …,
# on a fresh database per run. On a shared VM a run's speed drifts by ±10 %
# over minutes, so only runs made side by side compare.
#
#   tests/bench/launch_ab.sh DIR_A DIR_B            # DIR_*: holds coursegate and launchload
#   DB=postgres ROUNDS=3 LAUNCHES=3000 tests/bench/launch_ab.sh /tmp/a /tmp/b
#   PRIOR=4300 tests/bench/launch_ab.sh /tmp/a /tmp/b   # 4,300 launches at c=1 first (a grown database)
#
# Prints one line per run: label, launches/s, p50, p99, the tool's CPU per
# launch and the generator's CPU (user+system seconds for the measured run).
set -euo pipefail
A="${1:?usage: launch_ab.sh DIR_A DIR_B}"; B="${2:?usage: launch_ab.sh DIR_A DIR_B}"
DB="${DB:-sqlite}"; ROUNDS="${ROUNDS:-2}"; LAUNCHES="${LAUNCHES:-4000}"; C="${CONCURRENCY:-16}"
PRIOR="${PRIOR:-0}"
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PORT="${PORT:-18090}"; JWKS="127.0.0.1:${JWKS_PORT:-18091}"
. "$(dirname "$0")/common.sh"

one() {
  local bin="$1" label="$2" dir sp jp
  dir="$(mktemp -d)"
  "$bin/launchload" --serve-jwks-only --jwks-bind "$JWKS" & jp=$!
  bench_env "$dir" "$PORT"
  if [ "$DB" = sqlite ]; then
    export COURSEGATE_DATABASE_URL="sqlite://$dir/bench.db"
  else
    psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS cg_ab" -c "CREATE DATABASE cg_ab" 2>/dev/null
    export COURSEGATE_DATABASE_URL="${PG_URL%/*}/cg_ab"
  fi
  bench_setup "$bin" "$dir" "$JWKS"
  "$bin/coursegate" serve >/dev/null 2>&1 & sp=$!
  bench_wait "$PORT"
  local lc=(--base "http://127.0.0.1:$PORT" --jwks-bind 127.0.0.1:0 --pid "$sp")
  if [ "$PRIOR" -gt 0 ]; then
    "$bin/launchload" "${lc[@]}" --label prior --concurrency 1 --launches "$PRIOR" --warmup 100 >/dev/null
  else
    "$bin/launchload" "${lc[@]}" --label warm --concurrency "$C" --launches 500 --warmup 100 >/dev/null
  fi
  local out timer=()
  [ -x /usr/bin/time ] && timer=(/usr/bin/time -f "gen_cpu=%U+%S s")
  out="$( { "${timer[@]}" "$bin/launchload" "${lc[@]}" --label "$label-$DB" \
    --concurrency "$C" --launches "$LAUNCHES" --warmup 200; } 2>&1 )"
  echo "$out" | tr '\n' ' '; echo
  kill "$sp" "$jp"; wait "$sp" 2>/dev/null || true; wait "$jp" 2>/dev/null || true
  [ "$DB" = sqlite ] || psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS cg_ab" 2>/dev/null
  rm -rf "$dir"
}

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u '+%Y-%m-%d %H:%M UTC')"
for _ in $(seq 1 "$ROUNDS"); do
  one "$A" A
  one "$B" B
done
