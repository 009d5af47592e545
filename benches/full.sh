#!/usr/bin/env bash
# benches/full.sh - issue #13's one run: every workload of tessera on SQLite and on
# PostgreSQL, the 1,000 vs 1,000,000 rows figures, memory and readiness, beside the physical
# ceiling (the bare actix-web + ring skeleton from the peers' ceilings/actixbench) and
# node-oidc-provider (2 processes for W1, 1 for W1 and W3), all in one run on one machine.
#
#   export PEERS_DIR=/path/to/peers        # bench.sh, node-oidc-provider, ceilings/
#   TESSERA_BIN=target/release/tessera QUIET_MAX=30 benches/full.sh
#   DURATION=2 REPS=1 WARMUP=1 GROWTH=1000 benches/full.sh     # a smoke run (~6 min)
#
# Order (each server alone on the machine while it is measured):
#   1. the skeleton: hello, w1, w2, w3 (bench.sh defaults match it);
#   2. node-oidc-provider with 2 processes: w1 (its cluster mode serves issuance only);
#   3. SQLite: benches/run.sh (w1 w2 w3 verify gateway, then node-oidc-provider with 1
#      process: w1 w3), W1 again signed RS256 and EdDSA, benches/grants.sh (w4 w5);
#   4. PostgreSQL (a durable cluster of this script's own: fsync on): the same for tessera;
#   5. growth: GROWTH (1,000,000) extra API keys and refresh tokens, on both databases:
#      w1 w2 w3 verify gateway and w5.
# Every step's output goes to OUT (benches/results/full-<stamp>/), its lines also to the
# terminal; the per-run TSV files are in the same folder. BENCHMARKS.md explains the reading.
#
# Environment: DURATION=8 REPS=2 WARMUP=2 (per workload), QUIET_MAX, TESSERA_BIN (default:
# cargo build --release), SKELETON_BIN (default: built from $PEERS_DIR/ceilings/actixbench
# in a copy under $SKELETON_DIR=/tmp/actixbench), GROWTH=1000000 (0: no growth step),
# STEPS="skeleton node sqlite postgres growth", PEERS_DIR (required).
# Time with the defaults: ~25 min plus builds. Needs curl jq python3 wrk, node via the peers'
# npm package, and PostgreSQL's initdb/pg_ctl/psql for the PostgreSQL steps.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
[[ -n ${PEERS_DIR:-} && -f ${PEERS_DIR:-}/bench.sh ]] \
  || { echo "full.sh: set PEERS_DIR to the peers folder (bench.sh, node-oidc-provider, ceilings)" >&2; exit 2; }
export PEERS_DIR DURATION=${DURATION:-8} REPS=${REPS:-2} WARMUP=${WARMUP:-2}
[[ -n ${QUIET_MAX:-} ]] && export QUIET_MAX
GROWTH=${GROWTH:-1000000}
STEPS=${STEPS:-skeleton node sqlite postgres growth}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-$HERE/results/full-$STAMP}
mkdir -p "$OUT"
step() { [[ " $STEPS " == *" $1 "* ]]; }
say() { echo "## $*" | tee -a "$OUT/steps.log"; }

if [[ -z ${TESSERA_BIN:-} ]]; then
  (cd "$REPO" && cargo build --release)
  TESSERA_BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/tessera
fi
export TESSERA_BIN
say "run $STAMP, commit $(git -C "$REPO" rev-parse --short HEAD), $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), load $(cut -d' ' -f1-3 /proc/loadavg); DURATION=$DURATION REPS=$REPS WARMUP=$WARMUP"

