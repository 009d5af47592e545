#!/usr/bin/env python3
"""Seed N filler rows into tessera's api_keys table (SQLite), for benchmarks that need a
large key table ("1,000,000 keys in the database"), and with --refresh-tokens CLIENT_ID
also N filler refresh tokens of that client (issue #13's growth figures).

    python3 benches/seed_keys.py DB_PATH ORG_ID N [--batch 50000] [--refresh-tokens CLIENT_ID]

The refresh tokens hang off N/1000 grants, 1,000 generations each, every one but the last
rotated (as a long-lived session leaves them), with random digests. PostgreSQL databases:
benches/seed_pg.sh.

Rows look like keys made by `tessera api-key create` (id key_ + 22 base62, key_hash =
64 lowercase hex, prefix tsr_sk_, scope inference:read), but their hashes are random, so
no plaintext key matches them. Everything goes in one transaction; run `tessera migrate`
first so the table exists, and do it while no server writes to the file.
"""
import argparse
import random
import sqlite3
import string
import sys
import time

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("db")
    ap.add_argument("org_id")
    ap.add_argument("n", type=int)
    ap.add_argument("--batch", type=int, default=50_000)
    ap.add_argument("--prefix", default="tsr")
    ap.add_argument("--scope", default="inference:read")
    ap.add_argument("--refresh-tokens", metavar="CLIENT_ID")
    a = ap.parse_args()

    rng = random.Random()  # filler data: speed matters, not unpredictability
    now = int(time.time())
    key_prefix = f"{a.prefix}_sk_"
    t0 = time.monotonic()
    con = sqlite3.connect(a.db, isolation_level=None)
    con.execute("PRAGMA busy_timeout = 30000")
    con.execute("PRAGMA synchronous = OFF")  # this connection only; one commit at the end
    (have_org,) = con.execute("SELECT count(*) FROM organizations WHERE id = ?", (a.org_id,)).fetchone()
    if not have_org:
        print(f"seed_keys: no organization {a.org_id!r} in {a.db}", file=sys.stderr)
        return 1
    (before,) = con.execute("SELECT count(*) FROM api_keys").fetchone()

    def rows(count: int, start: int):
        for i in range(start, start + count):
            yield (
                "key_" + "".join(rng.choices(BASE62, k=22)),
                a.org_id,
                f"seed-{i}",
                "secret",
                "%064x" % rng.getrandbits(256),
                key_prefix,
                "".join(rng.choices(BASE62, k=6)),
                a.scope,
                None,
                now - rng.randrange(0, 365 * 86_400),
                None,
                None,
                None,
                None,
            )

    sql = (
        "INSERT INTO api_keys (id, org_id, name, key_type, key_hash, prefix, last_six, scope,"
        " created_by, created_at, expires_at, revoked_at, last_used_at, rate_limit_per_minute)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
    )
    con.execute("BEGIN IMMEDIATE")
    try:
        done = 0
        while done < a.n:
            k = min(a.batch, a.n - done)
            con.executemany(sql, rows(k, done))
            done += k
        if a.refresh_tokens:
            seed_refresh_tokens(con, rng, a.refresh_tokens, a.n, now)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    (after,) = con.execute("SELECT count(*) FROM api_keys").fetchone()
    con.close()
    print(
        f"seed_keys: inserted {a.n} rows into api_keys in {time.monotonic() - t0:.1f}s "
        f"({before} -> {after} rows)"
    )
    return 0


def seed_refresh_tokens(con, rng, client_id: str, n: int, now: int) -> None:
    """N refresh tokens of `client_id` over N/1000 grants (inside the caller's transaction)."""
    (have,) = con.execute("SELECT count(*) FROM clients WHERE id = ?", (client_id,)).fetchone()
    if not have:
        raise SystemExit(f"seed_keys: no client {client_id!r}")
    grants = (n + 999) // 1000
    con.executemany(
        "INSERT INTO grants (id, client_id, user_id, scope, created_at, revoked_at,"
        " resource, auth_time) VALUES (?,?,NULL,'inference:read',?,NULL,'',NULL)",
        ((f"grt_seed{g:018d}", client_id, now) for g in range(1, grants + 1)),
    )
    con.executemany(
        "INSERT INTO refresh_tokens (token_hash, grant_id, client_id, user_id, scope,"
        " generation, created_at, expires_at, absolute_expires_at, rotated_at,"
        " replaced_by, revoked_at) VALUES (?,?,?,NULL,'inference:read',?,?,?,?,?,NULL,NULL)",
        (
            ("%064x" % rng.getrandbits(256), f"grt_seed{1 + i // 1000:018d}", client_id,
             i % 1000, now, now + 30 * 86_400, now + 90 * 86_400,
             None if i % 1000 == 999 else now)
            for i in range(n)
        ),
    )
    print(f"seed_keys: and {n} refresh tokens of {client_id} ({grants} grants)")


if __name__ == "__main__":
    sys.exit(main())
