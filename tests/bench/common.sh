# Shared by the launch benchmarks (sourced, not run): prepares a tool to be
# measured. The database is whatever COURSEGATE_DATABASE_URL names.
#
#   bench_env DIR PORT             exports the tool's settings for a run in DIR
#   bench_setup BIN DIR JWKS_ADDR  migrates, adds one course and the test
#                                  platform (its keys served at JWKS_ADDR)
#   bench_wait PORT                waits until /healthz answers (up to 30 s)

bench_env() {
  export COURSEGATE_SECRET="bench-secret-0123456789-0123456789-abcdef"
  export COURSEGATE_BIND="127.0.0.1:$2" COURSEGATE_KEYS_DIR="$1/jwks" COURSEGATE_DATA_DIR="$1/data"
  export COURSEGATE_LOG="${COURSEGATE_LOG:-warn}"
}

bench_setup() {
  local bin="$1" dir="$2" jwks="$3"
  "$bin/coursegate" migrate >/dev/null 2>&1
  printf '# One\n\nHello\n' > "$dir/one.md"
  "$bin/coursegate" course add --slug intro --title Intro --lesson "$dir/one.md" >/dev/null 2>&1
  "$bin/coursegate" platform add --issuer https://platform.test.example --client-id coursegate-test-client \
    --auth-url http://127.0.0.1:9/auth --token-url http://127.0.0.1:9/token \
    --jwks-url "http://$jwks/jwks" --deployment-id test-deployment-1 >/dev/null 2>&1
}

bench_wait() {
  for _ in $(seq 1 150); do
    curl -fs "http://127.0.0.1:$1/healthz" >/dev/null && return 0
    sleep 0.2
  done
  echo "the tool did not start on port $1" >&2
  return 1
}
