-- 20-air.lua — SAMPLE RULE for the Deggendorf demo data.
--
-- Rolling 24-hour NO2 mean at the air quality stations. On every new NO2
-- reading the rule averages the readings of the last 24 hours (from the
-- history), keeps the mean on the entity "rules"/"AirQuality"/<station>
-- and sends ONE warning when the mean goes above LIMIT. It sends the next
-- one only after the mean has come down below CLEAR again (so a mean that
-- wobbles around the limit does not send an alert every hour).
--
-- LIMIT is a SAMPLE VALUE chosen so the demo data shows the rule working
-- (the WHO guideline for the 24-hour mean is 25 µg/m³; the EU daily limit
-- from 2030 is 50 µg/m³). Choose your own with your environment office.

local LIMIT = 33          -- µg/m³: warn when the 24 h mean goes above this
local CLEAR = 30          -- µg/m³: warn again only after falling below this
local MIN_READINGS = 18   -- fewer readings in 24 h: no verdict (gap in data)
local DAY_MS = 24 * 60 * 60 * 1000

twin.on_observation(
  { plugin = "sensors", type = "AirQualityObserved", attr = "no2_ugm3",
    name = "NO2 24 h mean" },
  function(obs)
    if type(obs.value) ~= "number" then return end
    local _, current_time = twin.get("sensors", obs.type, obs.id, "no2_ugm3")
    if current_time and obs.time < current_time then return end  -- late

    -- The 24 hours up to this reading: history before it, plus this one.
    local rows = twin.history("sensors", obs.type, obs.id, "no2_ugm3",
                              obs.time - DAY_MS + 1, obs.time)
    local sum, n = obs.value, 1
    for _, row in ipairs(rows) do
      if type(row.value) == "number" then sum, n = sum + row.value, n + 1 end
    end
    if n < MIN_READINGS then return end
    local mean = math.floor(sum / n * 10 + 0.5) / 10   -- one decimal

    local active = twin.get("rules", "AirQuality", obs.id, "alert") or false
    if not active and mean > LIMIT then
      active = true
      twin.emit{
        level = "warning", type = obs.type, id = obs.id,
        message = string.format("NO2 24-hour mean at %s is %.1f µg/m³ (limit %d)",
                                obs.id, mean, LIMIT),
        data = { mean_24h = mean, limit = LIMIT, readings = n },
      }
    elseif active and mean < CLEAR then
      active = false
    end
    twin.put("rules", "AirQuality", obs.id,
             { no2_mean_24h = mean, alert = active }, obs.time)
  end)
