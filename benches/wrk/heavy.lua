-- Heavy batches, the largest the default budget allows: POST /service/heavy with
-- {"keys": [1000 keys], "max": 100} (1 000 keys x 100 nodes = 100 000 nodes in the answer, and
-- 1 000 x 10 000 node scores: far above --heavy-lookup-work, so each runs on the heavy pool).
-- Run beside json.lua to see what heavy clients cost everyone else.
--
-- Script arguments (after `--`): [KEYS] [MAX]   (defaults 1000 and 100)
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

function init(args)
  local keys = tonumber(args[1] or "1000")
  local max = tonumber(args[2] or "100")
  -- A few different batches, so that no two requests in a row are the same.
  make_pool(function(_, key, _, _)
    local body = batch_body(key, keys, nil, max)
    return wrk.format("POST", "/service/heavy", { ["Content-Type"] = "application/json" }, body)
  end, { "1", "1", "16" })
end
