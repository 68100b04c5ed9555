-- Batches of many keys in one request: POST /service/svcN with {"keys": [KEYS keys], "min": 1,
-- "max": MAX}. run.sh compares the keys answered per second with single-key JSON lookups
-- (json.lua) on the same server, to show what batching saves per key.
--
-- Script arguments (after `--`): SERVICES [MAX] [KEYS]   (defaults 10, 3 and 1000)
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

function init(args)
  local keys = tonumber(args[3] or "1000")
  -- 16 different batches over the services, so that no two requests in a row are the same;
  -- every key differs (a batch answers each distinct key once).
  make_pool(function(service, key, _, max)
    local body = batch_body(key, keys, 1, max)
    return wrk.format("POST", "/service/" .. service, { ["Content-Type"] = "application/json" }, body)
  end, { args[1] or "10", args[2] or "3", "16" })
end
