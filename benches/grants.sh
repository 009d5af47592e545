#!/usr/bin/env bash
# benches/grants.sh - W4 (authorization-code exchange) and W5 (refresh-token rotation)
# throughput on SQLite, the writes of issue #13's group commit (docs/architecture.md §6).
#
#   TESSERA_BIN=/tmp/tessera-x benches/grants.sh             # DURATION=10 REPS=2 CONNS=32
#   DURATION=5 REPS=1 WORKLOADS=w5 benches/grants.sh
#
# What it does: a fresh SQLite database (synchronous=FULL, as always) in a temp dir; an org,
# a user and a confidential client (authorization_code + refresh_token, scope
# inference:read) made with the admin CLI; `tessera serve` on a free port; then through the
# real pages (benches/grants_setup.py) a sign-in, one consent and REFRESH_TOKENS code
# redemptions for refresh tokens. W4: codes are minted beforehand by GET /oauth/authorize
# under wrk (benches/grants_mint.lua, MINT_SECONDS) and redeemed under load
# (benches/grants_w4.lua; each rep gets codes of its own). W5: wrk rotates the refresh
# tokens, each response's new token going back to the pool (benches/grants_w5.lua).
# Prints per rep: req/s, p50, p99, non-2xx, server cores; and the median per workload.
#
# Environment: TESSERA_BIN (default: cargo build --release), DURATION=10 REPS=2 WARMUP=2
# CONNS=32 THREADS=2 MINT_SECONDS (default 2*DURATION+2), REFRESH_TOKENS=256,
# WORKLOADS="w4 w5", SERVE_ARGS (extra `tessera serve` flags), KEEP_TMP=1,
# DATABASE_URL (an empty PostgreSQL database instead of the temp SQLite file), SEED=N
# (N filler API keys and N filler refresh tokens of the bench client seeded before the server
# starts: benches/seed_keys.py --refresh-tokens on SQLite, benches/seed_pg.sh on PostgreSQL).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
DURATION=${DURATION:-10} REPS=${REPS:-2} WARMUP=${WARMUP:-2} CONNS=${CONNS:-32} THREADS=${THREADS:-2}
MINT_SECONDS=${MINT_SECONDS:-$((2 * DURATION + 2))} REFRESH_TOKENS=${REFRESH_TOKENS:-256}
WORKLOADS=${WORKLOADS:-w4 w5}
export THREADS
for c in curl jq python3 wrk; do
  command -v "$c" >/dev/null || { echo "grants.sh: need $c" >&2; exit 2; }
done
if [[ -z ${TESSERA_BIN:-} ]]; then
  (cd "$REPO" && cargo build --release)
  TESSERA_BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/tessera
