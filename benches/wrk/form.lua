-- Urlencoded form lookups: key=...&min=...&max=... as a POST body.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

function init(args)
  make_pool(function(service, key, min, max)
    local body = string.format("key=%s&min=%d&max=%d", key, min, max)
    return wrk.format("POST", "/service/" .. service,
      { ["Content-Type"] = "application/x-www-form-urlencoded" }, body)
  end, args)
end
