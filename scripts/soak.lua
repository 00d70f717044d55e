-- Mixed session load for wrk: counter, cart writes and reads, flashes, kv writes and the health
-- route; each thread keeps a session cookie and starts a new session every 20th request, so the
-- store keeps growing until its capacity or TTL bounds it.
local cookie = nil
local n = 0

local routes = {
  { "GET", "/counter", nil },
  { "POST", "/cart/items", '{"sku":"tea","qty":1}' },
  { "GET", "/cart", nil },
  { "POST", "/flash", '{"message":"hello"}' },
  { "GET", "/flash", nil },
  { "PUT", "/kv/soak", '{"n":1}' },
  { "GET", "/kv", nil },
  { "GET", "/status/healthcheck", nil },
}

request = function()
  n = n + 1
  if n % 20 == 0 then cookie = nil end
  local r = routes[(n % #routes) + 1]
  local headers = { ["Content-Type"] = "application/json" }
  if cookie then headers["Cookie"] = cookie end
  return wrk.format(r[1], r[2], headers, r[3])
end

response = function(status, headers, body)
  local set = headers["Set-Cookie"] or headers["set-cookie"]
  if set then cookie = string.match(set, "^([^;]+)") end
end
