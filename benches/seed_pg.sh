#!/usr/bin/env bash
# benches/seed_pg.sh - the growth rows of issue #13 in a PostgreSQL database: N filler API
# keys and N filler refresh tokens, each in one statement (generate_series), for the
# "1,000 vs 1,000,000 rows" figures. SQLite databases are seeded by
# benches/seed_keys.py --refresh-tokens instead.
#
#   benches/seed_pg.sh DATABASE_URL ORG_ID CLIENT_ID N
#
# The keys belong to ORG_ID and look like `tessera api-key create`'s (random 64-hex
# digests, so no plaintext matches them); the refresh tokens hang off N/1000 grants of
# CLIENT_ID (1,000 generations each, every one but the last rotated, as a long-lived
# session leaves them). Run `tessera migrate` first, and seed while no server writes.
set -euo pipefail
[[ $# == 4 ]] || { sed -n '2,12p' "$0" >&2; exit 2; }
URL=$1 ORG=$2 CLIENT=$3 N=$4
[[ $N =~ ^[0-9]+$ ]] || { echo "seed_pg.sh: N must be a number" >&2; exit 2; }
PSQL=$(command -v psql || ls /usr/lib/postgresql/*/bin/psql 2>/dev/null | sort -V | tail -1)
[[ -x $PSQL ]] || { echo "seed_pg.sh: psql not found (apt-get install postgresql-client)" >&2; exit 2; }
GRANTS=$(( (N + 999) / 1000 ))
t0=$(date +%s.%N)
"$PSQL" -q -v ON_ERROR_STOP=1 "$URL" <<SQL
BEGIN;
INSERT INTO api_keys (id, org_id, name, key_type, key_hash, prefix, last_six, scope,
                      created_by, created_at, expires_at, revoked_at, last_used_at,
                      rate_limit_per_minute)
SELECT 'key_seed' || lpad(i::text, 18, '0'), '$ORG', 'seed-' || i, 'secret',
       md5(random()::text) || md5(random()::text), 'tsr_sk_', substr(md5(i::text), 1, 6),
       'inference:read', NULL, extract(epoch from now())::bigint - (i % 31536000), NULL,
       NULL, NULL, NULL
FROM generate_series(1, $N) AS i;
INSERT INTO grants (id, client_id, user_id, scope, created_at, revoked_at, resource, auth_time)
SELECT 'grt_seed' || lpad(g::text, 18, '0'), '$CLIENT', NULL, 'inference:read',
       extract(epoch from now())::bigint, NULL, '', NULL
FROM generate_series(1, $GRANTS) AS g;
INSERT INTO refresh_tokens (token_hash, grant_id, client_id, user_id, scope, generation,
                            created_at, expires_at, absolute_expires_at, rotated_at,
                            replaced_by, revoked_at)
SELECT md5(random()::text) || md5(random()::text),
       'grt_seed' || lpad((1 + (i - 1) / 1000)::text, 18, '0'), '$CLIENT', NULL,
       'inference:read', (i - 1) % 1000, extract(epoch from now())::bigint,
       extract(epoch from now())::bigint + 2592000, extract(epoch from now())::bigint + 7776000,
       CASE WHEN i % 1000 = 0 THEN NULL ELSE extract(epoch from now())::bigint END, NULL, NULL
FROM generate_series(1, $N) AS i;
COMMIT;
ANALYZE api_keys; ANALYZE grants; ANALYZE refresh_tokens;
SQL
echo "seed_pg: inserted $N api_keys and $N refresh_tokens ($GRANTS grants) in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')s"
