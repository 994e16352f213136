-- 10-flood.lua — SAMPLE RULE for the Deggendorf demo data.
--
-- Flood warning stages for the Donau gauge. Every new water level
-- (level_cm) of a WaterLevelGauge is sorted into a warning stage 0..4:
--   * the stage is kept as the rules' own entity FloodStage/<gauge> with
--     the attribute "stage" (rules write only their own entities), so
--     `twinhost entities --town deggendorf --plugin rules` shows it;
--   * a warning event goes out only when the stage RISES (500 -> 510 cm
--     stays stage 1 and stays quiet; 549 -> 551 cm is stage 2: one event).
--   * a stage ends only when the level is HYSTERESIS cm below its
--     threshold, so a river wobbling around 500 cm does not warn each hour.
--
-- The thresholds are SAMPLE VALUES modelled on the four "Meldestufen" of
-- the Bavarian flood warning service. Before you rely on this rule, put in
-- the official values for your gauge (see hnd.bayern.de).

local THRESHOLDS = { 500, 550, 620, 700 }  -- cm for stage 1, 2, 3, 4
local HYSTERESIS = 20                      -- cm

local MEANING = {
  "riverside paths and meadows flooded",
  "roads and cellars near the river may flood",
  "built-up areas flooded, evacuations possible",
  "large-scale flooding, disaster alert",
}

-- The stage for a water level: how many thresholds it has reached. A stage
-- the gauge is already in (old) holds down to HYSTERESIS cm below.
local function stage_for(cm, old)
  local stage = 0
  for i, limit in ipairs(THRESHOLDS) do
    if cm >= limit or (i <= old and cm >= limit - HYSTERESIS) then
      stage = i
    end
  end
  return stage
end

twin.on_observation(
  { plugin = "sensors", type = "WaterLevelGauge", attr = "level_cm",
    name = "flood stages" },
  function(obs)
    if type(obs.value) ~= "number" then return end

    -- A late reading (older than the gauge's current level) changes nothing.
    local _, current_time = twin.get("sensors", obs.type, obs.id, "level_cm")
    if current_time and obs.time < current_time then return end

    local old = twin.get("rules", "FloodStage", obs.id, "stage")
    local stage = stage_for(obs.value, old or 0)
    if old == stage then return end           -- nothing new

    twin.put("rules", "FloodStage", obs.id, { stage = stage }, obs.time)

    if stage > (old or 0) then                 -- rising: tell people
      local name = twin.get("sensors", obs.type, obs.id, "name") or obs.id
      twin.emit{
        level = (stage >= 3) and "error" or "warning",
        type = obs.type, id = obs.id,
        message = string.format("%s: %.0f cm, flood warning stage %d (%s)",
                                name, obs.value, stage, MEANING[stage]),
        data = { stage = stage, previous = old or 0, level_cm = obs.value },
      }
    end
  end)
