-- benches/grants_w5.lua - W5, refresh-token rotation (RFC 6749 §6) for benches/grants.sh:
-- each request rotates a live refresh token and puts the new one back in its thread's pool,
-- so every token is used exactly once (a reuse would revoke its grant). Thread n of N takes
-- lines n, n+N, ... of REFRESH_FILE; give each thread more tokens than its connections.
--   REFRESH_FILE=... BENCH_AUTH="Basic ..."
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("index", threads)
end
function init(args)
  pool, head, tail = {}, 1, 0
  local n, total = 0, tonumber(os.getenv("THREADS") or "2")
  for line in io.lines(os.getenv("REFRESH_FILE")) do
    n = n + 1
    if #line > 0 and (n - 1) % total == index - 1 then tail = tail + 1; pool[tail] = line end
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.headers["Authorization"] = os.getenv("BENCH_AUTH")
end
function request()
  local t = pool[head]
  if t then pool[head] = nil; head = head + 1 else t = "exhausted" end
  return wrk.format(nil, nil, nil, "grant_type=refresh_token&refresh_token=" .. t)
end
function response(status, headers, body)
  local t = string.match(body, '"refresh_token":"([^"]+)"')
  if t then tail = tail + 1; pool[tail] = t end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT %d %.1f %.3f %.3f %.3f %d %d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.status, e.connect + e.read + e.write + e.timeout))
end
