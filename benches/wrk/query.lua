-- Query-string lookups: GET /service/svcN?key=...&min=...&max=...
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

function init(args)
  make_pool(function(service, key, min, max)
    return wrk.format("GET", string.format("/service/%s?key=%s&min=%d&max=%d", service, key, min, max))
  end, args)
end
