#!/usr/bin/env bash
# benches/run.sh - reproducible throughput/latency benchmark of tessera beside
# node-oidc-provider, driven by the peers' load generator bench.sh (PEERS_DIR, see BENCHMARKS.md).
#
#   benches/run.sh                                  # full run: DURATION=10 REPS=3 WARMUP=3
#   DURATION=2 REPS=1 WARMUP=1 benches/run.sh       # smoke run (~25 s plus build)
#   KEYS=1000000 NODE=0 benches/run.sh              # tessera with 1,000,000 extra API keys
#                                                   # and 1,000,000 extra refresh tokens
#   DATABASE_URL=postgres://… NODE=0 benches/run.sh # on an empty PostgreSQL database
#   TESSERA_SIGNING_ALG=RS256 TESSERA_WORKLOADS=w1 NODE=0 benches/run.sh   # W1 signed RS256
#
# What it does
#   1. builds tessera (cargo build --release) unless TESSERA_BIN is given; makes a temp dir
#      with a fresh SQLite DB and keys dir; `tessera migrate`; provisions an org, a bench
#      client (client_credentials, inference:read), a resource-server client and an API key
#      (inference:read, rate limit 1,000,000/min, the maximum);
#   2. with KEYS=N > 0, inserts N filler rows into api_keys and N into refresh_tokens
#      (SQLite: benches/seed_keys.py --refresh-tokens; PostgreSQL: benches/seed_pg.sh)
#      before the server starts;
#   3. starts `tessera serve` on a free loopback port, waits for /readyz, runs bench.sh
#      $TESSERA_WORKLOADS against it (w1 JWT issuance, w2 JWT introspection, w3 introspection
#      of the API key) and the `verify` workload (POST /api/v1/keys/verify, JSON body, wrk +
#      benches/verify.lua; skipped with a message while the endpoint answers 404) and the
#      `gateway` workload (GET /gateway/check as nginx auth_request sends it, API key as
#      bearer, route /v1/* from the run's tessera.toml; wrk + benches/gateway.lua), then stops it;
#   4. unless NODE=0, prepares node-oidc-provider in $NOP_DIR (copy of the peer + npm
#      install, once), starts it on a free port and runs bench.sh $NODE_WORKLOADS against it;
#   Also recorded: the time from `serve` to a ready /readyz on the migrated database, and
#   tessera's resident memory at rest (after readiness) and at its peak (VmHWM, at the end).
#   5. stops everything it started and prints a summary: per workload the medians for
#      tessera (rps, p50, p99) and node (rps, p99) and the rps ratio tessera/node.
#   One server runs at a time; each gets SERVER_PID so bench.sh reports its CPU.
#
# Environment
#   DURATION=10 REPS=3 WARMUP=3 CONNS=32 THREADS=2   passed to bench.sh (and used by verify)
#   QUIET_MAX=<pct> QUIET_TIMEOUT=120 LOADGEN_CPUS=<list> TOOL=auto   passed to bench.sh
#   TESSERA_BIN=<path>      use this binary instead of building target/release/tessera
#   TESSERA_WORKLOADS="w1 w2 w3 verify gateway" (empty: node-oidc-provider only)
#   NODE_WORKLOADS="w1 w3"   NODE=1 (0: tessera only)
#   NODE_WORKERS=1          node-oidc-provider processes (N>1: node:cluster, issuance only)
#   KEYS=0                  extra API-key and refresh-token rows seeded into the database
#   DATABASE_URL=<url>      an empty PostgreSQL database instead of a fresh SQLite file
#   TESSERA_SIGNING_ALG     ES256 (default), RS256 or EdDSA: the algorithm W1 signs with
#   TESSERA_WORKERS=<n>     HTTP worker threads of tessera [its default: number of CPUs]
#   NOP_DIR=/tmp/nop        prepared copy of peers/node-oidc-provider (made if absent)
#   PEERS_DIR=<dir>         the peers folder holding bench.sh and node-oidc-provider (required)
#   RESULTS=<file>          TSV to append to [benches/results/<UTC stamp>.tsv]; run facts go
#                           to <file>.meta; the summary only covers this run's lines
#   KEEP_TMP=1              keep the temp dir (database, keys, server logs) for inspection
#
# Time: (WARMUP + REPS*DURATION) per workload plus a few seconds of setup: with the
# defaults 6 workloads x 33 s ~ 3.5 min (+ the release build and a first npm install;
# KEYS=1000000 adds ~40 s of seeding, ~350 MB in the temp dir; QUIET_MAX adds >= 1 s per run).
# Loopback only; nothing is left running.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)

