#!/usr/bin/env python3
"""benches/requests.py URL WORKLOAD N: sends N requests of one workload over one keep-alive
connection and checks every answer, for benches/instructions.sh.

Workloads (environment: RS_AUTH, the resource server's Basic header; JWT; KEY; CLIENT_AUTH,
the client_credentials client's Basic header):
  w1      POST /oauth/token grant_type=client_credentials -> 200, "access_token"
  w2      POST /oauth/introspect token=$JWT          -> 200, "active": true
  w3      POST /oauth/introspect token=$KEY          -> 200, "active": true
  verify  POST /api/v1/keys/verify {"key": "$KEY"}   -> 200, "valid": true
  gateway GET /gateway/check, Bearer $KEY, X-Forwarded-Method GET,
          X-Forwarded-Uri /v1/models (docs/spec.md §11) -> 200, X-Auth-Key-Id set
Exits 1 at the first answer that is not the expected one (printing it).
"""
import http.client
import json
import os
import sys
import urllib.parse


def main() -> int:
    url, workload, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    parsed = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=120)
    auth = os.environ["RS_AUTH"]
    if workload == "w1":
        auth = os.environ["CLIENT_AUTH"]
        path, body, ctype, field = (
            "/oauth/token",
            "grant_type=client_credentials&scope=inference%3Aread",
            "application/x-www-form-urlencoded",
            "access_token",
        )
    elif workload in ("w2", "w3"):
        token = os.environ["JWT"] if workload == "w2" else os.environ["KEY"]
        path, body, ctype, field = (
            "/oauth/introspect",
            urllib.parse.urlencode({"token": token}),
            "application/x-www-form-urlencoded",
            "active",
        )
    elif workload == "verify":
        path, body, ctype, field = (
            "/api/v1/keys/verify",
            json.dumps({"key": os.environ["KEY"]}),
            "application/json",
            "valid",
        )
    elif workload == "gateway":
        headers = {
            "Authorization": "Bearer " + os.environ["KEY"],
            "X-Forwarded-Method": "GET",
            "X-Forwarded-Uri": "/v1/models",
        }
        for _ in range(n):
            conn.request("GET", "/gateway/check", headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200 or not resp.getheader("X-Auth-Key-Id"):
                print(f"{workload}: HTTP {resp.status}: {data[:300]!r}", file=sys.stderr)
                return 1
        return 0
    else:
        print(f"unknown workload {workload}", file=sys.stderr)
        return 2
    headers = {"Authorization": auth, "Content-Type": ctype}
    for _ in range(n):
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        value = json.loads(data).get(field) if resp.status == 200 else None
        if value is not True and not (field == "access_token" and isinstance(value, str)):
            print(f"{workload}: HTTP {resp.status}: {data[:300]!r}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
