#!/usr/bin/env bash
# benches/redis_limits.sh - verify throughput with rate limits counted in process (the
# default) beside `--rate-limit-store redis://…` (docs/spec.md §12), back to back.
#
#   TESSERA_BIN=/tmp/tessera-release benches/redis_limits.sh
#   DURATION=10 WARMUP=2 ROUNDS=2 CONNS=32 THREADS=2 benches/redis_limits.sh
#
# One SQLite database provisioned with the CLI (an organization, a resource server, 16 API
# keys limited to 1,000,000/min so no run measures RATE_LIMITED answers); a redis-server of
# its own on a free port (no persistence). Each round runs `tessera serve` once without and
# once with the Redis store, each time a warm-up then wrk with benches/verify.lua for
# DURATION seconds. Prints one line per run: store, round, req/s, p50, p99 (ms), non-2xx.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
DURATION=${DURATION:-10} WARMUP=${WARMUP:-2} ROUNDS=${ROUNDS:-2} CONNS=${CONNS:-32} THREADS=${THREADS:-2}
for c in curl jq python3 wrk redis-server; do
  command -v "$c" >/dev/null || { echo "redis_limits.sh: $c is required" >&2; exit 2; }
done
if [[ -z ${TESSERA_BIN:-} ]]; then
  (cd "$REPO" && cargo build --release --bin tessera)
  TESSERA_BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/tessera
fi
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

RPORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" >"$WORK/redis.log" 2>&1 &
PIDS+=($!)

T=("$TESSERA_BIN" --database-url "sqlite://$WORK/tessera.db" --keys-dir "$WORK/keys")
mkdir -p "$WORK/keys"
"${T[@]}" migrate >/dev/null 2>&1
ORG=$("${T[@]}" org create --name bench --plan pro 2>/dev/null | jq -er .org_id)
out=$("${T[@]}" client create --name bench-rs --org "$ORG" --resource-server 2>/dev/null)
RS_AUTH="Basic $(printf '%s:%s' "$(jq -er .client_id <<<"$out")" "$(jq -er .client_secret <<<"$out")" | base64 -w0)"
VERIFY_KEYS=""
for _ in $(seq 16); do
  VERIFY_KEYS+="$("${T[@]}" api-key create --org "$ORG" --name v --scope inference:read --rate-limit-per-minute 1000000 2>/dev/null | jq -er .key) "
done
export VERIFY_KEYS BENCH_AUTH=$RS_AUTH

echo "# $(date -u +%FT%TZ) $("$TESSERA_BIN" --version) redis $(redis-server --version | awk '{print $3}')  $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# wrk -t$THREADS -c$CONNS -d${DURATION}s, warm-up ${WARMUP}s, 16 keys"
printf '%-8s %5s %10s %8s %8s %7s\n' store round req/s p50_ms p99_ms non2xx
for round in $(seq "$ROUNDS"); do
  for store in local redis; do
    PORT=$(free_port); URL=http://127.0.0.1:$PORT
    FLAGS=(serve --bind "127.0.0.1:$PORT" --issuer "$URL")
    [[ $store == redis ]] && FLAGS+=(--rate-limit-store "redis://127.0.0.1:$RPORT")
    "${T[@]}" "${FLAGS[@]}" >"$WORK/serve-$store-$round.log" 2>&1 &
    PID=$!; PIDS+=("$PID")
    for _ in $(seq 300); do curl -fsS -o /dev/null "$URL/readyz" 2>/dev/null && break; sleep 0.1; done
    probe=$(curl -s -X POST -H "Authorization: $RS_AUTH" -H 'Content-Type: application/json' \
      --data-raw "{\"key\":\"${VERIFY_KEYS%% *}\"}" "$URL/api/v1/keys/verify")
    [[ $(jq -r .code <<<"$probe") == VALID ]] || { echo "probe failed: $probe" >&2; exit 1; }
    wrk -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" -s "$HERE/verify.lua" "$URL/api/v1/keys/verify" >/dev/null
    res=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --timeout 10s -s "$HERE/verify.lua" \
      "$URL/api/v1/keys/verify" | awk '/^RESULT/{print $3, $4, $5, $7}')
    read -r rps p50 p99 non2xx <<<"$res"
    printf '%-8s %5s %10.0f %8.2f %8.2f %7s\n' "$store" "$round" "$rps" "$p50" "$p99" "$non2xx"
    kill "$PID"; wait "$PID" 2>/dev/null || true
  done
done
