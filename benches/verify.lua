-- benches/verify.lua - wrk script for POST /api/v1/keys/verify (JSON body), used by
-- benches/run.sh. bench.sh only sends form bodies, so this workload drives wrk directly.
--
--   VERIFY_KEYS="<api key> ..." BENCH_AUTH="Basic <base64 rs_id:rs_secret>" \
--     wrk -t2 -c32 -d10s --timeout 10s -s benches/verify.lua http://127.0.0.1:PORT/api/v1/keys/verify
--
-- Prints one line in bench.sh's format at the end:
--   RESULT <requests> <req/s> <p50 ms> <p99 ms> <max ms> <non-2xx/3xx> <socket errors>
-- VERIFY_KEYS: space-separated keys; each wrk thread sends one of them (a key's
-- per-minute limit counts every verify), with a static request per thread so that Lua
-- does not run per request.
local keys = {}
for k in string.gmatch(os.getenv("VERIFY_KEYS") or os.getenv("VERIFY_KEY") or "", "%S+") do
  keys[#keys + 1] = k
end
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("key_index", threads)
end
function init(args)
  local key = keys[((key_index or 1) - 1) % #keys + 1]
  wrk.method = "POST"
  wrk.body = '{"key":"' .. key .. '"}'
  wrk.headers["Content-Type"] = "application/json"
  local auth = os.getenv("BENCH_AUTH")
  if auth and #auth > 0 then wrk.headers["Authorization"] = auth end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT %d %.1f %.3f %.3f %.3f %d %d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.status, e.connect + e.read + e.write + e.timeout))
end