PIDS=(); PG_DIR=''; PG_CTL=''
as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  local rc=$? p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  if [[ -n $PG_DIR ]]; then
    as_pg "$PG_CTL" -D "$PG_DIR/data" stop -m fast >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
  fi
  exit "$rc"
}
trap cleanup EXIT
# Runs a step: its whole output to $1, the lines matching $2 to the terminal; a failure is
# reported and the run goes on to the next step.
run_step() {
  local out=$1 pat=$2 rc
  shift 2
  set +e
  "$@" 2>&1 | tee "$out" | grep --line-buffered -E "$pat"
  rc=${PIPESTATUS[0]}
  set -e
  ((rc == 0)) || say "FAILED (exit $rc): $*; see $out"
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# --- 1. the skeleton ----------------------------------------------------------------------
if step skeleton; then
  if [[ -z ${SKELETON_BIN:-} ]]; then
    SKELETON_DIR=${SKELETON_DIR:-/tmp/actixbench}
    if [[ ! -f $SKELETON_DIR/Cargo.toml ]]; then
      cp -r "$PEERS_DIR/ceilings/actixbench" "$SKELETON_DIR" && chmod -R u+w "$SKELETON_DIR"
    fi
    (cd "$SKELETON_DIR" && cargo build --release)
    SKELETON_BIN=$SKELETON_DIR/target/release/actixbench
  fi
  port=$(free_port)
  PORT=$port WORKERS=2 "$SKELETON_BIN" >"$OUT/skeleton.log" 2>&1 &
  PIDS+=($!); sk=$!
  for _ in $(seq 100); do curl -fs -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
  say "skeleton (actix-web + ring, no storage, 2 workers)"
  run_step "$OUT/skeleton.out" "MEDIAN|WARN" env SERVER_PID=$sk RESULTS="$OUT/skeleton.tsv" \
    bash "$PEERS_DIR/bench.sh" "http://127.0.0.1:$port" hello w1 w2 w3
  kill "$sk"; wait "$sk" 2>/dev/null || true
fi

# --- 2. node-oidc-provider, 2 processes (issuance) ------------------------------------------
if step node; then
  say "node-oidc-provider, 2 processes: w1"
  run_step "$OUT/node2.out" "MEDIAN" env TESSERA_WORKLOADS='' NODE_WORKERS=2 NODE_WORKLOADS=w1 \
    RESULTS="$OUT/node2.tsv" bash "$HERE/run.sh"
fi

# Runs the tessera steps on one database kind: $1 label, $2 a function printing a fresh,
# empty database URL ('' for a fresh SQLite file), $3 extra rows (0: none).
tessera_steps() {
  local label=$1 fresh=$2 rows=$3 url alg
  local node=0 node_wl=''
  [[ $label == sqlite ]] && { node=1; node_wl='w1 w3'; }
  url=$($fresh)
  say "tessera, $label: w1 w2 w3 verify gateway${node_wl:+ (then node-oidc-provider, 1 process: $node_wl)}"
  run_step "$OUT/$label.out" "MEDIAN|ready|RSS|WARN" env DATABASE_URL="$url" NODE=$node \
    NODE_WORKLOADS="$node_wl" RESULTS="$OUT/$label.tsv" bash "$HERE/run.sh"
  for alg in RS256 EdDSA; do
    url=$($fresh)
    say "tessera, $label: w1 signed $alg"
    run_step "$OUT/$label-$alg.out" "MEDIAN" env DATABASE_URL="$url" NODE=0 TESSERA_SIGNING_ALG=$alg \
      TESSERA_WORKLOADS=w1 RESULTS="$OUT/$label-$alg.tsv" bash "$HERE/run.sh"
  done
  url=$($fresh)
  say "tessera, $label: w4 w5 (benches/grants.sh)"
  run_step "$OUT/$label-grants.out" "MEDIAN|^#" env DATABASE_URL="$url" bash "$HERE/grants.sh"
}
growth_steps() {  # $1 label, $2 fresh-database function
  local url
  url=$($2)
  say "tessera, $1, $GROWTH extra API keys and refresh tokens: w1 w2 w3 verify gateway"
  run_step "$OUT/$1-growth.out" "MEDIAN|seed|ready|RSS|WARN" env DATABASE_URL="$url" NODE=0 \
    KEYS="$GROWTH" RESULTS="$OUT/$1-growth.tsv" bash "$HERE/run.sh"
  url=$($2)
  say "tessera, $1, $GROWTH extra API keys and refresh tokens: w5"
  run_step "$OUT/$1-growth-grants.out" "MEDIAN|seed|^#" env DATABASE_URL="$url" SEED="$GROWTH" \
    WORKLOADS=w5 bash "$HERE/grants.sh"
}
no_url() { echo ''; }

# --- 3. SQLite ----------------------------------------------------------------------------
step sqlite && tessera_steps sqlite no_url 0

# --- 4. PostgreSQL ------------------------------------------------------------------------
pg_start() {
  local bin initdb
  bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1)")
  [[ -x $bin/initdb ]] || { echo "full.sh: PostgreSQL (initdb) not found: apt-get install postgresql" >&2; return 1; }
  PG_CTL=$bin/pg_ctl; PG_PSQL=$bin/psql
  PG_DIR=$(mktemp -d -t tessera-bench-pg.XXXXXX); chmod 755 "$PG_DIR"
  [[ $(id -u) == 0 ]] && chown postgres:postgres "$PG_DIR"
  as_pg "$bin/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 --no-instructions >/dev/null
  PG_PORT=$(free_port)
  as_pg "$PG_CTL" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -t 60 start \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=200" >/dev/null
  say "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on port $PG_PORT (fsync on, synchronous_commit on)"
}
pg_fresh() {  # runs in a $(…) subshell: the name must not depend on a counter
  local name; name=bench_$(date +%s%N)
  "$PG_PSQL" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -c "CREATE DATABASE $name" >/dev/null
  echo "postgres://postgres@127.0.0.1:$PG_PORT/$name"
}
if step postgres || step growth; then pg_start; fi
step postgres && tessera_steps postgres pg_fresh 0

# --- 5. growth ----------------------------------------------------------------------------
if step growth && ((GROWTH > 0)); then
  growth_steps sqlite no_url
  growth_steps postgres pg_fresh
fi
say "done: $OUT"
