-- Shared by the wrk scenarios: a pool of lookups over a large key space and several
-- services, and a final report line that run.sh parses.
--
-- Script arguments (after `--`): SERVICES MAXNODES [KEYS]
--   SERVICES  number of services, named svc0 .. svc(N-1)   (default 10)
--   MAXNODES  largest `max` to ask for; `min` varies in 1..max (default 3)
--   KEYS      distinct keys in the pool                     (default 20000)
--
-- Requests are built once in init() and replayed in a cycle, so the Lua side costs wrk little
-- CPU (on a 2-core machine wrk competes with the server).

local pool = {}
local next_index = 1

local function params(i, services, maxnodes)
  local service = "svc" .. (i % services)
  local key = "user-" .. ((i * 7919) % 1000003)
  local max = maxnodes
  local min = 1 + (i % max)
  return service, key, min, max
end

-- `build(service, key, min, max)` returns a request string made with wrk.format.
function make_pool(build, args)
  local services = tonumber(args[1] or "10")
  local maxnodes = tonumber(args[2] or "3")
  local keys = tonumber(args[3] or "20000")
  for i = 1, keys do
    pool[i] = build(params(i, services, maxnodes))
  end
end

-- A JSON batch body: {"keys": ["KEY-1", ..., "KEY-N"], "min": MIN, "max": MAX}, without "min"
-- when MIN is nil.
function batch_body(key, keys, min, max)
  local batch = {}
  for j = 1, keys do
    batch[j] = string.format('"%s-%d"', key, j)
  end
  local min_field = min and string.format('"min":%d,', min) or ""
  return string.format('{"keys":[%s],%s"max":%d}', table.concat(batch, ","), min_field, max)
end

function request()
  local r = pool[next_index]
  next_index = next_index + 1
  if next_index > #pool then next_index = 1 end
  return r
end

-- Non-2xx answers and socket errors, counted by wrk itself (no response() callback, which
-- would slow wrk down), reported on one line.
function done(summary, latency, requests)
  local e = summary.errors
  local seconds = summary.duration / 1e6
  io.write(string.format(
    "RESULT requests=%d seconds=%.3f rps=%.1f p50_us=%d p99_us=%d non2xx=%d socket_errors=%d\n",
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
