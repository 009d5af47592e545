-- benches/grants_mint.lua - wrk script that mints authorization codes through the real
-- flow for benches/grants.sh: GET /oauth/authorize of a signed-in browser whose consent is
-- remembered (302 with ?code=...). Thread n takes "verifier challenge" pairs from
-- PKCE_FILE.<n> (benches/grants_setup.py pkce; a challenge is never reused) and appends
-- "code verifier" lines to CODES_FILE.<n>; `state` carries the pair's index.
--   SESSION="tessera_session=..." AUTHORIZE_QUERY="response_type=code&..." PKCE_FILE=... CODES_FILE=...
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("index", threads)
end
function init(args)
  verifiers, challenges = {}, {}
  for line in io.lines(os.getenv("PKCE_FILE") .. "." .. index) do
    local v, c = string.match(line, "(%S+) (%S+)")
    verifiers[#verifiers + 1] = v; challenges[#challenges + 1] = c
  end
  n = 0
  out = io.open(os.getenv("CODES_FILE") .. "." .. index, "a")
  base = "/oauth/authorize?" .. os.getenv("AUTHORIZE_QUERY")
  wrk.headers["Cookie"] = os.getenv("SESSION")
end
function request()
  n = n + 1
  local c = challenges[n] or "exhausted"
  return wrk.format("GET", base .. "&state=" .. n .. "&code_challenge=" .. c)
end
function response(status, headers, body)
  local loc = headers["location"] or headers["Location"]
  if status == 302 and loc then
    local code = string.match(loc, "[?&]code=([^&]+)")
    local i = tonumber(string.match(loc, "[?&]state=(%d+)"))
    if code and i and verifiers[i] then out:write(code, " ", verifiers[i], "\n") end
  end
end
done = function(summary, latency, requests)
  io.write(string.format("MINTED %d requests, %d non-2xx/3xx\n", summary.requests, summary.errors.status))
end