[[ -n ${PEERS_DIR:-} ]] || { echo "run.sh: set PEERS_DIR to the peers folder (bench.sh, node-oidc-provider; see BENCHMARKS.md)" >&2; exit 2; }
BENCH_SH=$PEERS_DIR/bench.sh
[[ -f $BENCH_SH ]] || { echo "run.sh: no bench.sh in $PEERS_DIR (set PEERS_DIR)" >&2; exit 2; }

export DURATION=${DURATION:-10} REPS=${REPS:-3} WARMUP=${WARMUP:-3} CONNS=${CONNS:-32}
export THREADS=${THREADS:-2} QUIET_TIMEOUT=${QUIET_TIMEOUT:-120}
[[ -n ${QUIET_MAX:-} ]] && export QUIET_MAX
[[ -n ${LOADGEN_CPUS:-} ]] && export LOADGEN_CPUS
TESSERA_WORKLOADS=${TESSERA_WORKLOADS-w1 w2 w3 verify gateway}
NODE_WORKLOADS=${NODE_WORKLOADS:-w1 w3}
NODE=${NODE:-1}
NODE_WORKERS=${NODE_WORKERS:-1}
KEYS=${KEYS:-0}
NOP_DIR=${NOP_DIR:-/tmp/nop}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS=${RESULTS:-$HERE/results/$STAMP.tsv}
mkdir -p "$(dirname "$RESULTS")"; touch "$RESULTS"
RESULTS=$(cd "$(dirname "$RESULTS")" && pwd)/$(basename "$RESULTS")
export RESULTS
SKIP_LINES=$(wc -l <"$RESULTS")

for c in curl jq python3 wrk; do
  command -v "$c" >/dev/null || { echo "run.sh: need $c (apt-get install -y $c)" >&2; exit 2; }
done
[[ $KEYS =~ ^[0-9]+$ ]] || { echo "run.sh: KEYS must be a number" >&2; exit 2; }

WORK=$(mktemp -d -t tessera-bench.XXXXXX)
TESSERA_PID=''; NOP_PID=''; CHILD_PID=''

