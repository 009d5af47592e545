#!/usr/bin/env python3
"""Seed N filler rows into tessera's api_keys table (SQLite), for benchmarks that need a
large key table ("1,000,000 keys in the database").

    python3 benches/seed_keys.py DB_PATH ORG_ID N [--batch 50000]

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


if __name__ == "__main__":
    sys.exit(main())
