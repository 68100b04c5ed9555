-- JSON POST lookups: {"key": ..., "min": ..., "max": ...} to /service/svcN.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

function init(args)
  make_pool(function(service, key, min, max)
    local body = string.format('{"key":"%s","min":%d,"max":%d}', key, min, max)
    return wrk.format("POST", "/service/" .. service, { ["Content-Type"] = "application/json" }, body)
  end, args)
end
