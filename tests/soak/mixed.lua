-- mixed.lua — the soak's mixed load for wrk: reads of every kind on the
-- demo towns, and one ingest in eight (SOAK_TOKEN: a write token of
-- plattling).
local token = os.getenv("SOAK_TOKEN")
local reads = {
  "/healthz",
  "/v1/towns",
  "/v1/towns/plattling",
  "/v1/towns/plattling/entities?plugin=parking&limit=20",
  "/v1/towns/plattling/plugins/parking/query/now",
  "/v1/towns/plattling/events?limit=10",
  "/metrics",
}
local n = 0
local body = '[{"entity":"soak","type":"Gauge","attr":"level_cm",' ..
             '"time":"2026-01-01T00:00:00Z","value":1}]'

request = function()
  n = n + 1
  if token and n % 8 == 0 then
    return wrk.format("POST", "/v1/towns/plattling/plugins/sensors/ingest",
                      {["Authorization"] = "Bearer " .. token,
                       ["Content-Type"] = "application/json"}, body)
  end
  return wrk.format("GET", reads[n % #reads + 1])
end

done = function(summary, latency, requests)
  io.write(string.format("mixed: %d requests, %d answered other than "
                         .. "2xx/3xx, errors: connect %d, read %d, write %d, "
                         .. "timeout %d; latency p50 %.1f ms, p99 %.1f ms\n",
                         summary.requests, summary.errors.status,
                         summary.errors.connect, summary.errors.read,
                         summary.errors.write, summary.errors.timeout,
                         latency:percentile(50) / 1000,
                         latency:percentile(99) / 1000))
end
