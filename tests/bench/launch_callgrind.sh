#!/usr/bin/env bash
# Instructions per full LTI launch (docs/benchmarks.md): the server under
# callgrind on a fresh SQLite file, 300 warm-up launches at c=4, counters
# zeroed, LAUNCHES (400) launches at c=4, counters dumped. Repeated runs of
# one binary spread by about ±1 % (the writer's batches depend on timing).
#
#   tests/bench/launch_callgrind.sh DIR      # DIR holds release coursegate + launchload
#   KEEP=/tmp/cg.out tests/bench/launch_callgrind.sh DIR   # keep the dump for callgrind_annotate
set -euo pipefail
bin="${1:?usage: launch_callgrind.sh DIR}"
LAUNCHES="${LAUNCHES:-400}"; PORT="${PORT:-18095}"; JWKS="127.0.0.1:${JWKS_PORT:-18096}"
dir="$(mktemp -d)"; sp=""; jp=""
cleanup() {
  [ -n "$sp" ] && kill "$sp" 2>/dev/null || true
  [ -n "$jp" ] && kill "$jp" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
"$bin/launchload" --serve-jwks-only --jwks-bind "$JWKS" & jp=$!
. "$(dirname "$0")/common.sh"
bench_env "$dir" "$PORT"
export COURSEGATE_DATABASE_URL="sqlite://$dir/bench.db"
bench_setup "$bin" "$dir" "$JWKS"
valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" "$bin/coursegate" serve >/dev/null 2>&1 & sp=$!
bench_wait "$PORT"
lc=(--base "http://127.0.0.1:$PORT" --jwks-bind 127.0.0.1:0)
"$bin/launchload" "${lc[@]}" --label warm --concurrency 4 --launches 300 --warmup 10 >/dev/null
callgrind_control -z "$sp" >/dev/null
"$bin/launchload" "${lc[@]}" --label callgrind --concurrency 4 --launches "$LAUNCHES" --warmup 0
callgrind_control -d "$sp" >/dev/null
sleep 1
total=$(awk '/^summary:/{print $2; exit}' "$dir/cg.out.1")
echo "instructions per launch: $((total / LAUNCHES)) ($(basename "$bin"))"
[ -n "${KEEP:-}" ] && cp "$dir/cg.out.1" "$KEEP"
exit 0
