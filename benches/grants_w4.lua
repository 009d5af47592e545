-- benches/grants_w4.lua - W4, authorization-code exchange (RFC 6749 §4.1.3) for
-- benches/grants.sh: each request redeems one code minted beforehand through the real flow
-- (benches/grants_mint.lua). Thread n reads "code verifier" lines from CODES_FILE.<n>; a
-- thread that runs out sends a bad code (an invalid_grant 400, counted as non-2xx: size the
-- mint to the run).
--   CODES_FILE=... BENCH_AUTH="Basic ..." REDIRECT_ENC=<urlencoded redirect URI>
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("index", threads)
end
function init(args)
  codes = {}
  for line in io.lines(os.getenv("CODES_FILE") .. "." .. index) do codes[#codes + 1] = line end
  next_code = 1
  tail = "&redirect_uri=" .. os.getenv("REDIRECT_ENC") .. "&code_verifier="
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.headers["Authorization"] = os.getenv("BENCH_AUTH")
end
function request()
  local code, verifier = string.match(codes[next_code] or "none none", "(%S+) (%S+)")
  next_code = next_code + 1
  return wrk.format(nil, nil, nil, "grant_type=authorization_code&code=" .. code .. tail .. verifier)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT %d %.1f %.3f %.3f %.3f %d %d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.status, e.connect + e.read + e.write + e.timeout))
end
