#!/usr/bin/env bash
# benches/instructions.sh - CPU instructions per request of tessera's cached paths, counted by
# valgrind's callgrind: repeatable on a busy machine, unlike requests per second.
#
#   benches/instructions.sh                              # target/release/tessera, N=2000
#   N=500 TESSERA_BIN=/path/to/old/tessera benches/instructions.sh
#
# What it does
#   1. provisions a fresh SQLite database like benches/run.sh (an org, a client_credentials
#      client, a resource-server client, an API key) with the binary itself, and gets one JWT;
#   2. starts `tessera serve --workers 1` under `valgrind --tool=callgrind`, waits for /readyz
#      and warms each workload up (caches filled, connections pooled);
#   3. for each workload (w1: client_credentials issuance, w2: JWT introspection, w3: API-key
#      introspection, verify: POST /api/v1/keys/verify, gateway: GET /gateway/check with the key), zeroes the counters, sends N requests over one keep-alive
#      connection (benches/requests.py), dumps the counters; then leaves the server idle for as
#      long as the workload took and dumps again, so that background loops (revocation poll,
#      janitor, metrics upkeep) can be subtracted;
#   4. prints per workload: instructions per request = (Ir(requests) - Ir(idle)) / N.
# The client's own work is not counted: only the server runs under valgrind.
#
# Environment: TESSERA_BIN (default: target/release/tessera, built if missing), N=2000,
# WORKLOADS="w2 w3 verify gateway" (add w1 for issuance), KEEP_TMP=1 keeps the temp dir (callgrind.out.* files for
# callgrind_annotate). Needs valgrind, curl, jq, python3.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
N=${N:-2000}
WORKLOADS=${WORKLOADS:-w2 w3 verify gateway}
for c in valgrind callgrind_control curl jq python3; do
  command -v "$c" >/dev/null || { echo "instructions.sh: need $c" >&2; exit 2; }
done
if [[ -z ${TESSERA_BIN:-} ]]; then
  TESSERA_BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/tessera
  [[ -x $TESSERA_BIN ]] || (cd "$REPO" && cargo build --release)
fi

WORK=$(mktemp -d -t tessera-instr.XXXXXX)
PID=''
cleanup() {
  local rc=$?
  [[ -n $PID ]] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  if [[ ${KEEP_TMP:-0} == 1 ]]; then echo "# kept $WORK" >&2; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT

# The gateway workload's route table (docs/spec.md §11).
printf '[gateway]\n[[gateway.routes]]\npath = "/v1/*"\nscopes = ["inference:read"]\n' >"$WORK/tessera.toml"
T=("$TESSERA_BIN" --config "$WORK/tessera.toml" --database-url "sqlite://$WORK/tessera.db" --keys-dir "$WORK/keys")
mkdir -p "$WORK/keys"
"${T[@]}" migrate >"$WORK/migrate.log" 2>&1 || { cat "$WORK/migrate.log" >&2; exit 1; }
cli() { "${T[@]}" "$@" 2>>"$WORK/cli.err" || { cat "$WORK/cli.err" >&2; exit 1; }; }
ORG=$(cli org create --name instr | jq -er .org_id)
out=$(cli client create --name instr --org "$ORG" --grant-types client_credentials --scope inference:read)
CID=$(jq -er .client_id <<<"$out"); CSECRET=$(jq -er .client_secret <<<"$out")
out=$(cli client create --name instr-rs --org "$ORG" --resource-server)
RS_ID=$(jq -er .client_id <<<"$out"); RS_SECRET=$(jq -er .client_secret <<<"$out")
KEY=$(cli api-key create --org "$ORG" --name instr --scope inference:read --rate-limit-per-minute 1000000 | jq -er .key)

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
cd "$WORK"
env ${LOG_FILTER:+RUST_LOG=$LOG_FILTER} valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.out.%p" \
  "${T[@]}" serve --bind "127.0.0.1:$PORT" --issuer "$URL" --workers 1 \
  --access-token-ttl-seconds 86400 >"$WORK/serve.log" 2>&1 &
PID=$!
for _ in $(seq 600); do
  curl -fsS -o /dev/null "$URL/readyz" 2>/dev/null && break
  kill -0 "$PID" 2>/dev/null || { tail -30 "$WORK/serve.log" >&2; exit 1; }
  sleep 0.2
done
JWT=$(curl -fsS -u "$CID:$CSECRET" -d 'grant_type=client_credentials&scope=inference%3Aread' "$URL/oauth/token" | jq -er .access_token)
RS_AUTH="Basic $(printf '%s:%s' "$RS_ID" "$RS_SECRET" | base64 -w0)"
CLIENT_AUTH="Basic $(printf '%s:%s' "$CID" "$CSECRET" | base64 -w0)"
export RS_AUTH JWT KEY CLIENT_AUTH

# Total Ir of the last dump, read from the newest callgrind part file.
last_ir() { awk '/^summary:|^totals:/{print $2; exit}' "$(ls -t "$WORK"/callgrind.out.* | head -1)"; }
dump() { callgrind_control -d "$1" "$PID" >/dev/null 2>&1; sleep 0.5; last_ir; }

echo "# tessera $("$TESSERA_BIN" --version 2>/dev/null || echo '?') ($TESSERA_BIN)"
echo "# N=$N requests per workload, one keep-alive connection, --workers 1, callgrind"
for w in $WORKLOADS; do
  python3 "$HERE/requests.py" "$URL" "$w" 200 >/dev/null   # warm-up
  callgrind_control -z "$PID" >/dev/null 2>&1
  t0=$(date +%s.%N)
  python3 "$HERE/requests.py" "$URL" "$w" "$N"
  t1=$(date +%s.%N)
  busy=$(dump "$w-requests")
  callgrind_control -z "$PID" >/dev/null 2>&1
  sleep "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')"
  idle=$(dump "$w-idle")
  awk -v w="$w" -v b="$busy" -v i="$idle" -v n="$N" -v s="$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" \
    'BEGIN{printf "%-7s %10.0f instructions/request   (requests %.3g Ir, idle %.3g Ir, %.0f s)\n", w, (b-i)/n, b, i, s}'
done