fi
WORK=$(mktemp -d -t tessera-grants.XXXXXX)
PID=''
cleanup() {
  local rc=$?
  if [[ -n $PID ]] && kill -0 "$PID" 2>/dev/null; then kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; fi
  if [[ ${KEEP_TMP:-0} == 1 ]]; then echo "# kept $WORK" >&2; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
T=("$TESSERA_BIN" --database-url "${DATABASE_URL:-sqlite://$WORK/tessera.db}" --keys-dir "$WORK/keys")
mkdir -p "$WORK/keys"
"${T[@]}" migrate >"$WORK/migrate.log" 2>&1
EMAIL=bench@example.com PASSWORD='correct horse battery staple' REDIRECT=https://app.example/cb
out=$(printf '%s\n' "$PASSWORD" | "${T[@]}" user create --email "$EMAIL" --password-stdin)
ORG_ID=$(jq -er .org_id <<<"$out")
out=$("${T[@]}" client create --name bench-web --org "$ORG_ID" --grant-types authorization_code,refresh_token \
  --redirect-uri "$REDIRECT" --scope inference:read)
CID=$(jq -er .client_id <<<"$out"); SECRET=$(jq -er .client_secret <<<"$out")
SEED=${SEED:-0}
if ((SEED > 0)); then
  if [[ -n ${DATABASE_URL:-} ]]; then
    bash "$HERE/seed_pg.sh" "$DATABASE_URL" "$ORG_ID" "$CID" "$SEED"
  else
    python3 "$HERE/seed_keys.py" "$WORK/tessera.db" "$ORG_ID" "$SEED" --refresh-tokens "$CID"
  fi
fi
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
# shellcheck disable=SC2086
"${T[@]}" serve --bind "127.0.0.1:$PORT" --issuer "$URL" ${SERVE_ARGS:-} >"$WORK/serve.log" 2>&1 &
PID=$!
for _ in $(seq 300); do curl -fs -o /dev/null "$URL/readyz" && break; sleep 0.1; done
echo "# $("$TESSERA_BIN" --version) at $URL ($([[ -n ${DATABASE_URL:-} ]] && echo postgres || echo sqlite)); $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg); wrk -t$THREADS -c$CONNS ${DURATION}s x$REPS"
python3 "$HERE/grants_setup.py" "$URL" "$CID" "$SECRET" "$EMAIL" "$PASSWORD" "$REDIRECT" inference:read "$REFRESH_TOKENS" "$WORK"
export BENCH_AUTH="Basic $(printf '%s:%s' "$CID" "$SECRET" | base64 -w0)"
export SESSION; SESSION=$(cat "$WORK/session")
export REDIRECT_ENC; REDIRECT_ENC=$(jq -rn --arg v "$REDIRECT" '$v|@uri')
export AUTHORIZE_QUERY="response_type=code&client_id=$CID&redirect_uri=$REDIRECT_ENC&scope=inference%3Aread&code_challenge_method=S256"
export REFRESH_FILE=$WORK/refresh
ticks() { awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$PID/stat"; }
mint() {  # $1 file prefix, $2 seconds
  rm -f "$1".*
  python3 "$HERE/grants_setup.py" pkce $((8000 * $2)) "$1.pkce" "$THREADS"
  PKCE_FILE=$1.pkce CODES_FILE=$1 wrk -t"$THREADS" -c"$CONNS" -d"$2s" --timeout 10s -s "$HERE/grants_mint.lua" "$URL" | grep MINTED
  echo "# minted $(cat "$1".[0-9]* | wc -l) codes"
}
load() {  # $1 workload, $2 seconds, $3 label -> one result line
  local t0 t1 s0 s1 res
  t0=$(ticks); s0=$(date +%s.%N)
  res=$(CODES_FILE=${CODES_FILE:-} wrk -t"$THREADS" -c"$CONNS" -d"$2s" --timeout 10s -s "$HERE/grants_$1.lua" "$URL/oauth/token" | awk '/^RESULT/{print $3, $4, $5, $6, $7, $8}')
  s1=$(date +%s.%N); t1=$(ticks)
  read -r rps p50 p99 pmax non2xx sockerr <<<"$res"
  local srv; srv=$(awk -v a="$t0" -v b="$t1" -v w="$s0" -v x="$s1" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", (b-a)/hz/(x-w)}')
  printf '%-3s %s rps=%8.1f p50=%7.2fms p99=%8.2fms max=%8.2fms non2xx=%s sockerr=%s server_cores=%s load=%s\n' \
    "$1" "$3" "$rps" "$p50" "$p99" "$pmax" "$non2xx" "$sockerr" "$srv" "$(cut -d' ' -f1 /proc/loadavg)"
  echo "$rps" >>"$WORK/$1.rps"
}
for w in $WORKLOADS; do
  : >"$WORK/$w.rps"
  for ((i = 0; i <= REPS; i++)); do
    label="rep$i"; secs=$DURATION; ((i == 0)) && { label=warmup; secs=$WARMUP; }
    ((i == 0 && WARMUP == 0)) && continue
    if [[ $w == w4 ]]; then mint "$WORK/codes$i" "$MINT_SECONDS" >/dev/null; export CODES_FILE=$WORK/codes$i; fi
    line=$(load "$w" "$secs" "$label"); echo "$line"
    ((i == 0)) && : >"$WORK/$w.rps"
  done
  printf '%-3s MEDIAN rps=%.1f\n' "$w" "$(sort -g "$WORK/$w.rps" | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}')"
done
