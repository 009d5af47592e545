#!/usr/bin/env python3
"""benches/propagation.py - how long a revocation on one instance takes to reach another.

    benches/propagation.py                       # PostgreSQL (push) and SQLite (poll), N=300
    N=100 TESSERA_BIN=target/release/tessera BACKENDS=postgres benches/propagation.py

What it does (docs/spec.md §12):
  1. per backend, a fresh database: PostgreSQL in a throwaway cluster this script starts
     (initdb + pg_ctl, as the `postgres` user when run as root, on a free port, fsync on),
     or one SQLite file; `tessera migrate`, an organization and an admin API key (CLI);
  2. two `tessera serve` processes on that database (A and B), default settings except
     `--cache-ttl-ms 60000`, so B keeps a key it has seen for a minute unless told;
  3. N times: creates a key through A, uses it on B (now cached there), waits a random
     0-100 ms, revokes it on A, and asks B every millisecond until it refuses the key; the propagation time is from
     A's 204 to B's first 401;
  4. prints p50 / p90 / p99 / max per backend.
With PostgreSQL the revocation is pushed (LISTEN/NOTIFY wakes B's change poll); SQLite has
no push, so its figures are those of the 100 ms poll (`--change-poll-interval-ms`).
Needs python3; PostgreSQL's initdb/pg_ctl for the postgres run (skipped with a message if
absent). Environment: N=300, BACKENDS="postgres sqlite", TESSERA_BIN (default
target/release/tessera, built if missing), KEEP_TMP=1.
"""
import glob
import http.client
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = int(os.environ.get("N", "300"))
BACKENDS = os.environ.get("BACKENDS", "postgres sqlite").split()


def binary():
    b = os.environ.get("TESSERA_BIN")
    if b:
        return os.path.abspath(b)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    b = os.path.join(target, "release", "tessera")
    if not os.access(b, os.X_OK):
        subprocess.run(["cargo", "build", "--release"], cwd=REPO, check=True)
    return b


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_tool(name):
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return versions[-1] if versions else None


class Postgres:
    """A throwaway cluster in `work`; `url` once started."""

    def __init__(self, work):
        self.initdb, self.pg_ctl = pg_tool("initdb"), pg_tool("pg_ctl")
        if not (self.initdb and self.pg_ctl):
            raise RuntimeError("initdb/pg_ctl not found (apt-get install postgresql)")
        self.data = os.path.join(work, "pg")
        self.port = free_port()
        os.makedirs(self.data)
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(work, "postgres")
            shutil.chown(self.data, "postgres")
        self.run([self.initdb, "-D", self.data, "-A", "trust", "-U", "postgres"])
        self.run([self.pg_ctl, "-D", self.data, "-w", "-l", os.path.join(self.data, "log"),
                  "-o", f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1",
                  "start"])
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def run(self, cmd):
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)

    def stop(self):
        self.run([self.pg_ctl, "-D", self.data, "-m", "immediate", "stop"])


class Server:
    def __init__(self, cmd, log):
        self.proc = subprocess.Popen(cmd + ["serve", "--bind", "127.0.0.1:0", "--cache-ttl-ms", "60000"],
                                     stdout=subprocess.PIPE, stderr=open(log, "w"), text=True)
        first = self.proc.stdout.readline()
        url = next(w for w in first.split() if w.startswith("http://"))
        host, port = url[len("http://"):].rstrip("/").split(":")
        self.conn = http.client.HTTPConnection(host, int(port))

    def call(self, method, path, key, body=None):
        headers = {"Authorization": f"Bearer {key}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
            body = json.dumps(body)
        self.conn.request(method, path, body=body, headers=headers)
        r = self.conn.getresponse()
        data = r.read()
        return r.status, data

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def measure(bin_, backend, work):
    pg = None
    if backend == "postgres":
        pg = Postgres(work)
        url = pg.url
    else:
        url = "sqlite://" + os.path.join(work, "tessera.db")
    keys = os.path.join(work, "keys")
    os.makedirs(keys, exist_ok=True)
    t = [bin_, "--database-url", url, "--keys-dir", keys]
    subprocess.run(t + ["migrate"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = lambda *a: json.loads(subprocess.run(t + list(a), check=True, capture_output=True, text=True).stdout)
    org = out("org", "create", "--name", "propagation", "--plan", "pro")["org_id"]
    # Every call below spends the admin key's budget: the largest limit tessera accepts.
    admin = out("api-key", "create", "--org", org, "--name", "admin", "--scope", "admin",
                "--rate-limit-per-minute", "1000000")["key"]
    a = Server(t, os.path.join(work, "a.log"))
    b = Server(t, os.path.join(work, "b.log"))
    times = []
    try:
        for i in range(N):
            status, data = a.call("POST", "/api/v1/api-keys", admin,
                                  {"name": f"victim-{i}", "scopes": ["admin"], "expires_at": None,
                                   "rate_limit_per_minute": 1000000})
            assert status == 201, (status, data)
            created = json.loads(data)
            victim, victim_id = created["key"], created["id"]
            status, _ = b.call("GET", "/api/v1/api-keys", victim)
            assert status == 200, status
            # Revoke at a random moment: otherwise the loop locks onto B's poll (it
            # detected the last revocation just after a poll, and revokes again a fixed
            # few ms later) and measures one phase of it instead of the distribution.
            time.sleep(random.uniform(0, 0.1))
            status, _ = a.call("DELETE", f"/api/v1/api-keys/{victim_id}", admin)
            assert status == 204, status
            revoked = time.perf_counter()
            while True:
                status, _ = b.call("GET", "/api/v1/api-keys", victim)
                if status == 401:
                    times.append((time.perf_counter() - revoked) * 1000)
                    break
                assert status == 200, status
                if time.perf_counter() - revoked > 5:
                    raise RuntimeError("B never refused the revoked key")
                time.sleep(0.001)
    finally:
        a.stop()
        b.stop()
        if pg:
            pg.stop()
    return times


def pct(sorted_ms, p):
    return sorted_ms[min(len(sorted_ms) - 1, int(round(p / 100 * (len(sorted_ms) - 1))))]


def main():
    bin_ = binary()
    print(f"# tessera {subprocess.run([bin_, '--version'], capture_output=True, text=True).stdout.strip()}"
          f"  N={N}  {os.cpu_count()} CPUs")
    print("| backend | revocations | p50 ms | p90 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|")
    for backend in BACKENDS:
        work = tempfile.mkdtemp(prefix=f"tessera-prop-{backend}-")
        try:
            times = sorted(measure(bin_, backend, work))
        except RuntimeError as e:
            print(f"| {backend} | SKIPPED: {e} | | | | |")
            continue
        finally:
            if not os.environ.get("KEEP_TMP"):
                shutil.rmtree(work, ignore_errors=True)
        print(f"| {backend} | {len(times)} | {pct(times, 50):.1f} | {pct(times, 90):.1f} | "
              f"{pct(times, 99):.1f} | {times[-1]:.1f} |")


if __name__ == "__main__":
    sys.exit(main())
