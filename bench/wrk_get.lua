-- wrk_get.lua: the GET load of bench/run. Each request reads one entity,
-- picked at random among the seeded ones, with a bearer token. Any answer
-- other than 200 is counted; done() fails (exit 1) when there was one.
--
-- usage: wrk ... -s wrk_get.lua URL -- TOKEN TOWN ENTITIES
-- Prints `wrk_result REQUESTS SECONDS` on stdout.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local town, entities
local types = {"WaterLevelGauge", "AirQualityObserved", "EnergyMeter"}
bad = 0       -- global: done() reads it from each thread
bad_status = 0

function init(args)
  if #args ~= 3 then
    io.stderr:write("wrk_get.lua: expected TOKEN TOWN ENTITIES\n")
    os.exit(2)
  end
  wrk.headers["Authorization"] = "Bearer " .. args[1]
  town = args[2]
  entities = tonumber(args[3])
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end

function request()
  local i = math.random(0, entities - 1)
  return wrk.format("GET", string.format(
    "/v1/towns/%s/entities/sensors/%s/s%d", town, types[i % 3 + 1], i))
end

function response(status, headers, body)
  if status ~= 200 then
    bad = bad + 1
    bad_status = status
  end
end

function done(summary, latency, requests)
  local n_bad, status = 0, 0
  for _, t in ipairs(threads) do
    n_bad = n_bad + t:get("bad")
    if t:get("bad_status") ~= 0 then status = t:get("bad_status") end
  end
  local e = summary.errors
  if n_bad > 0 or summary.requests == 0 or e.connect + e.read + e.write +
      e.status + e.timeout > 0 then
    io.stderr:write(string.format(
      "wrk_get.lua: %d of %d answers were not 200 (last: %d); socket " ..
      "errors: connect %d, read %d, write %d, timeout %d\n", n_bad,
      summary.requests, status, e.connect, e.read, e.write, e.timeout))
    os.exit(1)
  end
  io.write(string.format("wrk_result %d %.6f\n", summary.requests,
                         summary.duration / 1e6))
end
