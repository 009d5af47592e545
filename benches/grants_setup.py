#!/usr/bin/env python3
"""benches/grants_setup.py URL CLIENT_ID CLIENT_SECRET EMAIL PASSWORD REDIRECT SCOPE N_REFRESH OUT_DIR

Prepares the W4/W5 workloads of benches/grants.sh through the real pages, as a browser would:
signs in (GET /login for the double-submit cookie, POST /login), approves the consent once
(GET /oauth/authorize, POST /oauth/authorize), then redeems N_REFRESH codes at /oauth/token
(each one its own grant) for refresh tokens. Writes to OUT_DIR:
  session      the Cookie header value of the signed-in browser (for benches/grants_mint.lua)
  refresh      N_REFRESH refresh tokens, one per line (for benches/grants_w5.lua)
Every code gets a PKCE pair of its own (tessera refuses a reused code_challenge).
Exits 1 with the answer at the first unexpected response.

benches/grants_setup.py pkce N PREFIX THREADS writes N fresh "verifier challenge" pairs for
benches/grants_mint.lua, spread over PREFIX.1 .. PREFIX.THREADS.
"""
import base64
import hashlib
import http.client
import json
import os
import re
import sys
import urllib.parse



def pkce():
    verifier = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def pairs(n, prefix, threads):
    files = [open(f"{prefix}.{i + 1}", "w") for i in range(threads)]
    for i in range(n):
        files[i % threads].write("%s %s\n" % pkce())
    for f in files:
        f.close()
    return 0


def fail(what, resp, body):
    sys.stderr.write(f"grants_setup: {what}: HTTP {resp.status}: {body[:400]!r}\n")
    sys.exit(1)


def main() -> int:
    if sys.argv[1] == "pkce":
        return pairs(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
    url, cid, secret, email, password, redirect, scope, n, out = sys.argv[1:10]
    n = int(n)
    p = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(p.hostname, p.port, timeout=60)
    cookies = {}

    def request(method, path, body=None, headers=None):
        h = dict(headers or {})
        if cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        conn.request(method, path, body=body, headers=h)
        resp = conn.getresponse()
        data = resp.read().decode("utf-8", "replace")
        for k, v in resp.getheaders():
            if k.lower() == "set-cookie":
                name, _, rest = v.partition("=")
                cookies[name.strip()] = rest.split(";", 1)[0]
        return resp, data

    def hidden(html, name):
        m = re.search(r'name="%s"\s+value="([^"]*)"' % re.escape(name), html)
        if not m:
            m = re.search(r'value="([^"]*)"\s+name="%s"' % re.escape(name), html)
        return m.group(1) if m else None

    form = {"Content-Type": "application/x-www-form-urlencoded"}
    resp, html = request("GET", "/login")
    token = hidden(html, "csrf_token")
    if resp.status != 200 or token is None:
        fail("GET /login", resp, html)
    body = urllib.parse.urlencode({"email": email, "password": password, "csrf_token": token, "return_to": "/"})
    resp, html = request("POST", "/login", body, form)
    if resp.status != 303 or "tessera_session" not in cookies:
        fail("POST /login", resp, html)

    def code():
        verifier, challenge = pkce()
        query = urllib.parse.urlencode({
            "response_type": "code", "client_id": cid, "redirect_uri": redirect, "scope": scope,
            "state": "bench", "code_challenge": challenge, "code_challenge_method": "S256"})
        resp, html = request("GET", "/oauth/authorize?" + query)
        if resp.status == 200:  # the consent page, once
            body = urllib.parse.urlencode({"request": hidden(html, "request"),
                                           "csrf_token": hidden(html, "csrf_token"), "decision": "approve"})
            resp, html = request("POST", "/oauth/authorize", body, form)
        location = resp.getheader("Location") or ""
        got = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query).get("code")
        if resp.status not in (302, 303) or not got:
            fail("authorize", resp, html + " location=" + location)
        return got[0], verifier

    auth = "Basic " + base64.b64encode(f"{cid}:{secret}".encode()).decode()
    refresh = []
    for _ in range(n):
        c, verifier = code()
        body = urllib.parse.urlencode({"grant_type": "authorization_code", "code": c,
                                       "redirect_uri": redirect, "code_verifier": verifier})
        resp, data = request("POST", "/oauth/token", body, dict(form, Authorization=auth))
        if resp.status != 200:
            fail("POST /oauth/token", resp, data)
        refresh.append(json.loads(data)["refresh_token"])
    if n == 0:
        code()  # at least the consent
    session = "tessera_session=" + cookies["tessera_session"]
    with open(os.path.join(out, "session"), "w") as f:
        f.write(session + "\n")
    with open(os.path.join(out, "refresh"), "w") as f:
        f.write("\n".join(refresh) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
