#!/usr/bin/env python3
"""Seed N filler refresh tokens into tessera's SQLite database, for the growth figures of
issue #13 ("1,000,000 refresh tokens in the database").

    python3 benches/seed_refresh.py DB_PATH CLIENT_ID N

The tokens hang off N/1000 grants of CLIENT_ID, 1,000 generations each, every one but the
last rotated (as a long-lived session leaves them); their digests are random, so no
plaintext token matches them. One transaction; run `tessera migrate` first, and seed while
no server writes to the file. PostgreSQL databases: benches/seed_pg.sh.
"""
import argparse
import random
import sqlite3
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("db")
    ap.add_argument("client_id")
    ap.add_argument("n", type=int)
    a = ap.parse_args()

    rng = random.Random()  # filler data: speed matters, not unpredictability
    now = int(time.time())
    t0 = time.monotonic()
    con = sqlite3.connect(a.db, isolation_level=None)
    con.execute("PRAGMA busy_timeout = 30000")
    con.execute("PRAGMA synchronous = OFF")  # this connection only; one commit at the end
    (have,) = con.execute("SELECT count(*) FROM clients WHERE id = ?", (a.client_id,)).fetchone()
    if not have:
        print(f"seed_refresh: no client {a.client_id!r} in {a.db}", file=sys.stderr)
        return 1
    grants = (a.n + 999) // 1000

    def grant_id(g: int) -> str:
        return f"grt_seed{g:018d}"

    con.execute("BEGIN IMMEDIATE")
    try:
        con.executemany(
            "INSERT INTO grants (id, client_id, user_id, scope, created_at, revoked_at,"
            " resource, auth_time) VALUES (?,?,NULL,'inference:read',?,NULL,'',NULL)",
            ((grant_id(g), a.client_id, now) for g in range(1, grants + 1)),
        )
        con.executemany(
            "INSERT INTO refresh_tokens (token_hash, grant_id, client_id, user_id, scope,"
            " generation, created_at, expires_at, absolute_expires_at, rotated_at,"
            " replaced_by, revoked_at) VALUES (?,?,?,NULL,'inference:read',?,?,?,?,?,NULL,NULL)",
            (
                (
                    "%064x" % rng.getrandbits(256),
                    grant_id(1 + i // 1000),
                    a.client_id,
                    i % 1000,
                    now,
                    now + 30 * 86_400,
                    now + 90 * 86_400,
                    None if i % 1000 == 999 else now,
                )
                for i in range(a.n)
            ),
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    (after,) = con.execute("SELECT count(*) FROM refresh_tokens").fetchone()
    con.close()
    print(
        f"seed_refresh: inserted {a.n} refresh tokens ({grants} grants) in "
        f"{time.monotonic() - t0:.1f}s ({after} rows now)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
