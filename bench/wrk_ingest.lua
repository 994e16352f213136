-- wrk_ingest.lua: the ingest load of bench/run. Each request POSTs a JSON
-- array of DOCS sensors documents of PER_DOC readings each. Document d of
-- the request the whole run numbers s (over all threads) is one feed
-- snapshot at BASE_MS + (s * DOCS + d) s, so every reading is a new
-- observation (none replaces an earlier one). An answer other than 200 with
-- every document accepted is counted; done() fails (exit 1) when there was
-- one.
--
-- With a seventh argument "lone" each request is one reading alone, as a
-- sensor gateway pushes it: a bare JSON object, not an array (DOCS and
-- PER_DOC must be 1).
--
-- usage: wrk -tTHREADS ... -s wrk_ingest.lua URL --
--            TOKEN THREADS BASE_MS DOCS PER_DOC ENTITIES [lone]
-- Prints `wrk_result REQUESTS SECONDS` on stdout.

local threads = {}
local counter = 1

function setup(thread)
  thread:set("tid", counter - 1)
  counter = counter + 1
  table.insert(threads, thread)
end

local types = {"WaterLevelGauge", "AirQualityObserved", "EnergyMeter"}
local attrs = {"level_cm", "no2_ugm3", "power_kw"}
local n_threads, base, docs, templates, lone
local seq = 0
bad = 0 -- globals: done() reads them from each thread
bad_status = 0
bad_body = ""

function init(args)
  if #args ~= 6 and not (#args == 7 and args[7] == "lone") then
    io.stderr:write("wrk_ingest.lua: expected TOKEN THREADS BASE_MS DOCS " ..
                    "PER_DOC ENTITIES [lone]\n")
    os.exit(2)
  end
  lone = args[7] == "lone"
  wrk.method = "POST"
  wrk.headers["Authorization"] = "Bearer " .. args[1]
  wrk.headers["Content-Type"] = "application/json"
  n_threads = tonumber(args[2])
  base = tonumber(args[3])
  docs = tonumber(args[4])
  local per_doc, entities = tonumber(args[5]), tonumber(args[6])
  -- Document d covers readings d*PER_DOC .. of the entities in turn; only
  -- its time (@T@) changes from request to request.
  templates = {}
  for d = 0, docs - 1 do
    local r = {}
    for k = 0, per_doc - 1 do
      local i = (d * per_doc + k) % entities
      r[#r + 1] = string.format(
        '{"entity":"s%d","type":"%s","attr":"%s","time":@T@,"value":%.1f}',
        i, types[i % 3 + 1], attrs[i % 3 + 1], ((i * 7 + d * 13) % 5000) / 10)
    end
    templates[d + 1] = lone and r[1] or
                       '{"readings":[' .. table.concat(r, ",") .. ']}'
  end
end

function request()
  local s = seq * n_threads + tid
  seq = seq + 1
  if lone then -- one reading of one entity, each a second later
    local t = string.format("%d", base + s * 1000)
    return wrk.format(nil, nil, nil, (templates[1]:gsub("@T@", t)))
  end
  local body = {}
  for d = 0, docs - 1 do
    local t = string.format("%d", base + (s * docs + d) * 1000)
    body[d + 1] = templates[d + 1]:gsub("@T@", t)
  end
  return wrk.format(nil, nil, nil, "[" .. table.concat(body, ",") .. "]")
end

function response(status, headers, body)
  if status ~= 200 or not body:find('"rejected":0,', 1, true) then
    bad = bad + 1
    bad_status = status
    bad_body = body:sub(1, 400)
  end
end

function done(summary, latency, requests)
  local n_bad, status, sample = 0, 0, ""
  for _, t in ipairs(threads) do
    n_bad = n_bad + t:get("bad")
    if t:get("bad_status") ~= 0 then
      status = t:get("bad_status")
      sample = t:get("bad_body")
    end
  end
  local e = summary.errors
  if n_bad > 0 or summary.requests == 0 or e.connect + e.read + e.write +
      e.status + e.timeout > 0 then
    io.stderr:write(string.format(
      "wrk_ingest.lua: %d of %d answers were not 200 with every document " ..
      "accepted (last: %d %s); socket errors: connect %d, read %d, " ..
      "write %d, timeout %d\n", n_bad, summary.requests, status, sample,
      e.connect, e.read, e.write, e.timeout))
    os.exit(1)
  end
  io.write(string.format("wrk_result %d %.6f\n", summary.requests,
                         summary.duration / 1e6))
end
