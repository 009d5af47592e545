-- benches/gateway.lua - wrk script for GET /gateway/check as nginx auth_request sends it
-- (docs/spec.md §11), used by benches/run.sh.
--
--   VERIFY_KEYS="<api key> ..." wrk -t2 -c32 -d10s --timeout 10s -s benches/gateway.lua \
--     http://127.0.0.1:PORT/gateway/check
--
-- Each wrk thread sends one of the keys as its bearer credential (every check spends the
-- route's cost from the key's per-minute limit), with the original method and URI in
-- X-Forwarded-Method / X-Forwarded-Uri. Prints one line in bench.sh's format at the end:
--   RESULT <requests> <req/s> <p50 ms> <p99 ms> <max ms> <non-2xx/3xx> <socket errors>
local keys = {}
for k in string.gmatch(os.getenv("VERIFY_KEYS") or "", "%S+") do
  keys[#keys + 1] = k
end
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("key_index", threads)
end
function init(args)
  local key = keys[((key_index or 1) - 1) % #keys + 1]
  wrk.method = "GET"
  wrk.headers["Authorization"] = "Bearer " .. key
  wrk.headers["X-Forwarded-Method"] = "GET"
  wrk.headers["X-Forwarded-Uri"] = "/v1/models"
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT %d %.1f %.3f %.3f %.3f %d %d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.status, e.connect + e.read + e.write + e.timeout))
end