stop_pid() {  # $1 pid: SIGTERM, up to 10 s, then SIGKILL; only processes this script started
  local pid=$1 i
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pid "$CHILD_PID"; stop_pid "$TESSERA_PID"; stop_pid "$NOP_PID"
  if [[ ${KEEP_TMP:-0} == 1 ]]; then echo "# kept $WORK" >&2; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

wait_http() {  # $1 url $2 pid $3 log $4 what: until 2xx, the process dies, or 60 s pass
  local i
  for ((i = 0; i < 600; i++)); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || { echo "run.sh: $4 exited during startup; log:" >&2; tail -n 30 "$3" >&2; exit 1; }
    sleep 0.1
  done
  echo "run.sh: $4 not ready at $1 after 60 s; log:" >&2; tail -n 30 "$3" >&2; exit 1
}

# Runs a command in the background and waits, so that a TERM/INT sent to this script is
# handled at once (bash defers traps while a foreground child runs).
child() { "$@" & CHILD_PID=$!; local rc=0; wait "$CHILD_PID" || rc=$?; CHILD_PID=''; return "$rc"; }

json_field() { jq -er ".$1" <<<"$2" || { echo "run.sh: no .$1 in: $2" >&2; exit 1; }; }

# --- 1. binary ---------------------------------------------------------------------------
if [[ -z ${TESSERA_BIN:-} ]]; then
  echo "# building tessera (cargo build --release)"
  (cd "$REPO" && cargo build --release)
  TESSERA_BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/tessera
fi
[[ -x $TESSERA_BIN ]] || { echo "run.sh: $TESSERA_BIN is not executable" >&2; exit 2; }
TESSERA_BIN=$(cd "$(dirname "$TESSERA_BIN")" && pwd)/$(basename "$TESSERA_BIN")

# --- run facts ---------------------------------------------------------------------------
{
  echo "# run $STAMP"
  echo "# commit $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$( [[ -n $(git -C "$REPO" status --porcelain -- src Cargo.toml Cargo.lock migrations 2>/dev/null) ]] && echo ' (src dirty)')"
  echo "# tessera $("$TESSERA_BIN" --version 2>/dev/null || echo '?')  binary $TESSERA_BIN"
  echo "# machine: $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}')  conns=$CONNS threads=$THREADS duration=${DURATION}s reps=$REPS warmup=${WARMUP}s keys=$KEYS quiet_max=${QUIET_MAX:-off}"
  echo "# results $RESULTS"
} | tee -a "$RESULTS.meta"

# --- 2. database, keys, principals -------------------------------------------------------
DB=$WORK/tessera.db
# The gateway workload's route table (docs/spec.md §11).
printf '[gateway]\n[[gateway.routes]]\npath = "/v1/*"\nscopes = ["inference:read"]\n' >"$WORK/tessera.toml"
DB_URL=${DATABASE_URL:-sqlite://$DB}
T=("$TESSERA_BIN" --config "$WORK/tessera.toml" --database-url "$DB_URL" --keys-dir "$WORK/keys")
mkdir -p "$WORK/keys"
"${T[@]}" migrate >"$WORK/migrate.log" 2>&1 || { cat "$WORK/migrate.log" >&2; exit 1; }
cli() {  # run a tessera admin command; its JSON on stdout, its stderr shown on failure
  local out
  if ! out=$("${T[@]}" "$@" 2>"$WORK/cli.err"); then
    echo "run.sh: tessera $* failed:" >&2; cat "$WORK/cli.err" >&2; exit 1
  fi
  printf '%s' "$out"
}
ORG_ID=$(json_field org_id "$(cli org create --name bench --plan pro)")
out=$(cli client create --name bench --org "$ORG_ID" --grant-types client_credentials --scope inference:read)
CLIENT_ID=$(json_field client_id "$out"); CLIENT_SECRET=$(json_field client_secret "$out")
out=$(cli client create --name bench-rs --org "$ORG_ID" --resource-server)
RS_ID=$(json_field client_id "$out"); RS_SECRET=$(json_field client_secret "$out")
# 1,000,000/min is the largest limit tessera accepts (~16,700/s): above what one 2-core box serves
out=$(cli api-key create --org "$ORG_ID" --name bench --scope inference:read --rate-limit-per-minute 1000000)
API_KEY=$(json_field key "$out")
# verify counts every request against the key's limit: spread the verify load over 16 keys
# (16,000,000/min in all) so that no run measures RATE_LIMITED answers.
VERIFY_KEYS=""
for _ in $(seq 16); do
  out=$(cli api-key create --org "$ORG_ID" --name bench-verify --scope inference:read --rate-limit-per-minute 1000000)
  VERIFY_KEYS+="$(json_field key "$out") "
done
echo "# provisioned org $ORG_ID, client $CLIENT_ID, resource server $RS_ID, API key …${API_KEY: -6}"

if (( KEYS > 0 )); then
  SEED_ORG=$(json_field org_id "$(cli org create --name bench-seed)")
  if [[ $DB_URL == postgres* ]]; then
    bash "$HERE/seed_pg.sh" "$DB_URL" "$SEED_ORG" "$CLIENT_ID" "$KEYS"
  else
    python3 "$HERE/seed_keys.py" "$DB" "$SEED_ORG" "$KEYS" --refresh-tokens "$CLIENT_ID"
    echo "# database file: $(du -h "$DB" | cut -f1) (with WAL: $(du -ch "$DB"* | tail -1 | cut -f1))"
  fi
fi

# --- 3. tessera --------------------------------------------------------------------------
T_URL=''
if [[ -n ${TESSERA_WORKLOADS// /} ]]; then  # empty: node-oidc-provider only
TPORT=$(free_port); T_URL=http://127.0.0.1:$TPORT
SERVE_FLAGS=(--bind "127.0.0.1:$TPORT" --issuer "$T_URL" --shutdown-timeout-seconds 5
             --access-token-ttl-seconds 86400)  # a W2 token must outlive long runs
[[ -n ${TESSERA_WORKERS:-} ]] && SERVE_FLAGS+=(--workers "$TESSERA_WORKERS")
START_NS=$(date +%s%N)
"${T[@]}" serve "${SERVE_FLAGS[@]}" >"$WORK/tessera.log" 2>&1 &
TESSERA_PID=$!
wait_http "$T_URL/readyz" "$TESSERA_PID" "$WORK/tessera.log" "tessera serve"
READY_MS=$(( ($(date +%s%N) - START_NS) / 1000000 ))
rss_mb() { awk -v f="$2" '$1 == f":" {printf "%.1f", $2/1024}' "/proc/$1/status" 2>/dev/null; }
sleep 1
RSS_REST=$(rss_mb "$TESSERA_PID" VmRSS)
echo "# tessera serving at $T_URL (pid $TESSERA_PID, $([[ $DB_URL == postgres* ]] && echo PostgreSQL || echo SQLite), signing ${TESSERA_SIGNING_ALG:-ES256}); ready ${READY_MS} ms after start; RSS at rest ${RSS_REST} MB" | tee -a "$RESULTS.meta"

RS_AUTH="Basic $(printf '%s:%s' "$RS_ID" "$RS_SECRET" | base64 -w0)"
BENCH_WL=(); DO_VERIFY=0; DO_GATEWAY=0
for w in $TESSERA_WORKLOADS; do
  case $w in verify) DO_VERIFY=1 ;; gateway) DO_GATEWAY=1 ;; *) BENCH_WL+=("$w") ;; esac
done

if ((${#BENCH_WL[@]})); then
  SERVER_PID=$TESSERA_PID TOKEN_PATH=/oauth/token INTROSPECT_PATH=/oauth/introspect \
  CLIENT_ID=$CLIENT_ID CLIENT_SECRET=$CLIENT_SECRET RS_ID=$RS_ID RS_SECRET=$RS_SECRET \
  W1_BODY='grant_type=client_credentials&scope=inference%3Aread' JWT_TOKEN_BODY='' \
  OPAQUE_TOKEN_BODY='' OPAQUE_TOKEN=$API_KEY \
    child bash "$BENCH_SH" "$T_URL" "${BENCH_WL[@]}"
  # The API key must still be active after w3 (tessera throttles callers that introspect
  # inactive tokens, and would answer active:false once the key's window is used up).
  if [[ " ${BENCH_WL[*]} " == *" w3 "* ]]; then
    post=$(curl -s -X POST -H "Authorization: $RS_AUTH" --data-urlencode "token=$API_KEY" "$T_URL/oauth/introspect" || true)
    jq -e '.active == true' <<<"$post" >/dev/null 2>&1 \
      || echo "# WARNING: after w3 the API key introspects as: ${post:0:300}"
  fi
fi

# --- verify: POST /api/v1/keys/verify {"key": ...} with resource-server basic auth --------
CLK_TCK=$(getconf CLK_TCK); NCPU=$(nproc)
PIN=(); [[ -n ${LOADGEN_CPUS:-} ]] && PIN=(taskset -c "$LOADGEN_CPUS")
proc_ticks() { awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$1/stat" 2>/dev/null || echo 0; }
sys_ticks() { awk '/^cpu /{b=$2+$3+$4+$7+$8+$9; print b, b+$5+$6}' /proc/stat; }
quiet_wait() {  # as in bench.sh
  [[ -z ${QUIET_MAX:-} ]] && return 0
  local t0=$SECONDS a b c d busy
  while :; do
    read -r a b < <(sys_ticks); sleep 1; read -r c d < <(sys_ticks)
    busy=$(awk -v a="$a" -v b="$b" -v c="$c" -v d="$d" 'BEGIN{printf "%.0f", 100*(c-a)/(d-b)}')
    ((busy <= QUIET_MAX)) && return 0
    ((SECONDS - t0 >= QUIET_TIMEOUT)) && { echo "# warning: machine still ${busy}% busy after ${QUIET_TIMEOUT}s wait" >&2; return 0; }
  done
}
wrk_load() {  # $1 name, $2 url, $3 wrk script, $4 seconds -> "rps p50 p99 max non2xx sockerr"
  VERIFY_KEYS=$VERIFY_KEYS BENCH_AUTH=$RS_AUTH "${PIN[@]}" /usr/bin/time -f '%U %S' -o "$WORK/$1.time" \
    wrk -t"$THREADS" -c"$CONNS" -d"$4s" --timeout 10s -s "$3" "$2" \
    >"$WORK/$1.out" 2>&1 || true
  awk '/^RESULT/{print $3, $4, $5, $6, $7, $8}' "$WORK/$1.out"
}
wrk_na() {  # $1 name, $2 why
  printf '%-5s N/A: %.300s\n' "$1" "$2"
  printf '%s\t%s\t%s\tN/A\t%s\n' "$(date -u +%FT%TZ)" "$T_URL" "$1" "$2" >>"$RESULTS"
}
run_wrk() {  # $1 name, $2 url, $3 wrk script: warm-up, REPS runs, median line
  local name=$1 url=$2 script=$3 i
  echo "# bench $name $url  tool=wrk conns=$CONNS duration=${DURATION}s reps=$REPS warmup=${WARMUP}s threads=$THREADS"
  ((WARMUP > 0)) && wrk_load "$name" "$url" "$script" "$WARMUP" >/dev/null
  : >"$WORK/$name.runs"
  for ((i = 1; i <= REPS; i++)); do
    quiet_wait
    local t0 t1 sb0 st0 sb1 st1 s0 s1 res rps p50 p99 pmax non2xx sockerr srv lg sysb other
    t0=$(proc_ticks "$TESSERA_PID"); read -r sb0 st0 < <(sys_ticks); s0=$(date +%s.%N)
    res=$(wrk_load "$name" "$url" "$script" "$DURATION")
    s1=$(date +%s.%N); read -r sb1 st1 < <(sys_ticks); t1=$(proc_ticks "$TESSERA_PID")
    read -r rps p50 p99 pmax non2xx sockerr <<<"${res:-0 0 0 0 0 0}"
    lg=$(awk -v w="$s0" -v x="$s1" '{printf "%.2f", ($1+$2)/(x-w)}' "$WORK/$name.time")
    srv=$(awk -v a="$t0" -v b="$t1" -v w="$s0" -v x="$s1" -v hz="$CLK_TCK" 'BEGIN{printf "%.2f", (b-a)/hz/(x-w)}')
    sysb=$(awk -v a="$sb0" -v b="$sb1" -v c="$st0" -v d="$st1" 'BEGIN{printf "%.0f", 100*(b-a)/(d-c)}')
    other=$(awk -v b="$sysb" -v n="$NCPU" -v s="$srv" -v l="$lg" 'BEGIN{o=b/100*n-s-l; if(o<0)o=0; printf "%.2f", o}')
    printf '%-5s rep%d  rps=%9.1f  p50=%7.2fms  p99=%7.2fms  max=%8.2fms  non2xx=%s sockerr=%s  cores: server=%s loadgen=%s other=%s  machine_busy=%s%%\n' \
      "$name" "$i" "$rps" "$p50" "$p99" "$pmax" "$non2xx" "$sockerr" "$srv" "$lg" "$other" "$sysb"
    echo "$rps $p50 $p99 $srv $lg $sysb" >>"$WORK/$name.runs"
    printf '%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$T_URL" "$name" "$i" \
      "$rps" "$p50" "$p99" "$non2xx" "$sockerr" "$srv" "$lg" "$other" "$sysb" "wrk c=$CONNS d=${DURATION}s" >>"$RESULTS"
  done
  median() { sort -g | awk '{a[NR]=$1} END{if(NR==0){print "nan"} else if(NR%2){print a[(NR+1)/2]} else {printf "%.3f\n",(a[NR/2]+a[NR/2+1])/2}}'; }
  col() { cut -d' ' -f"$1" "$WORK/$name.runs" | median; }
  printf '%-5s MEDIAN rps=%9.1f  p50=%7.2fms  p99=%7.2fms  server_cores=%s loadgen_cores=%s machine_busy=%s%%  (wrk, c=%s, %ss x%s)\n' \
    "$name" "$(col 1)" "$(col 2)" "$(col 3)" "$(col 4)" "$(col 5)" "$(col 6)" "$CONNS" "$DURATION" "$REPS"
}
run_verify() {
  local code body
  code=$(curl -s -o "$WORK/verify.probe" -w '%{http_code}' -X POST -H "Authorization: $RS_AUTH" \
    -H 'Content-Type: application/json' --data-raw "{\"key\":\"$API_KEY\"}" "$T_URL/api/v1/keys/verify") || code=000
  body=$(head -c 300 "$WORK/verify.probe" 2>/dev/null || true)
  if [[ $code == 404 ]]; then
    wrk_na verify "POST /api/v1/keys/verify answered 404 (endpoint not implemented in this build); skipped"; return 0
  fi
  if [[ $code != 2* ]]; then wrk_na verify "probe HTTP $code: $body"; return 0; fi
  if jq -e '(.valid == false) or (.active == false)' <"$WORK/verify.probe" >/dev/null 2>&1; then
    wrk_na verify "probe says the key is not valid: $body"; return 0
  fi
  echo "# verify: probe HTTP $code: $body"
  run_wrk verify "$T_URL/api/v1/keys/verify" "$HERE/verify.lua"
  # verify answers 200 with {"valid": false, "code": ...} too (e.g. once the key's per-minute
  # limit is used up), which wrk cannot see: check the verdict after the runs.
  curl -s -o "$WORK/verify.probe" -X POST -H "Authorization: $RS_AUTH" -H 'Content-Type: application/json' \
    --data-raw "{\"key\":\"${VERIFY_KEYS%% *}\"}" "$T_URL/api/v1/keys/verify" || true
  jq -e '.valid == true' <"$WORK/verify.probe" >/dev/null 2>&1 \
    || echo "# WARNING: after the verify runs the key verifies as: $(head -c 300 "$WORK/verify.probe")"
}
# --- gateway: GET /gateway/check as nginx auth_request sends it (docs/spec.md §11) -------
run_gateway() {
  local code
  code=$(curl -s -o "$WORK/gateway.probe" -w '%{http_code}' -H "Authorization: Bearer $API_KEY" \
    -H 'X-Forwarded-Method: GET' -H 'X-Forwarded-Uri: /v1/models' "$T_URL/gateway/check") || code=000
  if [[ $code != 200 ]]; then wrk_na gateway "probe HTTP $code: $(head -c 300 "$WORK/gateway.probe")"; return 0; fi
  run_wrk gateway "$T_URL/gateway/check" "$HERE/gateway.lua"
  # A key whose window ran out is 429 here, which wrk counts as non-2xx.
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer ${VERIFY_KEYS%% *}" \
    -H 'X-Forwarded-Method: GET' -H 'X-Forwarded-Uri: /v1/models' "$T_URL/gateway/check") || code=000
  [[ $code == 200 ]] || echo "# WARNING: after the gateway runs the check answers HTTP $code"
}
((DO_VERIFY)) && run_verify
((DO_GATEWAY)) && run_gateway

# Anything tessera logged above INFO during the run is worth a look.
LOGRE='\b(WARN|ERROR)\b'
if grep -Eq "$LOGRE" "$WORK/tessera.log"; then
  echo "# tessera logged warnings/errors ($(grep -Ec "$LOGRE" "$WORK/tessera.log") lines); first ones:"
  grep -E "$LOGRE" "$WORK/tessera.log" | head -n 5 | sed 's/\x1b\[[0-9;]*m//g' | cut -c1-300 | sed 's/^/#   /'
fi
echo "# tessera RSS after the runs ${TESSERA_PID:+$(rss_mb "$TESSERA_PID" VmRSS)} MB, peak (VmHWM) $(rss_mb "$TESSERA_PID" VmHWM) MB" | tee -a "$RESULTS.meta"
stop_pid "$TESSERA_PID"; TESSERA_PID=''
fi  # TESSERA_WORKLOADS

# --- 4. node-oidc-provider ---------------------------------------------------------------
N_URL=''
if [[ $NODE != 0 && -n $NODE_WORKLOADS ]]; then
  if [[ ! -f $NOP_DIR/server.mjs ]]; then
    echo "# preparing node-oidc-provider in $NOP_DIR"
    mkdir -p "$NOP_DIR"
    cp -r "$PEERS_DIR/node-oidc-provider/." "$NOP_DIR/"
    chmod -R u+w "$NOP_DIR"
  fi
  if [[ ! -x $NOP_DIR/node_modules/.bin/node ]]; then
    (cd "$NOP_DIR" && npm install --no-audit --no-fund)
  fi
  if [[ $("$NOP_DIR/node_modules/.bin/node" --version 2>/dev/null) != v22* ]]; then
    (cd "$NOP_DIR" && npm rebuild node)
  fi
  NPORT=$(free_port); N_URL=http://127.0.0.1:$NPORT
  (cd "$NOP_DIR" && PORT=$NPORT HOST=127.0.0.1 WORKERS=$NODE_WORKERS NODE_ENV=production exec node_modules/.bin/node server.mjs) \
    >"$WORK/nop.log" 2>&1 &
  NOP_PID=$!
  wait_http "$N_URL/.well-known/openid-configuration" "$NOP_PID" "$WORK/nop.log" "node-oidc-provider"
  echo "# node-oidc-provider $("$NOP_DIR/node_modules/.bin/node" --version) serving at $N_URL (pid $NOP_PID)"
  # shellcheck disable=SC2086
  child env -u TOKEN_PATH -u INTROSPECT_PATH -u CLIENT_ID -u CLIENT_SECRET -u RS_ID -u RS_SECRET \
      -u W1_BODY -u JWT_TOKEN_BODY -u OPAQUE_TOKEN_BODY -u JWT_TOKEN -u OPAQUE_TOKEN \
      SERVER_PID=$NOP_PID bash "$BENCH_SH" "$N_URL" $NODE_WORKLOADS
  stop_pid "$NOP_PID"; NOP_PID=''
fi

# --- 5. summary --------------------------------------------------------------------------
echo
echo "# summary (medians of $REPS x ${DURATION}s, c=$CONNS, keys=$KEYS; ratio = tessera rps / node rps)"
SUM_ARGS=(--tessera "$T_URL" --skip "$SKIP_LINES"); [[ -n $N_URL ]] && SUM_ARGS+=(--node "$N_URL")
python3 "$HERE/summarize.py" "$RESULTS" "${SUM_ARGS[@]}" | tee -a "$RESULTS.meta"
echo "# per-run lines: $RESULTS"
