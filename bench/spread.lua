-- D: every request goes to a random one of the configured proxies, with that proxy's key.
-- bench/run.py writes the proxy ids and keys to the file named by SPREAD_FILE.
local targets = {}
for line in io.lines(os.getenv("SPREAD_FILE")) do
  local id, key = line:match("^(%S+) (%S+)$")
  targets[#targets + 1] = {id = id, key = key}
end

request = function()
  local t = targets[math.random(#targets)]
  return wrk.format("GET", "/api/" .. t.id .. "/items", {["X-API-Key"] = t.key})
end
